"""A batch input checked before a transform job scores it: every mini-batch the job will send,
read by the service's own reader.

SageMaker splits each input file into records at line breaks and packs whole records into
mini-batches of at most the job's MaxPayloadInMB (``BatchStrategy=MultiRecord``,
``SplitType=Line``; "Use Batch Transform", CreateTransformJob). :func:`check_input` splits the
files the same way and reads each mini-batch with :func:`app.bodies.body_matrix`, the reader
``POST /invocations`` applies, with the settings the transform container has. A mini-batch it
refuses is one the job would fail on, so the check names it (file, lines, the service's reason)
before any instance starts scoring; the scheduled batch pipeline runs it as its first step
(``infra/pipeline_definition.py``) and a failed check stops the run.

Beside the problems, the report counts what the service accepts but monitors, per feature:
missing values, values outside the training range and categories the model was not trained
on, with the drift (PSI) against the training data, counted as the service's drift monitor
counts them (:class:`core.drift.ReferenceBins`). Given the :class:`QualityGate`'s shares (the
scheduled pipeline passes the stack's ``alarmMissingPercent`` and ``alarmOutOfRangePercent``), a
feature whose share of missing or out-of-range values would set off those alarms on the
endpoint fails the check too. Drift is reported, never a failure: a shifted batch is scored
(and watched by the drift alarm), an unusable one is not. Messages name rows and features,
never values (values must not reach logs or the job's exit message).

With ``compression="Gzip"`` (the job's ``CompressionType``) every file is read through gzip, as
SageMaker decompresses each one before splitting it; a file that is not gzip, or whose stream
ends early, is named as the job would fail on it. With ``"None"`` a gzip-compressed file is
named too: the job would send its compressed bytes.

With ``id_columns`` (the job's ``InputFilter`` ``$[N:]``: :func:`core.transform.data_processing`)
each line is read without its first N CSV fields (:func:`without_id_columns`), and with
``features_attribute`` (``$.<name>``) each JSON Lines record as the value of that attribute
(:func:`features_of`), as the container gets them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import orjson

from app.bodies import body_matrix
from core.drift import Profile, ReferenceBins
from core.errors import InvalidInput, MlshipError
from core.features import FeatureSchema
from core.transform import JOINED_OUTPUT

# Problems listed in the report; the rest are counted.
MAX_LISTED = 20
# DescribeProcessingJob's ExitMessage holds the first 1 KB of /opt/ml/output/message
# ("Save and Access Metadata Information About Your Processing Job").
EXIT_MESSAGE_BYTES = 1024
_READ_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Problem:
    """A mini-batch the service refuses, or a record SageMaker cannot send."""

    file: str
    first_line: int  # 1-based, in the file
    last_line: int
    reason: str

    def describe(self) -> str:
        lines = (
            f"line {self.first_line}"
            if self.first_line == self.last_line
            else f"lines {self.first_line}-{self.last_line}"
        )
        return f"{self.file} {lines}: {self.reason}"


@dataclass(frozen=True)
class QualityGate:
    """The training reference rows are counted against, and the per-feature shares that
    fail the check, in % of the rows read (None: not gated)."""

    bins: ReferenceBins
    max_missing_percent: float | None = None
    max_out_of_range_percent: float | None = None


@dataclass
class InputReport:
    """What :func:`check_input` found."""

    content_type: str
    max_payload_bytes: int
    files: int = 0
    rows: int = 0
    mini_batches: int = 0
    problems: list[Problem] = field(default_factory=list)
    unlisted: int = 0  # problems beyond MAX_LISTED
    unseen_categories: dict[str, int] = field(default_factory=dict)
    missing_values: dict[str, int] = field(default_factory=dict)
    out_of_range_values: dict[str, int] = field(default_factory=dict)
    drift_psi: dict[str, float] = field(default_factory=dict)
    quality: list[str] = field(default_factory=list)  # features past the gate's shares

    @property
    def passed(self) -> bool:
        return self.files > 0 and self.rows > 0 and not self.problems and not self.quality

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_LISTED:
            self.problems.append(problem)
        else:
            self.unlisted += 1

    def summary(self) -> str:
        """One paragraph: passed, or why not (the first problems)."""
        if self.files == 0:
            return "The batch input holds no files: nothing to score."
        if self.passed:
            return (
                f"The batch input passed: {self.rows} rows in {self.files} file(s), "
                f"{self.mini_batches} mini-batch(es) of at most {self.max_payload_bytes} bytes, "
                "each read as the service reads it."
            )
        if not self.problems and not self.quality:
            return f"The batch input's {self.files} file(s) hold no rows: nothing to score."
        if not self.problems:
            return (
                f"The batch input's {self.rows} rows fail the data-quality gate (the shares "
                "that would set off the endpoint's missing-value and out-of-range alarms): "
                + "; ".join(self.quality)
                + ". Fix the data upstream, or raise the limit if this is expected."
            )
        count = len(self.problems) + self.unlisted
        listed = "; ".join(p.describe().rstrip(".") for p in self.problems[:3])
        return (
            f"The batch input fails the model's input checks in {count} place(s) "
            f"(the service would refuse these mini-batches): {listed}"
            + ("; ..." if count > 3 else "")
            + ". Fix the data or score it with the model it was prepared for."
            + (
                f" Also {len(self.quality)} feature(s) past the data-quality gate (see the report)."
                if self.quality
                else ""
            )
        )

    def exit_message(self) -> bytes:
        """:meth:`summary` as at most :data:`EXIT_MESSAGE_BYTES` of UTF-8."""
        text = self.summary().encode()
        if len(text) <= EXIT_MESSAGE_BYTES:
            return text
        return text[: EXIT_MESSAGE_BYTES - 3].decode(errors="ignore").encode() + b"..."

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "summary": self.summary(),
            "content_type": self.content_type,
            "max_payload_bytes": self.max_payload_bytes,
            "files": self.files,
            "rows": self.rows,
            "mini_batches": self.mini_batches,
            "problems": [
                {"file": p.file, "lines": [p.first_line, p.last_line], "reason": p.reason}
                for p in self.problems
            ],
            "problems_not_listed": self.unlisted,
            "quality": self.quality,
            "unseen_categories": self.unseen_categories,
            "missing_values": self.missing_values,
            "out_of_range_values": self.out_of_range_values,
            "drift_psi": self.drift_psi,
        }


def mini_batches(stream: BinaryIO, limit: int) -> Iterator[tuple[int, int, bytes | None]]:
    """The file's records (lines) packed greedily into bodies of at most ``limit`` bytes, as
    SageMaker packs MultiRecord mini-batches: (first line, last line, body), lines numbered
    from 1. A record longer than ``limit`` comes as (line, line, None): no mini-batch can hold
    it."""
    pending = b""
    line = 1
    eof = False
    while True:
        while not eof and len(pending) <= limit:
            block = stream.read(max(_READ_BYTES, limit))
            eof = not block
            pending += block
        if not pending:
            return
        # the rest of the file, else up to the last line end within the limit
        cut = len(pending) if len(pending) <= limit else pending.rfind(b"\n", 0, limit) + 1
        if cut == 0:  # no line ends within the limit: one record longer than a mini-batch
            end = pending.find(b"\n")
            while end < 0 and not eof:
                block = stream.read(_READ_BYTES)
                eof = not block
                pending += block
                end = pending.find(b"\n")
            yield line, line, None
            pending = b"" if end < 0 else pending[end + 1 :]
            line += 1
            continue
        body, pending = pending[:cut], pending[cut:]
        lines = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
        yield line, line + lines - 1, body
        line += lines


# One mini-batch's verdict: its refusal, or its rows' counts and unseen categories per feature.
_Read = Problem | tuple[Profile, np.ndarray | None]


def check_input(
    paths: list[Path],
    root: Path,
    schema: FeatureSchema,
    content_type: str,
    max_payload_bytes: int,
    gate: QualityGate,
    threads: int = 1,
    compression: str = "None",
    id_columns: int = 0,
    features_attribute: str = "",
) -> InputReport:
    """Read every mini-batch of ``paths`` as the service would (see the module doc).

    Args:
        root: The directory the files are named relative to in the report.
        gate: The training reference the rows are counted against, and the shares that
            fail the check.
        threads: Mini-batches read at once (each is independent, and pyarrow and numpy work
            without the GIL); the report is the same for any number.
        compression: The job's CompressionType (:data:`core.transform.COMPRESSIONS`).
        id_columns: The job's leading identifier columns (CSV), which the container does not
            get.
        features_attribute: The attribute of each JSON Lines record the container gets.
    """
    report = InputReport(content_type, max_payload_bytes)
    unseen = np.zeros(schema.n, dtype=np.int64)
    profile = gate.bins.profile(np.empty((0, schema.n)))

    def read(name: str, first: int, last: int, body: bytes | None) -> _Read:
        if body is None:
            reason = (
                f"the record is longer than MaxPayloadInMB ({max_payload_bytes} bytes): no "
                "mini-batch can hold it, so the job would fail. Split the record or raise the "
                "payload limit."
            )
            return Problem(name, first, last, reason)
        try:
            sent = without_id_columns(body, id_columns)
            if features_attribute:
                sent = features_of(sent, features_attribute)
            X = body_matrix(content_type, sent, schema)
        except MlshipError as e:
            reason = f"{e} (rows count from 0 at line {first})"
            extra = _extra_columns(body, schema.n) if content_type == "text/csv" else 0
            if extra and not id_columns:
                reason += (
                    f". If the first {extra} column(s) identify the rows, give the job "
                    f"--id-columns {extra} (mlship:batchIdColumns): the model then gets each "
                    "line without them, and each answer comes after its whole input line"
                )
            return Problem(name, first, last, reason)
        if id_columns and X.shape[0] != last - first + 1:
            # the service skips a header of the feature names: no answer to join it to
            reason = (
                f"line {first} is a header; with identifier columns the job joins each answer "
                "to its input line (JoinSource Input), and a header gets none, so the job "
                "would fail. Write the files without a header."
            )
            return Problem(name, first, last, reason)
        outside = schema.unseen(X).sum(axis=0) if schema.any_categorical else None
        return gate.bins.profile(X), outside

    def add(done: _Read) -> None:
        nonlocal profile
        if isinstance(done, Problem):
            report.add(done)
            return
        counted, unseen_here = done
        profile += counted
        if unseen_here is not None:
            unseen[:] += unseen_here

    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="mlship-check") as pool:
        for path in paths:
            report.files += 1
            name = path.relative_to(root).as_posix()
            pending: deque[Future[_Read]] = deque()  # in line order; at most 2 per thread
            read_to = 0  # the last line split off
            try:
                with _open(path, compression) as stream:
                    for first, last, body in mini_batches(stream, max_payload_bytes):
                        report.mini_batches += body is not None
                        pending.append(pool.submit(read, name, first, last, body))
                        read_to = last
                        while len(pending) > 2 * threads:
                            add(pending.popleft().result())
            except _Unreadable as e:
                report.add(Problem(name, read_to + 1, read_to + 1, str(e)))
            except (gzip.BadGzipFile, EOFError, zlib.error) as e:  # a damaged gzip stream
                where = f" after line {read_to}" if read_to else ""
                reason = (
                    f"the gzip stream is damaged or ends early{where} ({e}): the job would "
                    "fail reading this file. Write it again."
                )
                report.add(Problem(name, read_to + 1, read_to + 1, reason))
            while pending:
                add(pending.popleft().result())
    report.unseen_categories = _by_feature(schema, unseen)
    _judge(report, schema, gate, profile)
    return report


def features_of(body: bytes, attribute: str) -> bytes:
    """A JSON Lines mini-batch as the job passes it to the container with ``InputFilter``
    ``$.<attribute>``: each record's value of ``attribute``, a line each.

    Raises:
        InvalidInput: naming the first line (from 0) that is not a record holding
            ``attribute``, or that holds ``SageMakerOutput``, which the job would overwrite
            with the answer.
    """

    def value(i: int, line: bytes) -> bytes:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or attribute not in record:
            raise InvalidInput(
                f"JSON Lines row {i} is not a record with a {attribute!r} attribute; with "
                f"--features-attribute {attribute} each line is an object holding the "
                "features under that attribute, beside the attributes that identify it."
            )
        if JOINED_OUTPUT in record:
            raise InvalidInput(
                f"JSON Lines row {i} holds {JOINED_OUTPUT!r}, the attribute the job writes "
                "the prediction to (its value would be overwritten); rename it."
            )
        return orjson.dumps(record[attribute])

    return _each_line(body, value)


def _each_line(body: bytes, edit: Callable[[int, bytes], bytes]) -> bytes:
    """``edit(i, line)`` of each line (from 0, without its break), joined as the body was: a
    final line break stays one."""
    ends = body.endswith(b"\n")
    lines = body.split(b"\n")
    if ends:
        lines.pop()  # the empty text after the final break
    return b"\n".join(edit(i, line) for i, line in enumerate(lines)) + b"\n" * ends


def _extra_columns(body: bytes, features: int) -> int:
    """How many more fields than ``features`` the body's first line has (0: not more)."""
    first = body.split(b"\n", 1)[0].decode("utf-8", "replace").removesuffix("\r")
    try:
        fields = next(csv.reader([first]), [])
    except csv.Error:
        return 0
    return max(0, len(fields) - features)


