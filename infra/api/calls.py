"""The AWS API calls each planned resource becomes: what pulumi-aws sends on ``pulumi up``.

pulumi-aws is the Terraform AWS provider underneath; each function below mirrors the provider's
create (and, for the endpoint, update) of one resource type: the same operations, with the
planned inputs under the API's member names. Values the cloud computes (ids of resources not yet
created) are left out rather than guessed; :data:`NOT_CALLED` lists the resource types whose
calls are not checked, each with why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Inputs = Mapping[str, Any]


@dataclass(frozen=True)
class Call:
    """One API request: service (botocore's name), operation and parameters."""

    service: str
    operation: str
    params: dict[str, Any]


def _drop_none(value: Any) -> Any:
    """The request without absent members (the provider leaves unset arguments out)."""
    if isinstance(value, dict):
        kept = {k: _drop_none(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v != {}}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _tags(inputs: Inputs, key: str = "Key", value: str = "Value") -> list[dict[str, str]] | None:
    tags = inputs.get("tags")
    return [{key: k, value: v} for k, v in tags.items()] if tags else None


def _call(service: str, operation: str, **params: Any) -> Call:
    return Call(service, operation, _drop_none(params))


# SageMaker ----------------------------------------------------------------------------------


def _sagemaker_model(i: Inputs, region: str) -> list[Call]:
    container = i.get("primaryContainer") or {}
    vpc = i.get("vpcConfig") or {}
    return [
        _call(
            "sagemaker",
            "CreateModel",
            ModelName=i.get("name"),
            ExecutionRoleArn=i.get("executionRoleArn"),
            PrimaryContainer={
                "Image": container.get("image"),
                "ModelDataUrl": container.get("modelDataUrl"),
                "Environment": container.get("environment"),
            },
            VpcConfig={
                "Subnets": vpc.get("subnets"),
                "SecurityGroupIds": vpc.get("securityGroupIds"),
            }
            if vpc
            else None,
            EnableNetworkIsolation=i.get("enableNetworkIsolation"),
            Tags=_tags(i),
        )
    ]


def _variant(v: Inputs) -> dict[str, Any]:
    serverless = v.get("serverlessConfig") or {}
    return {
        "VariantName": v.get("variantName"),
        "ModelName": v.get("modelName"),
        "InitialInstanceCount": v.get("initialInstanceCount"),
        "InstanceType": v.get("instanceType"),
        "InitialVariantWeight": v.get("initialVariantWeight"),
        "ServerlessConfig": {
            "MemorySizeInMB": serverless.get("memorySizeInMb"),
            "MaxConcurrency": serverless.get("maxConcurrency"),
        }
        if serverless
        else None,
    }


def _sagemaker_endpoint_config(i: Inputs, region: str) -> list[Call]:
    capture = i.get("dataCaptureConfig") or {}
    header = capture.get("captureContentTypeHeader") or {}
    return [
        _call(
            "sagemaker",
            "CreateEndpointConfig",
            EndpointConfigName=i.get("name"),
            ProductionVariants=[_variant(v) for v in i.get("productionVariants") or []],
            DataCaptureConfig={
                "EnableCapture": capture.get("enableCapture"),
                "InitialSamplingPercentage": capture.get("initialSamplingPercentage"),
                "DestinationS3Uri": capture.get("destinationS3Uri"),
                "KmsKeyId": capture.get("kmsKeyId"),
                "CaptureOptions": [
                    {"CaptureMode": o.get("captureMode")}
                    for o in capture.get("captureOptions") or []
                ],
                "CaptureContentTypeHeader": {
                    "CsvContentTypes": header.get("csvContentTypes"),
                    "JsonContentTypes": header.get("jsonContentTypes"),
                },
            }
            if capture
            else None,
            KmsKeyId=i.get("kmsKeyArn"),
            Tags=_tags(i),
        )
    ]


def _deployment_config(i: Inputs) -> dict[str, Any] | None:
    dc = i.get("deploymentConfig")
    if not dc:
        return None
    bg = dc.get("blueGreenUpdatePolicy") or {}
    routing = bg.get("trafficRoutingConfiguration") or {}

    def size(s: Inputs | None) -> dict[str, Any] | None:
        return {"Type": s.get("type"), "Value": s.get("value")} if s else None

    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": routing.get("type"),
                "WaitIntervalInSeconds": routing.get("waitIntervalInSeconds"),
                "CanarySize": size(routing.get("canarySize")),
                "LinearStepSize": size(routing.get("linearStepSize")),
            },
            "TerminationWaitInSeconds": bg.get("terminationWaitInSeconds"),
            "MaximumExecutionTimeoutInSeconds": bg.get("maximumExecutionTimeoutInSeconds"),
        },
        "AutoRollbackConfiguration": {
            "Alarms": [
                {"AlarmName": a.get("alarmName")}
                for a in (dc.get("autoRollbackConfiguration") or {}).get("alarms") or []
            ]
        }
        if dc.get("autoRollbackConfiguration")
        else None,
    }


