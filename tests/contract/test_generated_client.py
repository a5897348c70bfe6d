"""A REST client generated from the served ``/openapi.json`` by ``openapi-python-client``
(the generator most Python users reach for) builds and calls every route of the running
service, with an API key and without."""

from __future__ import annotations

import hashlib
import importlib
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from core.model import Model, load_model
from tests.app.conftest import test_split
from tests.contract.conftest import Server, start_server, stop_server

KEY = "generated-client-key"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture(scope="module")
def keyed(sagemaker_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        sagemaker_dir,
        tmp_path_factory.mktemp("gen") / "server.log",
        MLSHIP_API_KEY_HASHES=hashlib.sha256(KEY.encode()).hexdigest(),
    )
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def package(keyed: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    work = tmp_path_factory.mktemp("client")
    spec = urllib.request.Request(f"{keyed.url}/openapi.json", headers={"X-API-Key": KEY})
    with urllib.request.urlopen(spec, timeout=10) as r:
        (work / "openapi.json").write_bytes(r.read())
    result = subprocess.run(
        [str(GENERATOR), "generate", "--path", "openapi.json", "--output-path", "mlship_client",
         "--meta", "none"],
        cwd=work, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout, result.stdout  # every schema understood
    sys.path.insert(0, str(work))
    try:
        yield importlib.import_module("mlship_client")
    finally:
        sys.path.remove(str(work))
        for name in [m for m in sys.modules if m.startswith("mlship_client")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def model(logistic_bundle: Path) -> Model:
    return load_model(logistic_bundle)


def _call(package: ModuleType, tag: str, operation: str, client: Any, **kwargs: Any) -> Any:
    module = importlib.import_module(f"mlship_client.api.{tag}.{operation}")
    return module.sync_detailed(client=client, **kwargs)


def test_generated_client_calls_every_route(
    package: ModuleType, keyed: Server, model: Model, logistic_bundle: Path
) -> None:
    from mlship_client import AuthenticatedClient, Client  # type: ignore[import-not-found]

    rows = test_split(logistic_bundle)[:3]
    expected = model.predict(rows)
    authed = AuthenticatedClient(
        base_url=keyed.url, token=KEY, prefix="", auth_header_name="X-API-Key"
    )
    anonymous = Client(base_url=keyed.url)
    api_dir = Path(str(package.__file__)).parent / "api"
    apis = {p.name for p in api_dir.iterdir() if p.is_dir()}
    operations = {
        f"{tag}.{p.stem}"
        for tag in apis
        for p in (api_dir / tag).glob("*.py")
        if p.stem != "__init__"
    }
    called: set[str] = set()

    def call(tag: str, op: str, client: Any = authed, **kwargs: Any) -> Any:
        matches = sorted(o for o in operations if o.startswith(f"{tag}.{op}"))
        assert matches, (tag, op, sorted(operations))
        called.add(matches[0])
        return _call(package, tag, matches[0].split(".", 1)[1], client, **kwargs)

    from mlship_client.models import PredictRequestType1  # type: ignore[import-not-found]

    body = PredictRequestType1.from_dict({"instances": rows.tolist()})
    answer = call("rest", "predict", body=body)
    assert answer.status_code == 200, answer.content
    assert answer.parsed.predictions == expected.labels.tolist()
    assert call("rest", "predict", client=anonymous, body=body).status_code == 401
    invocations = call("sagemaker", "invocations", body=body)
    assert invocations.status_code == 200, invocations.content
    assert invocations.parsed.predictions == expected.labels.tolist()
    assert call("sagemaker", "ping", client=anonymous).status_code == 200
    params = call("sagemaker", "execution_parameters", client=anonymous).parsed
    assert params.batch_strategy == "MULTI_RECORD" and params.max_payload_in_mb == 6
    for op in ("healthz", "readyz", "metrics"):
        assert call("operations", op, client=anonymous).status_code == 200, op
    name, version = model.name, model.version
    assert call("v2", "server_metadata", client=anonymous).status_code == 200
    assert call("v2", "live", client=anonymous).status_code == 200
    assert call("v2", "ready", client=anonymous).status_code == 200
    assert call("v2", "model_metadata", name=name).status_code == 200
    assert call("v2", "model_metadata", client=anonymous, name=name).status_code == 401
    assert call("v2", "model_version_metadata", name=name, model_version=version).parsed
    assert call("v2", "model_ready", name=name).parsed.ready is True
    assert call("v2", "model_version_ready", name=name, model_version=version).parsed.ready
    from mlship_client.models import InferenceRequest

    infer = InferenceRequest.from_dict(
        {"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                     "data": rows.ravel().tolist()}]}
    )  # fmt: skip
    result = call("v2", "infer", name=name, body=infer)
    assert result.status_code == 200, result.content
    labels = next(o for o in result.parsed.outputs if o.name == "predict").data
    assert np.asarray(labels).tolist() == expected.labels.tolist()
    assert call("v2", "infer_version", name=name, model_version=version, body=infer).parsed

    assert called == operations  # every generated operation was exercised