def without_id_columns(body: bytes, id_columns: int) -> bytes:
    """A CSV mini-batch as the job passes it to the container with ``InputFilter``
    ``$[id_columns:]`` ("for CSV data, each row is taken as a JSON array"; RFC 4180): every
    line without its first ``id_columns`` fields (a line of no more fields becomes empty,
    which the service refuses by its row). A line with a quote is split by the csv module (a
    quoted field may hold commas) and its remaining fields written back as RFC 4180 quotes
    them; one it cannot split (an unterminated quote) stays whole, for the service to name.
    """
    if not id_columns:
        return body
    return _each_line(body, lambda _, line: _fields_after(line, id_columns))


def _fields_after(line: bytes, skip: int) -> bytes:
    if b'"' not in line:
        parts = line.split(b",", skip)
        return parts[skip] if len(parts) > skip else b"\r" * line.endswith(b"\r")
    text = line.decode("utf-8", "surrogateescape")
    end = "\r" if text.endswith("\r") else ""
    try:
        fields = next(csv.reader([text.removesuffix("\r")], strict=True))
    except (csv.Error, StopIteration):
        return line
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields[skip:])
    return (out.getvalue() + end).encode("utf-8", "surrogateescape")


class _Unreadable(Exception):
    """A file the job could not read as its CompressionType says (the message says why)."""


