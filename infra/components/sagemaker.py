"""SageMakerEndpoint: execution role, model, endpoint configuration, endpoint, autoscaling.

Updates are blue/green (all at once, canary or linear) and roll back automatically when one of
the endpoint's rollback alarms fires during the bake time. Models and endpoint configurations
are immutable in SageMaker, so Pulumi auto-names them (a new image or bundle creates new ones and
the endpoint moves to them); the endpoint keeps its name so alarms and clients can find it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_aws.sagemaker as sm

from infra import policies
from infra.config import Autoscaling, Rollout, Serverless
from infra.naming import VARIANT_NAME

RESOURCE_TYPE = "mlship:sagemaker:SageMakerEndpoint"
# SageMaker extracts model.tar.gz here before the container starts.
SAGEMAKER_MODEL_DIR = "/opt/ml/model"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_METRIC = "SageMakerVariantInvocationsPerInstance"


def container_environment(*, log_level: str) -> dict[str, str]:
    """The serving container's ``MLSHIP_`` settings (names are ``AppSettings`` fields)."""
    return {"MLSHIP_MODEL_URI": SAGEMAKER_MODEL_DIR, "MLSHIP_LOG_LEVEL": log_level}


def traffic_routing(
    rollout: Rollout,
) -> sm.EndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfigurationArgsDict:
    """SageMaker ``TrafficRoutingConfiguration`` for the configured rollout strategy."""
    routing: sm.EndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfigurationArgsDict = {
        "type": rollout.strategy.upper(),
        "wait_interval_in_seconds": rollout.bake_seconds,
    }
    if rollout.strategy == "canary":
        routing["canary_size"] = {"type": "CAPACITY_PERCENT", "value": rollout.percent}
    elif rollout.strategy == "linear":
        routing["linear_step_size"] = {"type": "CAPACITY_PERCENT", "value": rollout.percent}
    return routing


@dataclass(frozen=True)
class SageMakerEndpointArgs:
    """Inputs of :class:`SageMakerEndpoint`.

    Attributes:
        endpoint_name: The endpoint's name (alarms watch it by name).
        execution_role_name: IAM name of the execution role.
        account_id: AWS account id.
        region: AWS region.
        bucket_name: Artifact bucket holding the bundle and the captures.
        bucket_arn: Its ARN.
        key_arn: KMS key of the bucket (captures and volumes are encrypted with it).
        repository_url: ECR repository URL of the serving image.
        repository_arn: Its ARN.
        image_tag: Image tag to run.
        model_data_key: Key of ``model.tar.gz`` in the bucket.
        instance_type: Instance type (instance-based endpoints).
        instance_count: Initial instance count.
        serverless: Serverless sizing, or None for instances.
        autoscaling: Scaling bounds and target.
        data_capture_percent: Percentage of requests captured (0 = off).
        rollout: Blue/green traffic shifting.
        rollback_alarm_names: Alarms that roll a deployment back.
        log_level: ``MLSHIP_LOG_LEVEL`` of the container.
        subnet_ids: Run the model in these subnets (empty: SageMaker's network).
        security_group_ids: Security groups for the model's network interfaces.
        tags: Tags on every taggable child.
    """

    endpoint_name: str
    execution_role_name: str
    account_id: pulumi.Input[str]
    region: str
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    repository_url: pulumi.Input[str]
    repository_arn: pulumi.Input[str]
    image_tag: str
    model_data_key: str
    instance_type: str
    instance_count: int
    serverless: Serverless | None
    autoscaling: Autoscaling
    data_capture_percent: int
    rollout: Rollout
    rollback_alarm_names: Sequence[pulumi.Input[str]]
    log_level: str
    subnet_ids: Sequence[str] = ()
    security_group_ids: Sequence[str] = ()
    tags: dict[str, str] = field(default_factory=dict)


