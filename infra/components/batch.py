"""Scheduled batch scoring: EventBridge Scheduler starts a SageMaker pipeline that checks the
input's data quality and scores it with Batch Transform on N instances.

Why these services: SageMaker Pipelines runs both steps as SageMaker jobs (no code of ours to
host, retries and lineage included), its Processing step runs the serving image's own input
check before scoring (or its QualityCheck step Model Monitor's, for accounts that have it),
and EventBridge Scheduler has a templated target for ``StartPipelineExecution`` (one
least-privilege role, retries, time zones), where an EventBridge rule schedule would need the
same role and offers no retry policy per schedule. Step Functions would add a state machine to
what Pipelines already is. The pipeline definition is ``infra/pipeline_definition.py``; every
run that fails or is stopped reaches the stack's alert topic through an EventBridge rule on
"SageMaker Model Building Pipeline Execution Status Change" events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from core.transform import container_environment
from infra import policies
from infra.config.batch import BatchSchedule
from infra.pipeline_definition import BatchPipelineSpec, definition

RESOURCE_TYPE = "mlship:batch:ScheduledBatch"
# EventBridge events SageMaker sends ("Automating SageMaker AI with Amazon EventBridge",
# pipeline execution status change; statuses as DescribePipelineExecution lists them).
PIPELINE_STATUS_EVENT = "SageMaker Model Building Pipeline Execution Status Change"
ALERT_STATUSES = ("Failed", "Stopped")


@dataclass(frozen=True)
class ScheduledBatchArgs:
    """Inputs of :class:`ScheduledBatch`.

    Attributes:
        name_prefix: Prefix of every AWS name (``<project>-<environment>``).
        account_id: AWS account id (trust-policy guards, ARNs).
        region: AWS region (the Model Monitor image, log-group ARNs).
        batch: The schedule, sizes and prefixes.
        bucket_name: Artifact bucket (input, output, baseline, bundle).
        bucket_arn: Its ARN.
        key_arn: The stack key (bucket objects, job volumes and outputs).
        repository_url: ECR repository of the serving image.
        repository_arn: Its ARN.
        image_tag: The serving image tag (the endpoint's).
        model_data_key: The bundle's key in the bucket.
        topic_arn: The stack's alert topic (failed or stopped runs).
        tags: Tags on every taggable child.
        max_missing_percent: mlship's check fails a feature missing in more of the rows
            (the stack's alarmMissingPercent; None: no limit).
        max_out_of_range_percent: The same for values outside the training range
            (alarmOutOfRangePercent).
    """

    name_prefix: str
    account_id: pulumi.Input[str]
    region: str
    batch: BatchSchedule
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    repository_url: pulumi.Input[str]
    repository_arn: pulumi.Input[str]
    image_tag: str
    model_data_key: str
    topic_arn: pulumi.Input[str]
    tags: dict[str, str] = field(default_factory=dict)
    max_missing_percent: int | None = None
    max_out_of_range_percent: int | None = None


class ScheduledBatch(pulumi.ComponentResource):
    """Job role, batch model, pipeline (check, then score), its schedule and status alerts."""

    pipeline_arn: pulumi.Output[str]
    pipeline_name: pulumi.Output[str]
    schedule_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ScheduledBatchArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        self._child = pulumi.ResourceOptions(parent=self)
        job_role, job_policy = self._create_job_role(name, args)
        model = self._create_model(name, args, job_role, job_policy)
        pipeline = self._create_pipeline(name, args, job_role, model)
        schedule = self._create_schedule(name, args, pipeline)
        self._create_status_alerts(name, args, pipeline)
        self.pipeline_arn = pipeline.arn
        self.pipeline_name = pipeline.pipeline_name
        self.schedule_arn = schedule.arn
        self.register_outputs(
            {
                "pipeline_arn": self.pipeline_arn,
                "pipeline_name": self.pipeline_name,
                "schedule_arn": self.schedule_arn,
            }
        )

    def _role(self, name: str, args: ScheduledBatchArgs, role: str, service: str) -> aws.iam.Role:
        return aws.iam.Role(
            f"{name}-{role}-role",
            name=f"{args.name_prefix}-batch-{role}",
            assume_role_policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: policies.dumps(policies.service_assume_role(service, account))
            ),
            tags=args.tags,
            opts=self._child,
        )

    def _create_job_role(
        self, name: str, args: ScheduledBatchArgs
    ) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        role = self._role(name, args, "job", "sagemaker.amazonaws.com")
        b = args.batch
        policy = aws.iam.RolePolicy(
            f"{name}-job-policy",
            role=role.id,
            policy=pulumi.Output.all(
                args.bucket_arn, args.repository_arn, args.key_arn, args.account_id
            ).apply(
                lambda v: policies.dumps(
                    policies.batch_job_policy(
                        bucket_arn=v[0],
                        repository_arn=v[1],
                        key_arn=v[2],
                        region=args.region,
                        account_id=v[3],
                        input_prefix=b.input_prefix,
                        output_prefix=b.output_prefix,
                        baseline_prefix=b.checked_baseline,
                        model_prefix=args.model_data_key.split("/", 1)[0] + "/",
                    )
                )
            ),
            opts=self._child,
        )
        return role, policy

    def _create_model(
        self,
        name: str,
        args: ScheduledBatchArgs,
        role: aws.iam.Role,
        role_policy: aws.iam.RolePolicy,
    ) -> aws.sagemaker.Model:
        # Its own model (not the endpoint's): the container's body limit is the job's
        # MaxPayloadInMB, as for a job `mlship` launches (core.transform).
        return aws.sagemaker.Model(
            f"{name}-model",
            # Auto-named (like the endpoint's model): a new image tag replaces the model, and
            # the replacement is created before the old one is deleted.
            execution_role_arn=role.arn,
            primary_container=aws.sagemaker.ModelPrimaryContainerArgs(
                image=pulumi.Output.concat(args.repository_url, ":", args.image_tag),
                model_data_url=pulumi.Output.concat(
                    "s3://", args.bucket_name, "/", args.model_data_key
                ),
                environment=container_environment(args.batch.max_payload_mb),
            ),
            enable_network_isolation=True,
            tags=args.tags,
            # SageMaker checks the role's permissions when the model is created.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )

    def _create_pipeline(
        self,
        name: str,
        args: ScheduledBatchArgs,
        job_role: aws.iam.Role,
        model: aws.sagemaker.Model,
    ) -> aws.sagemaker.Pipeline:
        b = args.batch
        role = self._role(name, args, "pipeline", "sagemaker.amazonaws.com")
        role_policy = aws.iam.RolePolicy(
            f"{name}-pipeline-policy",
            role=role.id,
            policy=pulumi.Output.all(
                args.account_id, job_role.arn, args.bucket_arn, args.key_arn
            ).apply(
                lambda v: policies.dumps(
                    policies.batch_pipeline_policy(
                        region=args.region,
                        account_id=v[0],
                        job_role_arn=v[1],
                        bucket_arn=v[2],
                        key_arn=v[3],
                        output_prefix=b.output_prefix,
                        baseline_prefix=b.checked_baseline,
                    )
                )
            ),
            opts=self._child,
        )
        image = pulumi.Output.concat(args.repository_url, ":", args.image_tag)
        body = pulumi.Output.all(
            args.bucket_name, args.key_arn, job_role.arn, model.name, image
        ).apply(
            lambda v: json.dumps(
                definition(
                    BatchPipelineSpec(
                        region=args.region,
                        bucket=v[0],
                        input_prefix=b.input_prefix,
                        output_prefix=b.output_prefix,
                        baseline_prefix=b.baseline_prefix,
                        model_name=v[3],
                        job_role_arn=v[2],
                        key_arn=v[1],
                        instance_type=b.instance_type,
                        instance_count=b.instance_count,
                        check_instance_type=b.check_instance_type,
                        check_volume_gb=b.check_volume_gb,
                        check_max_runtime_minutes=b.check_max_runtime_minutes,
                        max_payload_mb=b.max_payload_mb,
                        content_type=b.content_type,
                        compression=b.compression,
                        id_columns=b.id_columns,
                        features_attribute=b.features_attribute,
                        input_check=b.input_check,
                        image_uri=v[4],
                        model_data_key=args.model_data_key,
                        max_missing_percent=args.max_missing_percent,
                        max_out_of_range_percent=args.max_out_of_range_percent,
                    )
                ),
                sort_keys=True,
            )
        )
        pipeline_name = f"{args.name_prefix}-batch-scoring"
        return aws.sagemaker.Pipeline(
            f"{name}-pipeline",
            pipeline_name=pipeline_name,
            pipeline_display_name=pipeline_name,
            pipeline_description=f"Scheduled batch scoring of {args.name_prefix}",
            role_arn=role.arn,
            pipeline_definition=body,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )

    def _create_schedule(
        self, name: str, args: ScheduledBatchArgs, pipeline: aws.sagemaker.Pipeline
    ) -> aws.scheduler.Schedule:
        role = self._role(name, args, "scheduler", "scheduler.amazonaws.com")
        role_policy = aws.iam.RolePolicy(
            f"{name}-scheduler-policy",
            role=role.id,
            policy=pipeline.arn.apply(
                lambda arn: policies.dumps(policies.start_pipeline_policy(pipeline_arn=arn))
            ),
            opts=self._child,
        )
        return aws.scheduler.Schedule(
            f"{name}-schedule",
            name=f"{args.name_prefix}-batch-scoring",
            description=f"Starts {args.name_prefix}-batch-scoring",
            schedule_expression=args.batch.expression,
            schedule_expression_timezone="UTC",
            flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
            target=aws.scheduler.ScheduleTargetArgs(
                arn=pipeline.arn,
                role_arn=role.arn,
                # The SageMaker templated target (EventBridge Scheduler API reference,
                # SageMakerPipelineParameters): the run's parameters are the defaults.
                sagemaker_pipeline_parameters=(
                    aws.scheduler.ScheduleTargetSagemakerPipelineParametersArgs()
                ),
                retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(
                    maximum_event_age_in_seconds=3600, maximum_retry_attempts=3
                ),
            ),
            state="ENABLED",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )

    def _create_status_alerts(
        self, name: str, args: ScheduledBatchArgs, pipeline: aws.sagemaker.Pipeline
    ) -> None:
        rule = aws.cloudwatch.EventRule(
            f"{name}-status-rule",
            name=f"{args.name_prefix}-batch-scoring-status",
            description="Failed or stopped scheduled batch scoring runs",
            event_pattern=pipeline.arn.apply(
                lambda arn: json.dumps(pipeline_status_pattern(arn), sort_keys=True)
            ),
            tags=args.tags,
            opts=self._child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-status-alert",
            rule=rule.name,
            target_id="alert-topic",
            arn=args.topic_arn,
            input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                input_paths={
                    "status": "$.detail.currentPipelineExecutionStatus",
                    "execution": "$.detail.pipelineExecutionArn",
                },
                input_template=(
                    '"mlship scheduled batch scoring run <execution> is <status>: see '
                    'SageMaker Studio > Pipelines for the failed step."'
                ),
            ),
            opts=self._child,
        )


def pipeline_status_pattern(pipeline_arn: str) -> dict[str, object]:
    """EventBridge pattern: this pipeline's runs that end Failed or Stopped."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": [PIPELINE_STATUS_EVENT],
        "detail": {
            "pipelineArn": [pipeline_arn],
            "currentPipelineExecutionStatus": list(ALERT_STATUSES),
        },
    }
