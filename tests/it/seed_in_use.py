#!/usr/bin/env python3
"""Seeds moto_server with workloads that use images of the repository "shop" (moto resolves Lambda image URIs by their last path segment, so no slash), for the
in-use inventory tests. Usage: seed_in_use.py ENDPOINT V7_DIGEST

  v1: a running ECS task (Fargate) in cluster prod, family "task" (moto
      sends the container's `cpu` as a number, which the SDK's model
      rejects; ecr-gc reads the response leniently), whose task definition
      is then deregistered, so only the task protects it
  v2: the ECS service prod/web, family "svc"
  v3: task-definition family "old", revision 2 (the newest)
  v4: task-definition family "old", revision 1 (older)
  v5: the Lambda function "resize" (an image function)
  v6: the SSM parameter /ecr-gc/in-use (by tag)
  v7: the S3 object s3://in-use/list.json (by digest)
  v8: only a reference from another account's registry
"""
import json
import sys

import boto3

endpoint, v7_digest = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
ours = lambda ref: f"{host}/shop{ref}"

ecs = boto3.client("ecs", **kw)
ecs.create_cluster(clusterName="prod")
container = lambda image: [{"name": "app", "image": image, "memory": 128}]
ecs.register_task_definition(family="task", containerDefinitions=container(ours(":v1")))
ecs.run_task(cluster="prod", taskDefinition="task", launchType="FARGATE")
ecs.deregister_task_definition(taskDefinition="task:1")
ecs.register_task_definition(family="svc", containerDefinitions=container(ours(":v2")))
ecs.create_service(cluster="prod", serviceName="web", taskDefinition="svc", desiredCount=1)
ecs.register_task_definition(family="old", containerDefinitions=container(ours(":v4")))
ecs.register_task_definition(family="old", containerDefinitions=container(ours(":v3")))
ecs.register_task_definition(
    family="foreign", containerDefinitions=container("999999999999.dkr.ecr.us-east-1.amazonaws.com/shop:v8"))

iam = boto3.client("iam", **kw)
trust = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
role = iam.create_role(RoleName="resize", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
boto3.client("lambda", **kw).create_function(
    FunctionName="resize", Role=role, PackageType="Image", Code={"ImageUri": ours(":v5")}, Publish=True)

boto3.client("ssm", **kw).put_parameter(
    Name="/ecr-gc/in-use", Type="String", Value=json.dumps([ours(":v6"), "nginx:1.27"]))
s3 = boto3.client("s3", **kw)
s3.create_bucket(Bucket="in-use")
s3.put_object(Bucket="in-use", Key="list.json", Body=json.dumps({"images": [ours("@" + v7_digest)]}))
