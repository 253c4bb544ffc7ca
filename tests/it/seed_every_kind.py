#!/usr/bin/env python3
"""Seeds the emulator with one workload of each kind the in-use sources read,
each on its own image of the repository "app" (tag = the source's name),
for the every-kind scenario. Usage: seed_every_kind.py ENDPOINT

  ecs:           the newest revision of families nightly, report and flow
  events:        the rule "nightly-report", pinned to nightly:1
  scheduler:     the schedule default/nightly, pinned to report:1
  stepfunctions: the state machine "etl", pinned to flow:1
  lambda:        the image function "resize"
  batch:         the ACTIVE job definition "etl"
  codebuild:     the project "ci"
  apprunner:     the service "web-app"
  sagemaker:     the model "reco-model"
  eks:           (not seeded here: the test's Kubernetes API serves a pod)
"""
import json
import sys

import boto3

endpoint = sys.argv[1]
region, account = "us-east-1", "123456789012"
kw = dict(endpoint_url=endpoint, region_name=region,
          aws_access_key_id="testing", aws_secret_access_key="testing")
image = lambda tag: f"{account}.dkr.ecr.{region}.amazonaws.com/app:{tag}"
role = f"arn:aws:iam::{account}:role/ecr-gc-scenario"

ecs = boto3.client("ecs", **kw)
cluster = ecs.create_cluster(clusterName="prod")["cluster"]["clusterArn"]
pinned = {}
for family, first in (("nightly", "events"), ("report", "scheduler"), ("flow", "stepfunctions")):
    for tag in (first, "ecs"):
        arn = ecs.register_task_definition(family=family, containerDefinitions=[
            {"name": "app", "image": image(tag), "memory": 128}])["taskDefinition"]["taskDefinitionArn"]
        pinned.setdefault(family, arn)

events = boto3.client("events", **kw)
events.put_rule(Name="nightly-report", ScheduleExpression="cron(0 2 * * ? *)")
events.put_targets(Rule="nightly-report", Targets=[{
    "Id": "task", "Arn": cluster, "RoleArn": role,
    "EcsParameters": {"TaskDefinitionArn": pinned["nightly"], "TaskCount": 1}}])

boto3.client("scheduler", **kw).create_schedule(
    Name="nightly", ScheduleExpression="cron(0 3 * * ? *)", FlexibleTimeWindow={"Mode": "OFF"},
    Target={"Arn": cluster, "RoleArn": role, "EcsParameters": {"TaskDefinitionArn": pinned["report"]}})

definition = {"StartAt": "Run", "States": {"Run": {
    "Type": "Task", "Resource": "arn:aws:states:::ecs:runTask.sync", "End": True,
    "Parameters": {"Cluster": cluster, "TaskDefinition": "flow:1"}}}}
boto3.client("stepfunctions", **kw).create_state_machine(
    name="etl", definition=json.dumps(definition), roleArn=role)

iam = boto3.client("iam", **kw)
trust = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
function_role = iam.create_role(RoleName="resize", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
boto3.client("lambda", **kw).create_function(
    FunctionName="resize", Role=function_role, PackageType="Image", Code={"ImageUri": image("lambda")},
    Publish=True)

boto3.client("batch", **kw).register_job_definition(
    jobDefinitionName="etl", type="container",
    containerProperties={"image": image("batch"), "vcpus": 1, "memory": 128})

boto3.client("codebuild", **kw).create_project(
    name="ci", source={"type": "S3", "location": "builds/source.zip"}, artifacts={"type": "NO_ARTIFACTS"},
    environment={"type": "LINUX_CONTAINER", "image": image("codebuild"), "computeType": "BUILD_GENERAL1_SMALL"},
    serviceRole=role)

boto3.client("apprunner", **kw).create_service(ServiceName="web-app", SourceConfiguration={
    "ImageRepository": {"ImageIdentifier": image("apprunner"), "ImageRepositoryType": "ECR"}})

boto3.client("sagemaker", **kw).create_model(
    ModelName="reco-model", PrimaryContainer={"Image": image("sagemaker")}, ExecutionRoleArn=role)
