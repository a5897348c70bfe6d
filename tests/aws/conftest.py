"""Fixtures for tests that call AWS APIs: real moto servers on 127.0.0.1 and endpoints in them."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.factories import free_port, running_moto

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/mlship-dev-execution"
IMAGE_URI = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mlship:0123456789abcdef"


def queue_endpoint_results(moto_url: str, bodies: list[Any]) -> None:
    """Queue the answers moto's sagemaker-runtime gives, one per distinct request, in order."""
    payload = {
        "results": [{"Body": json.dumps(b), "ContentType": "application/json"} for b in bodies]
    }
    req = urllib.request.Request(
        f"{moto_url}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in (200, 201)


@pytest.fixture
def endpoint(aws: str) -> str:
    """An InService SageMaker endpoint (model, config, endpoint) in a fresh moto; its name."""
    sm = boto3.client("sagemaker")
    sm.create_model(
        ModelName="mlship-dev-model",
        PrimaryContainer={"Image": IMAGE_URI, "ModelDataUrl": "s3://mlship-dev/m/model.tar.gz"},
        ExecutionRoleArn=ROLE_ARN,
    )
    sm.create_endpoint_config(
        EndpointConfigName="mlship-dev-config",
        ProductionVariants=[
            {
                "VariantName": "primary",
                "ModelName": "mlship-dev-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName="mlship-dev", EndpointConfigName="mlship-dev-config")
    return "mlship-dev"


@pytest.fixture(scope="session")
def moto_with_auth() -> Iterator[str]:
    """A moto server that enforces IAM authentication: unknown access keys are refused."""
    with running_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as url:
        yield url


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers; its URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        server.close()


@pytest.fixture
def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}"
