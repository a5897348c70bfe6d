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

``DataProcessing`` for CSV ("Associate Prediction Results with Input Records"): "for CSV data,
each row is taken as a JSON array", so ``InputFilter`` ``$[N:]`` passes each record's fields
from the N-th on (CSV "should also follow RFC format", here Python's csv module); with
``JoinSource=Input`` "the joined input data is followed by the transformed data", each
transformed record after its whole input record (``[1,2,3]`` and ``[1]`` give ``[1,2,3,1]``),
so a mini-batch's answer must hold one record per input record; ``OutputFilter`` ``$`` keeps
the joined record whole. For JSON Lines, ``InputFilter`` ``$.<name>`` passes each record's
value of that attribute, and ``JoinSource=Input`` puts each answer record "in the
``SageMakerOutput`` key in the input JSON" (an input that is not an object goes under
``SageMakerInput``). Other filters are not emulated.
"""

from __future__ import annotations

import csv
import io
import json
import re
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


_FROM_COLUMN = re.compile(r"^\$\[(\d+):\]$")
_CHILD = re.compile(r"^\$\.([A-Za-z_]\w*)$")
JSONLINES = "application/jsonlines"


def _json_records(batch: bytes) -> list[object]:
    return [json.loads(line) for line in batch.decode().splitlines()]


def _json_text(records: list[object]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def _csv_records(batch: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(batch.decode()), strict=True))


def _csv_text(records: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(records)
    return out.getvalue().encode()


def _filtered(batch: bytes, processing: dict[str, str], content_type: str) -> bytes:
    """The mini-batch as the container gets it (InputFilter)."""
    expression = processing.get("InputFilter", "$")
    if expression == "$":
        return batch
    if content_type == JSONLINES:
        child = _CHILD.match(expression)
        if child is None:
            raise NotImplementedError(f"InputFilter {expression!r} is not emulated")
        return _json_text([r[child.group(1)] for r in _json_records(batch)])  # type: ignore[index]
    found = _FROM_COLUMN.match(expression)
    if found is None:
        raise NotImplementedError(f"InputFilter {expression!r} is not emulated")
    start = int(found.group(1))
    return _csv_text([record[start:] for record in _csv_records(batch)])


def _joined(batch: bytes, answer: bytes, processing: dict[str, str], content_type: str) -> bytes:
    """A mini-batch's output records with JoinSource=Input: each input record, then its
    answer's fields (CSV), or with its answer under SageMakerOutput (JSON Lines)."""
    if processing.get("JoinSource", "None") == "None":
        return answer.strip() + b"\n"
    if processing.get("OutputFilter", "$") != "$":
        raise NotImplementedError("only OutputFilter $ is emulated")
    if content_type == JSONLINES:
        records, answers = _json_records(batch), _json_records(answer)
        if len(records) != len(answers):
            raise RuntimeError(
                f"the answer holds {len(answers)} records for {len(records)} input records: "
                "the job cannot join them"
            )
        return _json_text(
            [
                {**r, "SageMakerOutput": a}
                if isinstance(r, dict)
                else {"SageMakerInput": r, "SageMakerOutput": a}
                for r, a in zip(records, answers, strict=True)
            ]
        )
    inputs, outputs = _csv_records(batch), _csv_records(answer)
    if len(inputs) != len(outputs):
        raise RuntimeError(
            f"the answer holds {len(outputs)} records for {len(inputs)} input records: "
            "the job cannot join them"
        )
    return _csv_text([i + o for i, o in zip(inputs, outputs, strict=True)])


def run_transform(
    url: str,
    data: bytes,
    max_payload_mb: int,
    content_type: str,
    accept: str | None,
    split_type: str = "Line",
    data_processing: dict[str, str] | None = None,
) -> TransformResult:
    """Score ``data`` through the container at ``url`` as a transform job would (``accept``
    None: a job whose TransformOutput sets no Accept sends none; ``data_processing``: the
    job's DataProcessing, CSV and JSON Lines)."""
    processing = data_processing or {}
    if processing and content_type not in ("text/csv", JSONLINES):
        raise NotImplementedError("DataProcessing is emulated for CSV and JSON Lines only")
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
            data=_filtered(batch, processing, content_type),
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
        output=b"".join(
            _joined(batch, answer, processing, content_type)
            for batch, answer in zip(batches, answers, strict=True)
        ),
        mini_batches=len(batches),
        largest_payload=max(len(b) for b in batches),
        concurrency=concurrency,
    )
