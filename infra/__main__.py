"""Composition root of the Pulumi program: StackConfig -> components -> stack outputs.

``pulumi up`` runs this file as ``__main__``; ``mlship plan`` imports it and calls :func:`main`
under Pulumi's mock runtime. Nothing here runs at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.argo_rollouts import ArgoRollouts, ArgoRolloutsArgs
from infra.components.batch import ScheduledBatch, ScheduledBatchArgs
from infra.components.eks import EksCluster, EksClusterArgs
from infra.components.github_oidc import GithubDeployAccess, GithubDeployAccessArgs
from infra.components.kubernetes import KubernetesService, KubernetesServiceArgs
from infra.components.mlflow import MlflowServer, MlflowServerArgs
from infra.components.monitoring import (
    AlarmSpec,
    Monitoring,
    MonitoringArgs,
    eks_alarm_specs,
    sagemaker_alarm_specs,
)
from infra.components.network import Network, NetworkArgs
from infra.components.prometheus import ManagedPrometheus, ManagedPrometheusArgs
from infra.components.registry import ImageRepository, ImageRepositoryArgs
from infra.components.retrain import DriftRetrain, DriftRetrainArgs
from infra.components.rollout import RolloutPolicy, RolloutPolicyArgs
from infra.components.sagemaker import SageMakerEndpoint, SageMakerEndpointArgs
from infra.components.signals import (
    DRIFT_ALARM_ROLE,
    ModelSignals,
    ModelSignalsArgs,
    signal_alarm_specs,
    signal_widgets,
)
from infra.components.storage import ArtifactStore, ArtifactStoreArgs
from infra.components.training import TrainingRole, TrainingRoleArgs
from infra.config import StackConfig
from infra.config.batch import BatchSchedule
from infra.naming import VARIANT_NAME, Naming
from infra.rollout_spec import FLAGS_KEY, flags_json
from infra.signals import log_group_name

# Stack output names: CI (.github/workflows) and the README refer to these.
OUTPUTS = (
    "target",
    "bucketName",
    "dvcRemoteUri",
    "trainingDataUri",
    "stagingUri",
    "repositoryUrl",
    "deployRoleArn",
    "dashboardUrl",
    "alertTopicArn",
    "endpointName",
    "endpointConfigName",
    "executionRoleArn",
    "clusterName",
    "serviceUrl",
    "podRoleArn",
    "mlflowTrackingServerArn",
    "batchPipelineName",
    "batchScheduleArn",
    "batchBaselinePrefix",
    "trainingRoleArn",
)


def main() -> None:
    """Build the stack from its configuration and export its outputs."""
    cfg = StackConfig.load()
    for name, value in build(cfg).items():
        pulumi.export(name, value)


@dataclass(frozen=True)
class _Base:
    """What both targets share: names, tags, the account, the bucket and the registry."""

    cfg: StackConfig
    naming: Naming
    tags: dict[str, str]
    account_id: pulumi.Output[str]
    store: ArtifactStore
    registry: ImageRepository
    training_role: TrainingRole
    tracking_server_arn: pulumi.Input[str] | None


def build(cfg: StackConfig) -> dict[str, pulumi.Input[str]]:
    """Create every component for ``cfg``; returns the stack outputs (names in ``OUTPUTS``)."""
    naming = Naming(cfg.project, cfg.environment)
    tags = naming.tags(cfg.tags)
    account_id = aws.get_caller_identity_output().account_id
    # Production keeps its history: deleting the key, bucket or repository needs an unprotect.
    protect = cfg.is_production
    store = ArtifactStore(
        naming.name("artifacts"),
        ArtifactStoreArgs(
            bucket_name=account_id.apply(lambda a: naming.bucket(a, cfg.region)),
            account_id=account_id,
            tags=tags,
            protect=protect,
        ),
    )
    registry = ImageRepository(
        naming.name("images"),
        ImageRepositoryArgs(
            repository_name=f"{cfg.image_repository}-{cfg.environment}",
            key_arn=store.key_arn,
            tags=tags,
            protect=protect,
        ),
    )
    training = TrainingRole(
        naming.name("training"),
        TrainingRoleArgs(
            role_name=naming.name("training"),
            account_id=account_id,
            region=cfg.region,
            bucket_arn=store.bucket_arn,
            repository_arn=registry.repository_arn,
            key_arn=store.key_arn,
            tags=tags,
        ),
    )
    # The registry: this stack's own managed MLflow server (it costs money: a per-stack
    # choice), another stack's, or none (the gate then compares with the served bundle).
    tracking_server_arn: pulumi.Input[str] | None = cfg.mlflow_tracking_server_arn
    if cfg.mlflow_server:
        tracking_server_arn = _mlflow(naming, cfg, store, tags)
    base = _Base(cfg, naming, tags, account_id, store, registry, training, tracking_server_arn)
    outputs: dict[str, pulumi.Input[str]] = {
        "target": cfg.target,
        "bucketName": store.bucket_name,
        "dvcRemoteUri": store.dvc_remote_uri,
        "trainingDataUri": store.data_uri,
        "stagingUri": store.staging_uri,
        "repositoryUrl": registry.repository_url,
        "trainingRoleArn": training.role_arn,
    }
    if cfg.target == "sagemaker":
        deploy, monitoring, serving = _sagemaker(base)
    else:
        deploy, monitoring, serving = _eks(base)
    outputs |= serving
    if tracking_server_arn is not None:
        outputs["mlflowTrackingServerArn"] = tracking_server_arn
    if cfg.batch is not None:
        outputs |= _batch(base, monitoring, cfg.batch)
    outputs |= {
        "deployRoleArn": deploy.role_arn,
        "dashboardUrl": monitoring.dashboard_url,
        "alertTopicArn": monitoring.topic_arn,
    }
    return outputs


_Serving = tuple[GithubDeployAccess, Monitoring, dict[str, pulumi.Input[str]]]


def _sagemaker(b: _Base) -> _Serving:
    cfg, naming = b.cfg, b.naming
    monitoring = _monitoring(
        b,
        sagemaker_alarm_specs(
            endpoint_name=naming.endpoint,
            variant_name=VARIANT_NAME,
            alarms=cfg.alarms,
            serverless=cfg.serverless is not None,
        ),
    )
    endpoint = SageMakerEndpoint(
        naming.name("sagemaker"),
        SageMakerEndpointArgs(
            endpoint_name=naming.endpoint,
            execution_role_name=naming.name("sagemaker-execution"),
            account_id=b.account_id,
            region=cfg.region,
            bucket_name=b.store.bucket_name,
            bucket_arn=b.store.bucket_arn,
            key_arn=b.store.key_arn,
            repository_url=b.registry.repository_url,
            repository_arn=b.registry.repository_arn,
            image_tag=cfg.image_tag,
            model_data_key=cfg.model_data_key,
            instance_type=cfg.instance_type,
            instance_count=cfg.instance_count,
            serverless=cfg.serverless,
            autoscaling=cfg.autoscaling,
            data_capture_percent=cfg.data_capture_percent,
            rollout=cfg.rollout,
            rollback_alarm_names=monitoring.rollback_alarm_names,
            log_level=cfg.log_level,
            subnet_ids=cfg.network.subnet_ids,
            security_group_ids=cfg.network.security_group_ids,
            tags=b.tags,
        ),
    )
    _signals(
        b, log_group_name("sagemaker", endpoint_name=naming.endpoint, cluster_name=""), endpoint
    )
    deploy = _deploy_access(b, execution_role_arn=endpoint.execution_role_arn)
    return (
        deploy,
        monitoring,
        {
            "endpointName": endpoint.endpoint_name,
            "endpointConfigName": endpoint.endpoint_config_name,
            "executionRoleArn": endpoint.execution_role_arn,
        },
    )


def _eks(b: _Base) -> _Serving:
    cfg, naming = b.cfg, b.naming
    cluster_name = naming.name("cluster")
    subnet_ids: list[pulumi.Input[str]] = list(cfg.network.subnet_ids)
    if cfg.network.create_vpc:
        network = Network(
            naming.name("network"),
            NetworkArgs(
                cidr=cfg.network.vpc_cidr,
                region=cfg.region,
                cluster_name=cluster_name,
                tags=b.tags,
            ),
        )
        subnet_ids = list(network.private_subnet_ids)
    cluster = EksCluster(
        naming.name("eks"),
        EksClusterArgs(
            cluster_name=cluster_name,
            region=cfg.region,
            kubernetes_version=cfg.eks.kubernetes_version,
            subnet_ids=subnet_ids,
            key_arn=b.store.key_arn,
            node_instance_type=cfg.eks.node_instance_type,
            node_min_size=cfg.eks.node_min_size,
            node_max_size=cfg.eks.node_max_size,
            public_access_cidrs=cfg.eks.public_access_cidrs,
            security_group_ids=cfg.network.security_group_ids,
            tags=b.tags,
        ),
    )
    deploy = _deploy_access(b, cluster_arn=cluster.cluster_arn)
    spec = cfg.rollout_spec
    if spec.model_change:  # the in-app policy the service follows (infra/rollout_spec.py)
        RolloutPolicy(
            naming.name("rollout-policy"),
            RolloutPolicyArgs(
                bucket_name=b.store.bucket_name,
                key_arn=b.store.key_arn,
                document=flags_json(spec),
                tags=b.tags,
            ),
        )
    alarm_specs = eks_alarm_specs(
        cluster_name=cluster_name,
        namespace=cfg.project,
        workload=cfg.project,
        alarms=cfg.alarms,
        min_pods=cfg.autoscaling.min_capacity,
    )
    service = KubernetesService(
        naming.name("service"),
        KubernetesServiceArgs(
            app_name=cfg.project,
            role_name=naming.name("pods"),
            region=cfg.region,
            account_id=b.account_id,
            cluster_name=cluster.cluster_name,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
            deploy_role_arn=deploy.role_arn,
            image=pulumi.Output.concat(b.registry.repository_url, ":", cfg.image_tag),
            bucket_name=b.store.bucket_name,
            bucket_arn=b.store.bucket_arn,
            key_arn=b.store.key_arn,
            model_data_key=cfg.model_data_key,
            log_level=cfg.log_level,
            api_keys_secret=cfg.api_keys_secret,
            min_replicas=cfg.autoscaling.min_capacity,
            max_replicas=cfg.autoscaling.max_capacity,
            target_cpu_percent=cfg.autoscaling.target_cpu_percent,
            cpu=cfg.eks.pod_cpu,
            memory=cfg.eks.pod_memory,
            internal=cfg.eks.service_internal,
            certificate_arn=cfg.eks.service_certificate_arn,
            tags=b.tags,
            argo_rollout=bool(spec.steps),
            challenger_data_key=spec.challenger_data_key,
            flags_key=FLAGS_KEY,
        ),
        provider=cluster.provider,
    )
    if spec.steps:  # image changes: an Argo Rollouts canary, rolled back on the alarms
        ArgoRollouts(
            naming.name("argo-rollouts"),
            ArgoRolloutsArgs(
                app_name=cfg.project,
                labels={"app.kubernetes.io/name": cfg.project},
                steps=spec.steps,
                bake_seconds=cfg.rollout.bake_seconds,
                alarms=alarm_specs,
                role_name=naming.name("argo-rollouts"),
                region=cfg.region,
                oidc_provider_arn=cluster.oidc_provider_arn,
                oidc_issuer=cluster.oidc_issuer,
                tags=b.tags,
            ),
            provider=cluster.provider,
            opts=pulumi.ResourceOptions(depends_on=[service]),
        )
    monitoring = _monitoring(b, alarm_specs)
    _signals(b, log_group_name("eks", endpoint_name="", cluster_name=cluster_name), service)
    if cfg.signals is not None and cfg.signals.prometheus_workspace:
        ManagedPrometheus(
            naming.name("prometheus"),
            ManagedPrometheusArgs(
                name_prefix=naming.prefix,
                region=cfg.region,
                cluster_name=cluster.cluster_name,
                cluster_arn=cluster.cluster_arn,
                subnet_ids=subnet_ids,
                topic_arn=monitoring.topic_arn,
                tags=b.tags,
            ),
            provider=cluster.provider,
        )
    return (
        deploy,
        monitoring,
        {
            "clusterName": cluster.cluster_name,
            "serviceUrl": service.service_url,
            "podRoleArn": service.role_arn,
        },
    )


def _monitoring(b: _Base, specs: list[AlarmSpec]) -> Monitoring:
    # Model-signal alarms (drift, data quality) sit with the service alarms: same topic, same
    # dashboard. EventBridge publishes failed batch runs to the topic.
    widgets: list[dict[str, Any]] = []
    if b.cfg.signals is not None:
        specs = [*specs, *signal_alarm_specs(b.naming.prefix, b.cfg.signals)]
        widgets = signal_widgets(b.naming.prefix, b.cfg.region)
    publishers = ["events.amazonaws.com"] if b.cfg.batch is not None else []
    if b.cfg.signals is not None and b.cfg.signals.prometheus_workspace:
        publishers.append("aps.amazonaws.com")  # the AMP alert manager
    return Monitoring(
        b.naming.name("monitoring"),
        MonitoringArgs(
            name_prefix=b.naming.prefix,
            account_id=b.account_id,
            region=b.cfg.region,
            specs=specs,
            emails=b.cfg.alarms.emails,
            target=b.cfg.target,
            tags=b.tags,
            publishers=publishers,
            extra_widgets=widgets,
        ),
    )


def _deploy_access(
    b: _Base,
    *,
    execution_role_arn: pulumi.Input[str] | None = None,
    cluster_arn: pulumi.Input[str] | None = None,
) -> GithubDeployAccess:
    cfg = b.cfg
    return GithubDeployAccess(
        b.naming.name("github"),
        GithubDeployAccessArgs(
            role_name=b.naming.name("deploy"),
            repository=cfg.github.repository,
            environments=cfg.github.environments,
            existing_provider_arn=cfg.github.oidc_provider_arn,
            account_id=b.account_id,
            region=cfg.region,
            name_prefix=b.naming.prefix,
            bucket_arn=b.store.bucket_arn,
            repository_arn=b.registry.repository_arn,
            key_arn=b.store.key_arn,
            execution_role_arn=execution_role_arn,
            cluster_arn=cluster_arn,
            training_role_arn=b.training_role.role_arn,
            tracking_server_arn=b.tracking_server_arn,
            tracking_server_in_bucket=cfg.mlflow_server,
            tags=b.tags,
        ),
    )


def _mlflow(
    naming: Naming, cfg: StackConfig, store: ArtifactStore, tags: dict[str, str]
) -> pulumi.Output[str]:
    server = MlflowServer(
        naming.name("mlflow"),
        MlflowServerArgs(
            server_name=naming.name("mlflow"),
            role_name=naming.name("mlflow"),
            bucket_name=store.bucket_name,
            bucket_arn=store.bucket_arn,
            key_arn=store.key_arn,
            size=cfg.mlflow_server_size,
            tags=tags,
        ),
    )
    return server.tracking_server_arn


# Model signals, scheduled batch scoring and the drift -> retrain route (issues 13 and 14).


def _signals(b: _Base, log_group: str, after: pulumi.Resource) -> None:
    """Metric filters on the serving log group; the drift -> retrain route when it is on."""
    signals = b.cfg.signals
    if signals is None:
        return
    ModelSignals(
        b.naming.name("signals"),
        ModelSignalsArgs(
            name_prefix=b.naming.prefix,
            target=b.cfg.target,
            log_group_name=log_group,
            after=[after],
        ),
    )
    if signals.retrain is not None:
        alarm_name = f"{b.naming.prefix}-{DRIFT_ALARM_ROLE}"
        DriftRetrain(
            b.naming.name("retrain"),
            DriftRetrainArgs(
                name_prefix=b.naming.prefix,
                account_id=b.account_id,
                alarm_arn=b.account_id.apply(
                    lambda a: f"arn:aws:cloudwatch:{b.cfg.region}:{a}:alarm:{alarm_name}"
                ),
                repository=signals.retrain.repository,
                token_secret=signals.retrain.token_secret,
                tags=b.tags,
            ),
        )


def _batch(
    b: _Base, monitoring: Monitoring, schedule: BatchSchedule
) -> dict[str, pulumi.Input[str]]:
    cfg = b.cfg
    batch = ScheduledBatch(
        b.naming.name("batch"),
        ScheduledBatchArgs(
            name_prefix=b.naming.prefix,
            account_id=b.account_id,
            region=cfg.region,
            batch=schedule,
            bucket_name=b.store.bucket_name,
            bucket_arn=b.store.bucket_arn,
            key_arn=b.store.key_arn,
            repository_url=b.registry.repository_url,
            repository_arn=b.registry.repository_arn,
            image_tag=cfg.image_tag,
            model_data_key=cfg.model_data_key,
            topic_arn=monitoring.topic_arn,
            tags=b.tags,
            # the check before scoring gates on the endpoint's data-quality alarm thresholds
            max_missing_percent=cfg.signals.missing_percent if cfg.signals else None,
            max_out_of_range_percent=cfg.signals.out_of_range_percent if cfg.signals else None,
        ),
    )
    outputs: dict[str, pulumi.Input[str]] = {
        "batchPipelineName": batch.pipeline_name,
        "batchScheduleArn": batch.schedule_arn,
    }
    if schedule.checked_baseline is not None:
        # Where Model Monitor's check reads its baseline: the release copies the bundle's there.
        outputs["batchBaselinePrefix"] = schedule.checked_baseline
    return outputs


if __name__ == "__main__":
    main()