def _sagemaker_endpoint(i: Inputs, region: str) -> list[Call]:
    common = {
        "EndpointName": i.get("name"),
        "EndpointConfigName": i.get("endpointConfigName"),
        "DeploymentConfig": _deployment_config(i),
    }
    # Created once; every later release is an UpdateEndpoint with the same deployment config.
    return [
        _call("sagemaker", "CreateEndpoint", **common, Tags=_tags(i)),
        _call("sagemaker", "UpdateEndpoint", **common),
    ]


def _mlflow_server(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "sagemaker",
            "CreateMlflowTrackingServer",
            TrackingServerName=i.get("trackingServerName"),
            ArtifactStoreUri=i.get("artifactStoreUri"),
            TrackingServerSize=i.get("trackingServerSize"),
            RoleArn=i.get("roleArn"),
            AutomaticModelRegistration=i.get("automaticModelRegistration"),
            Tags=_tags(i),
        )
    ]


# Application Auto Scaling, CloudWatch, Logs ------------------------------------------------


def _scaling_target(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "application-autoscaling",
            "RegisterScalableTarget",
            ServiceNamespace=i.get("serviceNamespace"),
            ResourceId=i.get("resourceId"),
            ScalableDimension=i.get("scalableDimension"),
            MinCapacity=i.get("minCapacity"),
            MaxCapacity=i.get("maxCapacity"),
            Tags=i.get("tags") or None,
        )
    ]


def _scaling_policy(i: Inputs, region: str) -> list[Call]:
    tracking = i.get("targetTrackingScalingPolicyConfiguration") or {}
    predefined = tracking.get("predefinedMetricSpecification") or {}
    return [
        _call(
            "application-autoscaling",
            "PutScalingPolicy",
            PolicyName=i.get("name"),
            ServiceNamespace=i.get("serviceNamespace"),
            ResourceId=i.get("resourceId"),
            ScalableDimension=i.get("scalableDimension"),
            PolicyType=i.get("policyType"),
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": tracking.get("targetValue"),
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": predefined.get("predefinedMetricType"),
                    "ResourceLabel": predefined.get("resourceLabel"),
                },
                "ScaleInCooldown": tracking.get("scaleInCooldown"),
                "ScaleOutCooldown": tracking.get("scaleOutCooldown"),
                "DisableScaleIn": tracking.get("disableScaleIn"),
            },
        )
    ]


def _metric_alarm(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "cloudwatch",
            "PutMetricAlarm",
            AlarmName=i.get("name"),
            AlarmDescription=i.get("alarmDescription"),
            ActionsEnabled=i.get("actionsEnabled"),
            OKActions=i.get("okActions"),
            AlarmActions=i.get("alarmActions"),
            MetricName=i.get("metricName"),
            Namespace=i.get("namespace"),
            Statistic=i.get("statistic"),
            ExtendedStatistic=i.get("extendedStatistic"),
            Dimensions=[{"Name": k, "Value": v} for k, v in (i.get("dimensions") or {}).items()],
            Period=i.get("period"),
            EvaluationPeriods=i.get("evaluationPeriods"),
            DatapointsToAlarm=i.get("datapointsToAlarm"),
            # The API takes a double; the wire form carries whole numbers as ints.
            Threshold=float(i["threshold"]) if i.get("threshold") is not None else None,
            ComparisonOperator=i.get("comparisonOperator"),
            TreatMissingData=i.get("treatMissingData"),
            Tags=_tags(i),
        )
    ]


def _dashboard(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "cloudwatch",
            "PutDashboard",
            DashboardName=i.get("dashboardName"),
            DashboardBody=i.get("dashboardBody"),
        )
    ]


def _log_group(i: Inputs, region: str) -> list[Call]:
    calls = [
        _call("logs", "CreateLogGroup", logGroupName=i.get("name"), tags=i.get("tags") or None)
    ]
    if i.get("retentionInDays"):
        calls.append(
            _call(
                "logs",
                "PutRetentionPolicy",
                logGroupName=i.get("name"),
                retentionInDays=i.get("retentionInDays"),
            )
        )
    return calls


