"""Handlers of the SageMaker job commands: sagemaker-train and sagemaker-transform."""

from __future__ import annotations

import argparse

from pipelines.sagemaker.launch import (
    sagemaker_client,
    start_training_job,
    start_transform_job,
    train_on_sagemaker,
    wait_transform_job,
)
from pipelines.sagemaker.requests import (
    TrainingJobSpec,
    TransformJobSpec,
    default_job_name,
    parse_pairs,
)


def sagemaker_train(args: argparse.Namespace) -> int:
    """``mlship sagemaker-train``: launch a training job of our image and wait for it."""
    spec = TrainingJobSpec(
        name=args.job_name or default_job_name("mlship-train"),
        image_uri=args.image,
        role_arn=args.role,
        data_uri=args.data,
        output_uri=args.output,
        instance_type=args.instance_type,
        volume_gb=args.volume_gb,
        max_runtime_s=int(args.max_runtime_minutes * 60),
        hyperparameters=parse_pairs(args.hyperparameter, "--hyperparameter"),
        kms_key_id=args.kms_key_id,
        tags=parse_pairs(args.tag, "--tag"),
        environment={"MLSHIP_GIT_COMMIT": args.git_commit} if args.git_commit else {},
        spot=args.spot,
        max_wait_s=int(args.max_wait_minutes * 60) if args.max_wait_minutes else None,
        checkpoint_uri=args.checkpoint,
    )
    client = sagemaker_client()
    if args.no_wait:
        arn = start_training_job(client, spec)
        print(f"started {arn}", flush=True)
        return 0
    outcome = train_on_sagemaker(
        client, spec, poll_s=args.poll_seconds, timeout_s=args.wait_minutes * 60
    )
    print(f"data version {outcome.data_version or 'not versioned (see the manifest)'}")
    print(outcome.artifact)
    return 0


def sagemaker_transform(args: argparse.Namespace) -> int:
    """``mlship sagemaker-transform``: score S3 CSV files with a bundle in a batch job."""
    spec = TransformJobSpec(
        name=args.job_name or default_job_name("mlship-transform"),
        image_uri=args.image,
        role_arn=args.role,
        model_data_uri=args.model_data,
        input_uri=args.input,
        output_uri=args.output,
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        max_concurrent=args.max_concurrent,
        max_payload_mb=args.max_payload_mb,
        content_type=args.content_type,
        compression=args.compression,
        id_columns=args.id_columns,
        features_attribute=args.features_attribute,
        kms_key_id=args.kms_key_id,
    )
    client = sagemaker_client()
    arn = start_transform_job(client, spec)
    print(f"started {arn}", flush=True)
    if args.no_wait:
        return 0
    print(
        wait_transform_job(
            client, spec.name, poll_s=args.poll_seconds, timeout_s=args.wait_minutes * 60
        )
    )
    return 0
