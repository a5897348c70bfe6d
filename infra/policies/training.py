"""Training and registry policies: the training jobs' role, and what CI needs to start training
jobs and use the managed MLflow registry (statements the deploy role adds)."""

from __future__ import annotations

from collections.abc import Sequence

from infra.policies.actions import ECR_PULL
from infra.policies.document import Document, Statement, allow, document

# Where SageMaker writes training jobs' logs and metrics.
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TRAINING_METRICS_NAMESPACE = "/aws/sagemaker/TrainingJobs"


def training_job_policy(
    *,
    bucket_arn: str,
    repository_arn: str,
    key_arn: str,
    region: str,
    account_id: str,
    data_prefix: str = "data",
    staging_prefix: str = "staging",
) -> Document:
    """The role SageMaker training jobs run with: read the data area, write the staging area
    (bundles, and the checkpoints of spot jobs, read back on a restart), pull the training
    image, write the job's logs; nothing else.

    SageMaker uses it to copy the ``train`` channel in and ``/opt/ml/model`` out (the
    container itself runs network-isolated). The output is SSE-KMS with the bucket's key: the
    role needs ``kms:Encrypt``/``GenerateDataKey`` for it ("OutputDataConfig KmsKeyId": the
    execution role must be allowed kms:Encrypt), ``kms:Decrypt`` to read the data and
    checkpoints, and ``kms:CreateGrant`` for the encrypted ML storage volume (VolumeKmsKeyId),
    only for AWS resources.
    """
    log_group = f"arn:aws:logs:{region}:{account_id}:log-group:{TRAINING_LOG_GROUP}"
    return document(
        allow("ReadData", ["s3:GetObject"], f"{bucket_arn}/{data_prefix}/*"),
        {
            **allow("ListData", ["s3:ListBucket"], bucket_arn),
            "Condition": {"StringLike": {"s3:prefix": [f"{data_prefix}/*", f"{staging_prefix}/*"]}},
        },
        allow("WriteStaging", ["s3:GetObject", "s3:PutObject"], f"{bucket_arn}/{staging_prefix}/*"),
        allow("PullImage", ECR_PULL, repository_arn),
        allow("EcrLogin", ["ecr:GetAuthorizationToken"], "*"),
        allow(
            "WriteLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams"],
            f"{log_group}*",
        ),
        allow("PutLogEvents", ["logs:PutLogEvents"], f"{log_group}:log-stream:*"),
        {
            **allow("PutMetrics", ["cloudwatch:PutMetricData"], "*"),
            "Condition": {"StringEquals": {"cloudwatch:namespace": TRAINING_METRICS_NAMESPACE}},
        },
        allow("UseKey", ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], key_arn),
        {
            **allow("GrantVolumeKey", ["kms:CreateGrant"], key_arn),
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
    )


def mlflow_client_statements(
    *, tracking_server_arn: str, bucket_arn: str | None, actions: Sequence[str]
) -> list[Statement]:
    """A client of the managed MLflow server: ``actions`` on it, and (``bucket_arn``: the
    server's artifact store in this stack's bucket) its ``mlflow/`` artifacts, which MLflow
    clients read and write in S3 directly."""
    statements = [allow("MlflowRegistry", sorted(set(actions)), tracking_server_arn)]
    if bucket_arn is not None:
        statements += [
            allow("MlflowArtifacts", ["s3:GetObject", "s3:PutObject"], f"{bucket_arn}/mlflow/*"),
            {
                **allow("ListMlflowArtifacts", ["s3:ListBucket"], bucket_arn),
                "Condition": {"StringLike": {"s3:prefix": ["mlflow/*"]}},
            },
        ]
    return statements


def training_launch_statements(
    *, bucket_arn: str, region: str, account_id: str, name_prefix: str, training_role_arn: str
) -> list[Statement]:
    """What ``mlship sagemaker-train`` needs in CI (pipelines/sagemaker/launch.py): the data
    object's version before and after the job (HeadObject is s3:GetObject), the job's own
    calls, passing the training role, and the bundle it left in the staging area."""
    return [
        allow("ReadTrainingData", ["s3:GetObject"], f"{bucket_arn}/data/*"),
        allow("ReadStagedBundles", ["s3:GetObject"], f"{bucket_arn}/staging/*"),
        allow(
            "RunTrainingJobs",
            [
                # CreateTrainingJob with Tags also needs AddTags on the job.
                "sagemaker:AddTags",
                "sagemaker:CreateTrainingJob",
                "sagemaker:DescribeTrainingJob",
            ],
            f"arn:aws:sagemaker:{region}:{account_id}:training-job/{name_prefix}-*",
        ),
        {
            **allow("PassTrainingRole", ["iam:PassRole"], training_role_arn),
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        },
    ]