# S3 ----------------------------------------------------------------------------------------


def _bucket(i: Inputs, region: str) -> list[Call]:
    calls = [
        _call(
            "s3",
            "CreateBucket",
            Bucket=i.get("bucket"),
            # us-east-1 is the one region CreateBucket takes without a location constraint.
            CreateBucketConfiguration={"LocationConstraint": region}
            if region != "us-east-1"
            else None,
        )
    ]
    if i.get("tags"):
        calls.append(
            _call("s3", "PutBucketTagging", Bucket=i.get("bucket"), Tagging={"TagSet": _tags(i)})
        )
    return calls


def _bucket_versioning(i: Inputs, region: str) -> list[Call]:
    config = i.get("versioningConfiguration") or {}
    return [
        _call(
            "s3",
            "PutBucketVersioning",
            Bucket=i.get("bucket"),
            VersioningConfiguration={"Status": config.get("status")},
        )
    ]


def _bucket_encryption(i: Inputs, region: str) -> list[Call]:
    rules = []
    for rule in i.get("rules") or []:
        default = rule.get("applyServerSideEncryptionByDefault") or {}
        rules.append(
            {
                "ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": default.get("sseAlgorithm"),
                    "KMSMasterKeyID": default.get("kmsMasterKeyId"),
                },
                "BucketKeyEnabled": rule.get("bucketKeyEnabled"),
            }
        )
    return [
        _call(
            "s3",
            "PutBucketEncryption",
            Bucket=i.get("bucket"),
            ServerSideEncryptionConfiguration={"Rules": rules},
        )
    ]


def _public_access_block(i: Inputs, region: str) -> list[Call]:
    flags = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    return [
        _call(
            "s3",
            "PutPublicAccessBlock",
            Bucket=i.get("bucket"),
            PublicAccessBlockConfiguration={f: i.get(f[0].lower() + f[1:]) for f in flags},
        )
    ]


def _bucket_policy(i: Inputs, region: str) -> list[Call]:
    return [_call("s3", "PutBucketPolicy", Bucket=i.get("bucket"), Policy=i.get("policy"))]


def _ownership(i: Inputs, region: str) -> list[Call]:
    rule = i.get("rule") or {}
    return [
        _call(
            "s3",
            "PutBucketOwnershipControls",
            Bucket=i.get("bucket"),
            OwnershipControls={"Rules": [{"ObjectOwnership": rule.get("objectOwnership")}]},
        )
    ]


def _lifecycle(i: Inputs, region: str) -> list[Call]:
    rules = []
    for rule in i.get("rules") or []:
        noncurrent = rule.get("noncurrentVersionExpiration") or {}
        abort = rule.get("abortIncompleteMultipartUpload") or {}
        rules.append(
            {
                "ID": rule.get("id"),
                "Status": rule.get("status"),
                "Filter": {"Prefix": (rule.get("filter") or {}).get("prefix")},
                "NoncurrentVersionExpiration": {
                    "NoncurrentDays": noncurrent.get("noncurrentDays"),
                    "NewerNoncurrentVersions": noncurrent.get("newerNoncurrentVersions"),
                },
                "AbortIncompleteMultipartUpload": {
                    "DaysAfterInitiation": abort.get("daysAfterInitiation")
                },
            }
        )
    return [
        _call(
            "s3",
            "PutBucketLifecycleConfiguration",
            Bucket=i.get("bucket"),
            LifecycleConfiguration={"Rules": rules},
        )
    ]


# IAM, KMS, ECR, SNS ------------------------------------------------------------------------


def _role(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "iam",
            "CreateRole",
            RoleName=i.get("name"),
            AssumeRolePolicyDocument=i.get("assumeRolePolicy"),
            Description=i.get("description"),
            MaxSessionDuration=i.get("maxSessionDuration"),
            Tags=_tags(i),
        )
    ]


def _role_policy(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "iam",
            "PutRolePolicy",
            RoleName=i.get("role"),
            PolicyName=i.get("name"),
            PolicyDocument=i.get("policy"),
        )
    ]


def _role_policy_attachment(i: Inputs, region: str) -> list[Call]:
    return [_call("iam", "AttachRolePolicy", RoleName=i.get("role"), PolicyArn=i.get("policyArn"))]


