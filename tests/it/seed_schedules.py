#!/usr/bin/env python3
"""Seeds moto_server with rules and schedules that start ECS tasks using
images of the repository "jobs", for the schedule-source tests.
Usage: seed_schedules.py ENDPOINT

Task-definition families (every revision ACTIVE):
  nightly:1 -> v1, nightly:2 -> v2, nightly:3 -> v3 (the newest)
  report:1  -> v4, report:2  -> v5, report:3  -> v6 (the newest)

  v1: the EventBridge rule "nightly-report" on the default bus, an ECS
      target pinned to nightly:1 by ARN
  v2: the rule "cleanup" on the custom bus "ops", DISABLED, an ECS target
      pinned to nightly:2
  v4: the Scheduler schedule default/nightly, a templated ECS target
      pinned to report:1
  v5: the schedule ops/weekly, DISABLED, the universal target
      aws-sdk:ecs:runTask whose input names report:2
  v3, v6: the newest revisions, which no rule or schedule runs
  v0: nothing
Also a rule and a schedule whose targets are not ECS tasks (a Lambda
function, an SQS queue), which name no image.
"""
import json
import sys

import boto3

endpoint = sys.argv[1]
region, account = "us-east-1", "123456789012"
kw = dict(endpoint_url=endpoint, region_name=region,
          aws_access_key_id="testing", aws_secret_access_key="testing")
host = f"{account}.dkr.ecr.{region}.amazonaws.com"

ecs = boto3.client("ecs", **kw)
cluster = ecs.create_cluster(clusterName="batch")["cluster"]["clusterArn"]
arns = {}
for family, tags in (("nightly", ["v1", "v2", "v3"]), ("report", ["v4", "v5", "v6"])):
    for revision, tag in enumerate(tags, start=1):
        out = ecs.register_task_definition(
            family=family,
            containerDefinitions=[{"name": "app", "image": f"{host}/jobs:{tag}", "memory": 128}])
        arns[f"{family}:{revision}"] = out["taskDefinition"]["taskDefinitionArn"]

role = f"arn:aws:iam::{account}:role/ecr-gc-test-runner"
events = boto3.client("events", **kw)
events.put_rule(Name="nightly-report", ScheduleExpression="cron(0 2 * * ? *)")
events.put_targets(Rule="nightly-report", Targets=[{
    "Id": "task", "Arn": cluster, "RoleArn": role,
    "EcsParameters": {"TaskDefinitionArn": arns["nightly:1"], "TaskCount": 1}}])
events.create_event_bus(Name="ops")
events.put_rule(Name="cleanup", EventBusName="ops", State="DISABLED",
                EventPattern=json.dumps({"source": ["ops.cleanup"]}))
events.put_targets(Rule="cleanup", EventBusName="ops", Targets=[{
    "Id": "task", "Arn": cluster, "RoleArn": role,
    "EcsParameters": {"TaskDefinitionArn": arns["nightly:2"]}}])
events.put_rule(Name="notify", ScheduleExpression="rate(1 hour)")
events.put_targets(Rule="notify", Targets=[{
    "Id": "fn", "Arn": f"arn:aws:lambda:{region}:{account}:function:notify"}])

scheduler = boto3.client("scheduler", **kw)
window = {"Mode": "OFF"}
scheduler.create_schedule(
    Name="nightly", ScheduleExpression="cron(0 3 * * ? *)", FlexibleTimeWindow=window,
    Target={"Arn": cluster, "RoleArn": role,
            "EcsParameters": {"TaskDefinitionArn": arns["report:1"]}})
scheduler.create_schedule_group(Name="ops")
scheduler.create_schedule(
    Name="weekly", GroupName="ops", ScheduleExpression="cron(0 4 ? * MON *)",
    FlexibleTimeWindow=window, State="DISABLED",
    Target={"Arn": "arn:aws:scheduler:::aws-sdk:ecs:runTask", "RoleArn": role,
            "Input": json.dumps({"Cluster": cluster, "TaskDefinition": "report:2"})})
scheduler.create_schedule(
    Name="ping", ScheduleExpression="rate(5 minutes)", FlexibleTimeWindow=window,
    Target={"Arn": f"arn:aws:sqs:{region}:{account}:ping", "RoleArn": role})
