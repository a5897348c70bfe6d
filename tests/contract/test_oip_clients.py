"""The Open Inference Protocol v2 as the most used clients speak it, against the real service.

tritonclient (HTTP) sends no Content-Type, can gzip its requests and defaults to the binary
tensor extension; kserve's InferenceRESTClient sends JSON. Both must get the model's answer,
or a clear 4xx naming what is not supported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.model import Model, load_model
from tests.app.conftest import test_split
from tests.contract.conftest import Server, serving


@pytest.fixture(scope="module")
def served(sagemaker_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(sagemaker_dir, tmp_path_factory.mktemp("oip") / "server.log") as srv:
        yield srv


@pytest.fixture(scope="module")
def model(logistic_bundle: Path) -> Model:
    return load_model(logistic_bundle)


@pytest.fixture(scope="module")
def rows(logistic_bundle: Path) -> np.ndarray:
    return test_split(logistic_bundle)[:5]


@pytest.mark.parametrize("compression", [None, "gzip", "deflate"])
@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_tritonclient_infer_equals_in_process_prediction(
    served: Server, model: Model, rows: np.ndarray, compression: str | None, datatype: str
) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{served.port}", connection_timeout=10)
    data = rows.astype(np.float64 if datatype == "FP64" else np.float32)
    tensor = triton.InferInput("input-0", list(data.shape), datatype)
    tensor.set_data_from_numpy(data, binary_data=False)
    outputs = [
        triton.InferRequestedOutput(n, binary_data=False) for n in ("predict", "predict_proba")
    ]

    result = client.infer(
        model.name, [tensor], outputs=outputs, request_compression_algorithm=compression
    )

    expected = model.predict(data.astype(np.float64))
    assert client.is_server_ready() and client.is_model_ready(model.name)
    assert result.as_numpy("predict").tolist() == expected.labels.tolist()
    assert expected.probabilities is not None
    np.testing.assert_allclose(result.as_numpy("predict_proba"), expected.probabilities, atol=1e-5)


def test_tritonclient_binary_tensors_get_a_clear_415(
    served: Server, model: Model, rows: np.ndarray
) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url=f"127.0.0.1:{served.port}", connection_timeout=10)
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)  # binary_data=True, tritonclient's default

    with pytest.raises(InferenceServerException) as e:
        client.infer(model.name, [tensor])

    assert "binary tensor data extension (Inference-Header-Content-Length) is not supported" in str(
        e.value
    )


def test_kserve_v2_client_infer_equals_in_process_prediction(
    served: Server, model: Model, rows: np.ndarray
) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def call() -> object:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            request = InferRequest(
                model_name=model.name,
                infer_inputs=[InferInput("input-0", list(rows.shape), "FP64", rows.tolist())],
            )
            return await client.infer(served.url, request, model_name=model.name)
        finally:
            await client.close()

    response = asyncio.run(call())

    outputs = {o.name: o for o in response.outputs}  # type: ignore[attr-defined]
    expected = model.predict(rows)
    assert outputs["predict"].as_numpy().tolist() == expected.labels.tolist()
    assert expected.probabilities is not None
    np.testing.assert_allclose(
        outputs["predict_proba"].as_numpy(), expected.probabilities, atol=1e-12
    )