def _oidc_provider(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "iam",
            "CreateOpenIDConnectProvider",
            Url=i.get("url"),
            ClientIDList=i.get("clientIdLists"),
            ThumbprintList=i.get("thumbprintLists"),
            Tags=_tags(i),
        )
    ]


def _kms_key(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "kms",
            "CreateKey",
            Description=i.get("description"),
            Policy=i.get("policy"),
            Tags=_tags(i, "TagKey", "TagValue"),
        )
    ]


def _kms_alias(i: Inputs, region: str) -> list[Call]:
    return [_call("kms", "CreateAlias", AliasName=i.get("name"), TargetKeyId=i.get("targetKeyId"))]


def _repository(i: Inputs, region: str) -> list[Call]:
    encryption = (i.get("encryptionConfigurations") or [{}])[0]
    return [
        _call(
            "ecr",
            "CreateRepository",
            repositoryName=i.get("name"),
            imageTagMutability=i.get("imageTagMutability"),
            imageScanningConfiguration={
                "scanOnPush": (i.get("imageScanningConfiguration") or {}).get("scanOnPush")
            },
            encryptionConfiguration={
                "encryptionType": encryption.get("encryptionType"),
                "kmsKey": encryption.get("kmsKey"),
            }
            if encryption
            else None,
            tags=_tags(i),
        )
    ]


def _ecr_lifecycle(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "ecr",
            "PutLifecyclePolicy",
            repositoryName=i.get("repository"),
            lifecyclePolicyText=i.get("policy"),
        )
    ]


def _topic(i: Inputs, region: str) -> list[Call]:
    attributes = {"KmsMasterKeyId": i["kmsMasterKeyId"]} if i.get("kmsMasterKeyId") else None
    return [_call("sns", "CreateTopic", Name=i.get("name"), Attributes=attributes, Tags=_tags(i))]


def _topic_policy(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "sns",
            "SetTopicAttributes",
            TopicArn=i.get("arn"),
            AttributeName="Policy",
            AttributeValue=i.get("policy"),
        )
    ]


def _subscription(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "sns",
            "Subscribe",
            TopicArn=i.get("topic"),
            Protocol=i.get("protocol"),
            Endpoint=i.get("endpoint"),
        )
    ]


# EKS and EC2 -------------------------------------------------------------------------------


def _cluster(i: Inputs, region: str) -> list[Call]:
    vpc = i.get("vpcConfig") or {}
    encryption = i.get("encryptionConfig") or {}
    access = i.get("accessConfig") or {}
    return [
        _call(
            "eks",
            "CreateCluster",
            name=i.get("name"),
            version=i.get("version"),
            roleArn=i.get("roleArn"),
            resourcesVpcConfig={
                "subnetIds": vpc.get("subnetIds"),
                "securityGroupIds": vpc.get("securityGroupIds"),
                "endpointPublicAccess": vpc.get("endpointPublicAccess"),
                "endpointPrivateAccess": vpc.get("endpointPrivateAccess"),
                "publicAccessCidrs": vpc.get("publicAccessCidrs"),
            },
            logging={
                "clusterLogging": [{"types": i.get("enabledClusterLogTypes"), "enabled": True}]
            }
            if i.get("enabledClusterLogTypes")
            else None,
            encryptionConfig=[
                {
                    "resources": encryption.get("resources"),
                    "provider": {"keyArn": (encryption.get("provider") or {}).get("keyArn")},
                }
            ]
            if encryption
            else None,
            accessConfig={
                "authenticationMode": access.get("authenticationMode"),
                "bootstrapClusterCreatorAdminPermissions": access.get(
                    "bootstrapClusterCreatorAdminPermissions"
                ),
            }
            if access
            else None,
            tags=i.get("tags") or None,
        )
    ]


def _node_group(i: Inputs, region: str) -> list[Call]:
    scaling = i.get("scalingConfig") or {}
    update = i.get("updateConfig") or {}
    return [
        _call(
            "eks",
            "CreateNodegroup",
            clusterName=i.get("clusterName"),
            nodegroupName=i.get("nodeGroupName"),
            scalingConfig={
                "minSize": scaling.get("minSize"),
                "maxSize": scaling.get("maxSize"),
                "desiredSize": scaling.get("desiredSize"),
            },
            subnets=i.get("subnetIds"),
            instanceTypes=i.get("instanceTypes"),
            amiType=i.get("amiType"),
            nodeRole=i.get("nodeRoleArn"),
            updateConfig={"maxUnavailable": update.get("maxUnavailable")} if update else None,
            tags=i.get("tags") or None,
        )
    ]