class SageMakerEndpoint(pulumi.ComponentResource):
    """A real-time (or serverless) endpoint with safe rollouts and autoscaling."""

    endpoint_name: pulumi.Output[str]
    endpoint_config_name: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: SageMakerEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        self._child = pulumi.ResourceOptions(parent=self)
        # Each release replaces the model and the endpoint configuration; Pulumi then deletes the
        # old ones. When SageMaker rolls the update back, the endpoint keeps serving the old
        # configuration the provider believed replaced (terraform-provider-aws #48997, #46663),
        # and with it deleted the next update fails ("Could not find endpoint configuration",
        # #40048). So they stay in SageMaker, and the rollout prunes them once a release is
        # verified (infra/rollout.py).
        self._retained = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        role = self._create_execution_role(name, args)
        model = self._create_model(name, args, role)
        config = self._create_endpoint_config(name, args, model)
        endpoint = aws.sagemaker.Endpoint(
            f"{name}-endpoint",
            name=args.endpoint_name,
            endpoint_config_name=config.name,
            deployment_config=self._deployment_config(args),
            tags=args.tags,
            opts=self._child,
        )
        if args.serverless is None and args.autoscaling.scales:
            self._create_autoscaling(name, args, endpoint)
        self.endpoint_name = endpoint.name
        # The configuration this update asked for (not the endpoint's read-back attribute, which
        # shows whatever SageMaker kept after a rollback): the rollout compares the live endpoint
        # with it (infra/rollout.py).
        self.endpoint_config_name = config.name
        self.execution_role_arn = role.arn
        self.register_outputs(
            {
                "endpoint_name": self.endpoint_name,
                "endpoint_config_name": self.endpoint_config_name,
                "execution_role_arn": self.execution_role_arn,
            }
        )

    def _create_execution_role(self, name: str, args: SageMakerEndpointArgs) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{name}-execution-role",
            name=args.execution_role_name,
            description="SageMaker runs the mlship model with this role",
            # No aws:SourceAccount condition: SageMaker does not document it for role trust.
            assume_role_policy=policies.dumps(
                policies.service_assume_role("sagemaker.amazonaws.com")
            ),
            tags=args.tags,
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{name}-execution-policy",
            role=role.id,
            policy=pulumi.Output.all(
                args.bucket_arn,
                args.repository_arn,
                args.key_arn,
                args.account_id,
                pulumi.Output.all(*args.rollback_alarm_names),
            ).apply(
                lambda v: policies.dumps(
                    policies.sagemaker_execution_policy(
                        bucket_arn=v[0],
                        repository_arn=v[1],
                        key_arn=v[2],
                        account_id=v[3],
                        region=args.region,
                        rollback_alarms=v[4] if args.serverless is None else (),
                        in_vpc=bool(args.subnet_ids),
                    )
                )
            ),
            opts=self._child,
        )
        return role

    def _create_model(
        self, name: str, args: SageMakerEndpointArgs, role: aws.iam.Role
    ) -> aws.sagemaker.Model:
        vpc: sm.ModelVpcConfigArgsDict | None = None
        if args.subnet_ids:
            vpc = {
                "subnets": list(args.subnet_ids),
                "security_group_ids": list(args.security_group_ids),
            }
        return aws.sagemaker.Model(
            f"{name}-model",
            execution_role_arn=role.arn,
            primary_container={
                "image": pulumi.Output.concat(args.repository_url, ":", args.image_tag),
                "model_data_url": pulumi.Output.concat(
                    "s3://", args.bucket_name, "/", args.model_data_key
                ),
                "environment": container_environment(log_level=args.log_level),
            },
            # The container needs no network: SageMaker downloads the bundle and captures data.
            # (Serverless endpoints support neither network isolation nor a VPC.)
            enable_network_isolation=args.serverless is None,
            vpc_config=vpc,
            tags=args.tags,
            opts=self._retained,
        )

    def _create_endpoint_config(
        self, name: str, args: SageMakerEndpointArgs, model: aws.sagemaker.Model
    ) -> aws.sagemaker.EndpointConfiguration:
        variant: sm.EndpointConfigurationProductionVariantArgsDict = {
            "variant_name": VARIANT_NAME,
            "model_name": model.name,
        }
        if args.serverless is not None:
            variant["serverless_config"] = {
                "memory_size_in_mb": args.serverless.memory_mb,
                "max_concurrency": args.serverless.max_concurrency,
            }
        else:
            variant["instance_type"] = args.instance_type
            variant["initial_instance_count"] = args.instance_count
            variant["initial_variant_weight"] = 1.0
        capture: sm.EndpointConfigurationDataCaptureConfigArgsDict | None = None
        if args.data_capture_percent > 0:
            capture = {
                "enable_capture": True,
                "initial_sampling_percentage": args.data_capture_percent,
                "destination_s3_uri": pulumi.Output.concat("s3://", args.bucket_name, "/capture"),
                "kms_key_id": args.key_arn,
                "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
                "capture_content_type_header": {
                    "json_content_types": ["application/json"],
                    "csv_content_types": ["text/csv"],
                },
            }
        return aws.sagemaker.EndpointConfiguration(
            f"{name}-config",
            production_variants=[variant],
            data_capture_config=capture,
            # Encrypts the instances' ML storage volumes (not available for serverless).
            kms_key_arn=args.key_arn if args.serverless is None else None,
            tags=args.tags,
            opts=self._retained,
        )

    @staticmethod
    def _deployment_config(
        args: SageMakerEndpointArgs,
    ) -> sm.EndpointDeploymentConfigArgsDict | None:
        if args.serverless is not None:
            return None  # traffic shifting and auto-rollback need instance fleets
        return {
            "blue_green_update_policy": {
                "traffic_routing_configuration": traffic_routing(args.rollout),
                "termination_wait_in_seconds": args.rollout.termination_wait_seconds,
                "maximum_execution_timeout_in_seconds": args.rollout.timeout_seconds,
            },
            "auto_rollback_configuration": {
                "alarms": [{"alarm_name": alarm} for alarm in args.rollback_alarm_names]
            },
        }

    def _create_autoscaling(
        self, name: str, args: SageMakerEndpointArgs, endpoint: aws.sagemaker.Endpoint
    ) -> None:
        target = aws.appautoscaling.Target(
            f"{name}-scaling-target",
            service_namespace="sagemaker",
            resource_id=endpoint.name.apply(lambda n: f"endpoint/{n}/variant/{VARIANT_NAME}"),
            scalable_dimension=SCALABLE_DIMENSION,
            min_capacity=args.autoscaling.min_capacity,
            max_capacity=args.autoscaling.max_capacity,
            tags=args.tags,
            opts=self._child,
        )
        aws.appautoscaling.Policy(
            f"{name}-scaling-policy",
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension,
            target_tracking_scaling_policy_configuration={
                "target_value": float(args.autoscaling.target_invocations),
                "predefined_metric_specification": {"predefined_metric_type": SCALING_METRIC},
                "scale_in_cooldown": 300,
                "scale_out_cooldown": 60,
            },
            opts=self._child,
        )
