#!/usr/bin/env python3
"""Seeds moto_server for the in-use defaults, in repository "revs" (moto
resolves Lambda image URIs by their last path segment, so no slash).
Usage: seed_versions.py ENDPOINT

  revs:r0..r6  the ECS task-definition family "revs", revisions 1 to 7
               (no service, no task: only the newest five revisions protect)
  revs:m1..m3  the Lambda function "multi", versions 1 to 3 (each published
               with its image), with the alias "live" on version 1
"""
import json
import sys

import boto3

endpoint = sys.argv[1]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

ecs = boto3.client("ecs", **kw)
for n in range(7):
    ecs.register_task_definition(
        family="revs", containerDefinitions=[{"name": "app", "image": f"{host}/revs:r{n}", "memory": 128}])

iam = boto3.client("iam", **kw)
trust = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
role = iam.create_role(RoleName="multi", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
lam = boto3.client("lambda", **kw)
lam.create_function(FunctionName="multi", Role=role, PackageType="Image",
                    Code={"ImageUri": f"{host}/revs:m1"}, Publish=True)
for n in (2, 3):
    lam.update_function_code(FunctionName="multi", ImageUri=f"{host}/revs:m{n}", Publish=True)
lam.create_alias(FunctionName="multi", Name="live", FunctionVersion="1")
versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName="multi")["Versions"]]
print(json.dumps(versions))