_GZIP_MAGIC = b"\x1f\x8b"


def _open(path: Path, compression: str) -> BinaryIO:
    """The file's bytes as the transform job splits them: decompressed with ``Gzip``.

    Raises:
        _Unreadable: a file that is not gzip with ``Gzip``, or is with ``None``.
    """
    with path.open("rb") as head:
        gzipped = head.read(2) == _GZIP_MAGIC
    if compression == "Gzip":
        if not gzipped:
            raise _Unreadable(
                "the file is not gzip-compressed, and with CompressionType Gzip "
                "(mlship:batchCompression) SageMaker decompresses every input file: the job "
                "would fail on this one. Compress it with gzip, or store every file of the "
                "prefix uncompressed and set the compression to None."
            )
        return cast(BinaryIO, gzip.open(path, "rb"))
    if gzipped:
        raise _Unreadable(
            "the file is gzip-compressed, and with CompressionType None "
            "(mlship:batchCompression) the job sends its bytes as they are stored, which the "
            "service refuses. Set the compression to Gzip (every file of the prefix gzip), or "
            "store the files uncompressed."
        )
    return path.open("rb")


def _judge(report: InputReport, schema: FeatureSchema, gate: QualityGate, p: Profile) -> None:
    """The counts of the rows read, and the features past the gate's shares."""
    report.rows = p.rows
    report.missing_values = _by_feature(schema, p.missing)
    report.out_of_range_values = _by_feature(schema, p.out_of_range)
    if p.rows == 0:
        return
    psi = gate.bins.psi(p.counts, p.rows)
    report.drift_psi = {
        name: round(float(v), 4)
        for name, v in zip(schema.names, psi, strict=True)
        if not np.isnan(v)  # a feature without a reference histogram
    }
    for what, counts, limit, key in (
        ("missing", p.missing, gate.max_missing_percent, "alarmMissingPercent"),
        ("outside the training range", p.out_of_range, gate.max_out_of_range_percent,
         "alarmOutOfRangePercent"),
    ):  # fmt: skip
        if limit is None:
            continue
        for j in np.flatnonzero(counts * 100 > limit * p.rows):
            report.quality.append(
                f"{schema.names[j]} is {what} in {counts[j] * 100 / p.rows:.1f}% of rows "
                f"(limit {limit:g}%, mlship:{key})"
            )


def input_files(directory: Path) -> list[Path]:
    """The files under ``directory`` (a downloaded S3 prefix), in key order."""
    return sorted(p for p in directory.rglob("*") if p.is_file())


def write_report(report: InputReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_json(), indent=2) + "\n")


def _by_feature(schema: FeatureSchema, counts: np.ndarray) -> dict[str, int]:
    return {schema.names[j]: int(counts[j]) for j in np.flatnonzero(counts)}
