"""A SageMaker Batch Transform emulator: what a job does with one input file, against a real
container on 127.0.0.1.

As SageMaker documents it (CreateTransformJob; "Use Batch Transform"): with ``SplitType=Line``
the input is split into records at line breaks; with ``BatchStrategy=MultiRecord`` as many
whole records as fit within ``MaxPayloadInMB`` go into one mini-batch (one ``POST
/invocations`` with the job's ``ContentType`` and ``Accept``); when ``MaxConcurrentTransforms``
is unset the job asks the container's ``GET /execution-parameters``; with
``AssembleWith=Line`` ("add a newline character at the end of every transformed record") the
answers go into ``<input name>.out`` in input order, each stripped of the whitespace around it
and followed by one line break, as the SageMaker Python SDK's local mode assembles them
(``sagemaker/local/entities.py``, ``_LocalTransformJob._perform_batch_inference``). With
``SplitType=None`` the whole file is one request (it must fit within ``MaxPayloadInMB``) and
its answer is the output as it is.
"""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

MIB = 1024 * 1024  # MaxPayloadInMB counts binary megabytes


@dataclass(frozen=True)
class TransformResult:
    output: bytes
    mini_batches: int
    largest_payload: int
    concurrency: int


def container_variables(
    max_payload_mb: int | None,
    batch_strategy: str = "MultiRecord",
    max_concurrent: int | None = None,
) -> dict[str, str]:
    """What SageMaker adds to the container's environment in a transform job (Amazon SageMaker
    Developer Guide, "Custom Inference Code with Batch Transform"): ``SAGEMAKER_BATCH`` always;
    ``SAGEMAKER_MAX_PAYLOAD_IN_MB``, ``SAGEMAKER_BATCH_STRATEGY`` and
    ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS`` only when the CreateTransformJob request sets them."""
    variables = {"SAGEMAKER_BATCH": "true"}
    if max_payload_mb is not None:
        variables["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(max_payload_mb)
    if batch_strategy:
        variables["SAGEMAKER_BATCH_STRATEGY"] = {
            "MultiRecord": "MULTI_RECORD",
            "SingleRecord": "SINGLE_RECORD",
        }[batch_strategy]
    if max_concurrent is not None:
        variables["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(max_concurrent)
    return variables


def split_mini_batches(data: bytes, max_payload_mb: int) -> list[bytes]:
    """Whole lines, packed greedily up to ``max_payload_mb`` MiB per mini-batch."""
    limit = max_payload_mb * MIB
    records = data.splitlines(keepends=True)
    batches: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for record in records:
        if len(record) > limit:
            raise ValueError("a record is larger than MaxPayloadInMB")
        if size + len(record) > limit:
            batches.append(b"".join(current))
            current, size = [], 0
        current.append(record)
        size += len(record)
    if current:
        batches.append(b"".join(current))
    return batches


def run_transform(
    url: str,
    data: bytes,
    max_payload_mb: int,
    content_type: str,
    accept: str | None,
    split_type: str = "Line",
) -> TransformResult:
    """Score ``data`` through the container at ``url`` as a transform job would (``accept``
    None: a job whose TransformOutput sets no Accept sends none)."""
    with urllib.request.urlopen(f"{url}/execution-parameters", timeout=10) as r:
        concurrency = int(json.loads(r.read())["MaxConcurrentTransforms"])
    if split_type == "None":
        if len(data) > max_payload_mb * MIB:
            raise ValueError("with SplitType None the file must fit within MaxPayloadInMB")
        batches = [data]
    else:
        batches = split_mini_batches(data, max_payload_mb)

    def post(batch: bytes) -> bytes:
        request = urllib.request.Request(
            f"{url}/invocations",
            data=batch,
            headers={"Content-Type": content_type} | ({"Accept": accept} if accept else {}),
        )
        with urllib.request.urlopen(request, timeout=120) as r:
            status = r.status
            body = r.read()
        if status != 200:
            raise RuntimeError(f"mini-batch answered {status}: {body[:200]!r}")
        return bytes(body)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(post, batches))
    if split_type == "None":
        return TransformResult(answers[0], 1, len(data), concurrency)
    return TransformResult(
        output=b"".join(answer.strip() + b"\n" for answer in answers),
        mini_batches=len(batches),
        largest_payload=max(len(b) for b in batches),
        concurrency=concurrency,
    )
