"""Action lists shared by several policies: pulling and pushing images, using the key, and
the MLflow registry's actions each release step needs."""

from __future__ import annotations

ECR_PULL = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
ECR_PUSH = (
    *ECR_PULL,
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)
KEY_USE = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")

# Amazon SageMaker with MLflow authorises each MLflow REST call as the sagemaker-mlflow action
# of the same name, on the tracking server's ARN (Service Authorization Reference, "Actions,
# resources, and condition keys for Amazon SageMaker with MLflow"). Each set below is exactly
# what one step of the release calls (tests/aws/test_release_calls.py records the calls).
# Train job: read the champion, log the run (params, metrics, tags, bundle artifacts go to S3
# directly), register the version and point @challenger at it (undo on failure).
MLFLOW_REGISTER = (
    "sagemaker-mlflow:CreateExperiment",
    "sagemaker-mlflow:CreateModelVersion",
    "sagemaker-mlflow:CreateRegisteredModel",
    "sagemaker-mlflow:CreateRun",
    "sagemaker-mlflow:DeleteModelVersion",
    "sagemaker-mlflow:GetExperimentByName",
    "sagemaker-mlflow:GetModelVersionByAlias",
    "sagemaker-mlflow:GetRegisteredModel",
    "sagemaker-mlflow:GetRun",
    "sagemaker-mlflow:LogBatch",
    "sagemaker-mlflow:SetRegisteredModelAlias",
    "sagemaker-mlflow:UpdateRun",
)
# Deploy jobs: resolve the version to ship and download its bundle (from S3).
MLFLOW_DEPLOY = ("sagemaker-mlflow:GetModelVersion", "sagemaker-mlflow:GetModelVersionByAlias")
# Promote (after prod's gate): check the version, move @champion, tag the version.
MLFLOW_PROMOTE = (
    "sagemaker-mlflow:GetModelVersion",
    "sagemaker-mlflow:SetModelVersionTag",
    "sagemaker-mlflow:SetRegisteredModelAlias",
)