def _addon(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "eks",
            "CreateAddon",
            clusterName=i.get("clusterName"),
            addonName=i.get("addonName"),
            configurationValues=i.get("configurationValues"),
            resolveConflicts=i.get("resolveConflictsOnCreate"),
            tags=i.get("tags") or None,
        )
    ]


def _access_entry(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "eks",
            "CreateAccessEntry",
            clusterName=i.get("clusterName"),
            principalArn=i.get("principalArn"),
            type=i.get("type"),
            tags=i.get("tags") or None,
        )
    ]


def _access_policy(i: Inputs, region: str) -> list[Call]:
    scope = i.get("accessScope") or {}
    return [
        _call(
            "eks",
            "AssociateAccessPolicy",
            clusterName=i.get("clusterName"),
            principalArn=i.get("principalArn"),
            policyArn=i.get("policyArn"),
            accessScope={"type": scope.get("type"), "namespaces": scope.get("namespaces")},
        )
    ]


def _vpc(i: Inputs, region: str) -> list[Call]:
    return [_call("ec2", "CreateVpc", CidrBlock=i.get("cidrBlock"))]


def _subnet(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "ec2",
            "CreateSubnet",
            VpcId=i.get("vpcId"),
            CidrBlock=i.get("cidrBlock"),
            AvailabilityZone=i.get("availabilityZone"),
        )
    ]


def _nat_gateway(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "ec2",
            "CreateNatGateway",
            AllocationId=i.get("allocationId"),
            SubnetId=i.get("subnetId"),
        )
    ]


def _eip(i: Inputs, region: str) -> list[Call]:
    return [_call("ec2", "AllocateAddress", Domain=i.get("domain"))]


def _route_table_association(i: Inputs, region: str) -> list[Call]:
    return [
        _call(
            "ec2",
            "AssociateRouteTable",
            RouteTableId=i.get("routeTableId"),
            SubnetId=i.get("subnetId"),
        )
    ]


Converter = Callable[[Inputs, str], list[Call]]
CALLS: dict[str, Converter] = {
    "aws:sagemaker/model:Model": _sagemaker_model,
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": _sagemaker_endpoint_config,
    "aws:sagemaker/endpoint:Endpoint": _sagemaker_endpoint,
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": _mlflow_server,
    "aws:appautoscaling/target:Target": _scaling_target,
    "aws:appautoscaling/policy:Policy": _scaling_policy,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _metric_alarm,
    "aws:cloudwatch/dashboard:Dashboard": _dashboard,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:s3/bucket:Bucket": _bucket,
    "aws:s3/bucketVersioning:BucketVersioning": _bucket_versioning,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        _bucket_encryption
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _public_access_block,
    "aws:s3/bucketPolicy:BucketPolicy": _bucket_policy,
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": _ownership,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _lifecycle,
    "aws:iam/role:Role": _role,
    "aws:iam/rolePolicy:RolePolicy": _role_policy,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _role_policy_attachment,
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": _oidc_provider,
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _kms_alias,
    "aws:ecr/repository:Repository": _repository,
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": _ecr_lifecycle,
    "aws:sns/topic:Topic": _topic,
    "aws:sns/topicPolicy:TopicPolicy": _topic_policy,
    "aws:sns/topicSubscription:TopicSubscription": _subscription,
    "aws:eks/cluster:Cluster": _cluster,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "aws:eks/addon:Addon": _addon,
    "aws:eks/accessEntry:AccessEntry": _access_entry,
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": _access_policy,
    "aws:ec2/vpc:Vpc": _vpc,
    "aws:ec2/subnet:Subnet": _subnet,
    "aws:ec2/natGateway:NatGateway": _nat_gateway,
    "aws:ec2/eip:Eip": _eip,
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _route_table_association,
}
# Planned AWS types whose calls are not checked, and why (a test keeps every type in one place).
NOT_CALLED: dict[str, str] = {
    # CreateInternetGateway and CreateRouteTable take nothing the program sets beyond ids the
    # cloud assigns (the VPC, the gateway); their routes are CreateRoute with those ids.
    "aws:ec2/internetGateway:InternetGateway": "no planned parameter (ids only)",
    "aws:ec2/routeTable:RouteTable": "no planned parameter (ids only)",
}


def calls_for(type_: str, inputs: Inputs, region: str) -> list[Call] | None:
    """The calls a resource of ``type_`` becomes, or None for a type this module does not know."""
    converter = CALLS.get(type_)
    return converter(inputs, region) if converter is not None else None
