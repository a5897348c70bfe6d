"""Identity policies of what runs without us: the scheduled batch pipeline and its jobs, the
schedule that starts it, and the EventBridge route that calls GitHub when drift is detected.

Each names the actions its caller performs and the narrowest resources they accept; the action
lists come from the services' documentation, cited per function.
"""

from __future__ import annotations

from infra.policies.actions import ECR_PULL, KEY_USE
from infra.policies.document import Document, Statement, allow, document


def batch_job_policy(
    *,
    bucket_arn: str,
    repository_arn: str,
    key_arn: str,
    region: str,
    account_id: str,
    input_prefix: str,
    output_prefix: str,
    baseline_prefix: str | None,
    model_prefix: str = "models/",
) -> Document:
    """The role of the batch model (Batch Transform) and of the input check's processing job.

    "CreateModel API: Execution Role Permissions", "CreateTransformJob" and "CreateProcessingJob
    API: Execution Role Permissions" (SageMaker developer guide): read the inputs (list the
    prefix), write the outputs, pull the image, write the job's logs, use the data's key.
    ``baseline_prefix``: where Model Monitor's check reads its baseline (None: mlship's check,
    which reads none).
    """
    log_groups = [
        f"arn:aws:logs:{region}:{account_id}:log-group:/aws/sagemaker/{kind}:*"
        for kind in ("ProcessingJobs", "TransformJobs")
    ]
    statements: list[Statement] = [
        allow(
            "ReadJobInputs",  # the bundle, the input and any baseline
            ["s3:GetObject"],
            [
                f"{bucket_arn}/{model_prefix}*",
                f"{bucket_arn}/{input_prefix}*",
                *([] if baseline_prefix is None else [f"{bucket_arn}/{baseline_prefix}*"]),
            ],
        ),
        {
            **allow("ListInput", ["s3:ListBucket"], bucket_arn),
            "Condition": {"StringLike": {"s3:prefix": [f"{input_prefix}*"]}},
        },
        allow(
            "WriteOutput",
            ["s3:AbortMultipartUpload", "s3:PutObject"],
            f"{bucket_arn}/{output_prefix}*",
        ),
        allow("PullImage", ECR_PULL, repository_arn),
        # GetAuthorizationToken has no resource-level permissions: AWS requires "*".
        allow("EcrLogin", ["ecr:GetAuthorizationToken"], "*"),
        allow(
            "WriteLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams"],
            log_groups,
        ),
        allow("PutLogEvents", ["logs:PutLogEvents"], [f"{g}:log-stream:*" for g in log_groups]),
        allow("UseKey", KEY_USE, key_arn),
    ]
    return document(*statements)


def batch_pipeline_policy(
    *,
    region: str,
    account_id: str,
    job_role_arn: str,
    bucket_arn: str,
    key_arn: str,
    output_prefix: str,
    baseline_prefix: str | None,
) -> Document:
    """The pipeline's role: start, watch and stop its two jobs, pass them the job role, and
    with Model Monitor's check (``baseline_prefix`` given) read the supplied baseline and the
    check's results.

    "IAM access management" for SageMaker Pipelines: the pipeline role creates each step's job
    (``sagemaker:Create*Job``, ``Describe*Job``, ``Stop*Job``, ``AddTags``) and passes the jobs'
    execution role; a QualityCheck step compares the computed constraints with the supplied
    ``constraints.json`` and ``statistics.json`` in S3. A Processing step reads nothing itself.
    """
    sm = f"arn:aws:sagemaker:{region}:{account_id}"
    jobs = [f"{sm}:processing-job/*", f"{sm}:transform-job/*"]
    return document(
        allow(
            "RunSteps",
            [
                "sagemaker:AddTags",
                "sagemaker:CreateProcessingJob",
                "sagemaker:CreateTransformJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:DescribeTransformJob",
                "sagemaker:StopProcessingJob",
                "sagemaker:StopTransformJob",
            ],
            jobs,
        ),
        {
            **allow("PassJobRole", ["iam:PassRole"], job_role_arn),
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        },
        *(
            []
            if baseline_prefix is None
            else [
                allow(
                    "ReadBaselineAndResults",
                    ["s3:GetObject"],
                    [f"{bucket_arn}/{baseline_prefix}*", f"{bucket_arn}/{output_prefix}*"],
                ),
                allow("DecryptData", ["kms:Decrypt", "kms:DescribeKey"], key_arn),
            ]
        ),
    )


def start_pipeline_policy(*, pipeline_arn: str) -> Document:
    """EventBridge Scheduler's role: start this one pipeline ("Set up the execution role",
    SageMaker templated target: ``sagemaker:StartPipelineExecution``)."""
    return document(allow("StartPipeline", ["sagemaker:StartPipelineExecution"], pipeline_arn))


def invoke_api_destination_policy(*, api_destination_arn: str) -> Document:
    """The drift rule's role: call this one API destination ("API destinations" in the
    EventBridge user guide: ``events:InvokeApiDestination`` on the destination's ARN)."""
    return document(
        allow("InvokeDestination", ["events:InvokeApiDestination"], api_destination_arn)
    )
