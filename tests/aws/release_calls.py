"""Record the AWS and MLflow calls a workflow job makes, and check them against an IAM policy.

boto3 calls are recorded from botocore's ``before-parameter-build`` event (the operation and
its real parameters) and mapped to the IAM action and resource ARN AWS authorises them as (Service
Authorization Reference: HeadObject and GetObject are ``s3:GetObject``, CreateTrainingJob
also needs ``iam:PassRole`` on its RoleArn and ``sagemaker:AddTags`` when it has Tags). MLflow
REST calls are recorded where MLflow sends them and named after their API (``CreateRun``,
``SetRegisteredModelAlias``): Amazon SageMaker with MLflow authorises each as the
``sagemaker-mlflow:`` action of that name on the tracking server's ARN.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

ACCOUNT = "123456789012"  # moto's account; the plans use the same one
S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "ListObjectsV2": "s3:ListBucket",
}


@dataclass(frozen=True)
class Call:
    """One authorised action on one resource (``context``: condition values)."""

    job: str
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()


def _mlflow_actions() -> dict[tuple[str, str], str]:
    from mlflow.protos.model_registry_pb2 import ModelRegistryService
    from mlflow.protos.service_pb2 import MlflowService
    from mlflow.utils.rest_utils import extract_api_info_for_service

    names: dict[tuple[str, str], str] = {}
    for service in (MlflowService, ModelRegistryService):
        for prefix in ("/api/2.0", "/api/3.0"):
            info = extract_api_info_for_service(service, prefix)  # type: ignore[no-untyped-call]
            for proto, (endpoint, method) in info.items():
                names[(endpoint, method)] = proto.__name__
    return names


@dataclass
class CallLog:
    """Calls per job; ``job`` None while the test itself (not a workflow job) calls."""

    tracking_server_arn: str
    job: str | None = None
    calls: list[Call] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Record every client of boto3's default session and every MLflow REST call."""
        import mlflow.utils.rest_utils as rest

        session = boto3.session.Session()
        session.events.register("before-parameter-build", self._boto)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
        names = _mlflow_actions()
        send = rest.http_request

        def http_request(host_creds: Any, endpoint: str, method: str, *a: Any, **kw: Any) -> Any:
            if self.job is not None:
                name = names.get((endpoint, method))
                assert name is not None, f"unknown MLflow endpoint {method} {endpoint}"
                self._add(f"sagemaker-mlflow:{name}", self.tracking_server_arn)
            return send(host_creds, endpoint, method, *a, **kw)  # type: ignore[no-untyped-call]

        monkeypatch.setattr(rest, "http_request", http_request)

    def client(self, service: str) -> Any:
        """A recorded client (as the code under test would create it)."""
        return boto3.client(service)  # type: ignore[call-overload]

    def _add(self, action: str, resource: str, **context: str) -> None:
        assert self.job is not None
        self.calls.append(Call(self.job, action, resource, tuple(sorted(context.items()))))

    def _boto(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if self.job is None:
            return
        service = model.service_model.endpoint_prefix
        op = model.name
        region = "eu-west-1"  # the stacks' region (the test sets AWS_DEFAULT_REGION to it)
        if service == "s3":
            assert op in S3_ACTIONS, f"unmapped S3 call {op}: add its IAM action here"
            bucket = params["Bucket"]
            if op == "ListObjectsV2":
                self._add(S3_ACTIONS[op], f"arn:aws:s3:::{bucket}", prefix=params.get("Prefix", ""))
            else:
                self._add(S3_ACTIONS[op], f"arn:aws:s3:::{bucket}/{params['Key']}")
        elif service in ("sagemaker", "api.sagemaker"):
            name = params.get("TrainingJobName", "")
            arn = f"arn:aws:sagemaker:{region}:{ACCOUNT}:training-job/{name}"
            self._add(f"sagemaker:{op}", arn)
            if op == "CreateTrainingJob":
                self._add("iam:PassRole", params["RoleArn"], passed_to="sagemaker.amazonaws.com")
                if params.get("Tags"):
                    self._add("sagemaker:AddTags", arn)
        else:
            raise AssertionError(f"unmapped AWS call {service}:{op}: add its IAM action here")

    def by_job(self, job: str) -> list[Call]:
        return [c for c in self.calls if c.job == job]

    def all(self) -> list[Call]:
        return list(self.calls)


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _allows(statement: dict[str, Any], call: Call) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    if not any(fnmatch.fnmatchcase(call.action, a) for a in _as_list(statement["Action"])):
        return False
    if not any(fnmatch.fnmatchcase(call.resource, r) for r in _as_list(statement["Resource"])):
        return False
    context = dict(call.context)
    condition = statement.get("Condition", {})
    for values in condition.get("StringLike", {}).values():
        if "prefix" in context and not any(
            fnmatch.fnmatchcase(context["prefix"], v) for v in _as_list(values)
        ):
            return False
    passed = condition.get("StringEquals", {}).get("iam:PassedToService")
    return passed is None or context.get("passed_to") in _as_list(passed)


def denied(calls: Iterable[Call], policy: dict[str, Any]) -> list[Call]:
    """The calls no Allow statement of ``policy`` covers (action, resource and conditions)."""
    return [c for c in calls if not any(_allows(st, c) for st in policy["Statement"])]


def unused_mlflow_actions(calls: Iterable[Call], policy: dict[str, Any]) -> set[str]:
    """MLflow actions the policy grants that no recorded call used."""
    granted = {
        a
        for st in policy["Statement"]
        for a in _as_list(st["Action"])
        if a.startswith("sagemaker-mlflow:")
    }
    return granted - {c.action for c in calls}
