"""The calls pulumi-aws makes for SageMaker resources and their Application Auto Scaling."""

from __future__ import annotations

from typing import Any

from infra.api.request import Call, Converter, Inputs, call, tag_list


def _sagemaker_model(i: Inputs, region: str) -> list[Call]:
    container = i.get("primaryContainer") or {}
    vpc = i.get("vpcConfig") or {}
    return [
        call(
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
            Tags=tag_list(i),
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
        call(
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
            Tags=tag_list(i),
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
        call("sagemaker", "CreateEndpoint", **common, Tags=tag_list(i)),
        call("sagemaker", "UpdateEndpoint", **common),
    ]


def _mlflow_server(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "sagemaker",
            "CreateMlflowTrackingServer",
            TrackingServerName=i.get("trackingServerName"),
            ArtifactStoreUri=i.get("artifactStoreUri"),
            TrackingServerSize=i.get("trackingServerSize"),
            RoleArn=i.get("roleArn"),
            AutomaticModelRegistration=i.get("automaticModelRegistration"),
            Tags=tag_list(i),
        )
    ]


# Application Auto Scaling, CloudWatch, Logs ------------------------------------------------


def _scaling_target(i: Inputs, region: str) -> list[Call]:
    return [
        call(
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
        call(
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


CONVERTERS: dict[str, Converter] = {
    "aws:sagemaker/model:Model": _sagemaker_model,
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": _sagemaker_endpoint_config,
    "aws:sagemaker/endpoint:Endpoint": _sagemaker_endpoint,
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": _mlflow_server,
    "aws:appautoscaling/target:Target": _scaling_target,
    "aws:appautoscaling/policy:Policy": _scaling_policy,
}
