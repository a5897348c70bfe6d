"""Prediction capture: every predicted request and its answer, as SageMaker Data Capture writes.

With ``MLSHIP_CAPTURE_DIR`` set, each prediction becomes one JSON line in the documented format
of SageMaker Data Capture (``captureData.endpointInput`` / ``endpointOutput`` with
``observedContentType``, ``mode``, ``data`` and ``encoding``; ``eventMetadata`` with
``eventId``, ``inferenceId`` and ``inferenceTime``; ``eventVersion``), so the same tools read
what SageMaker captures on its endpoints and what any other target captures here
(``mlship report``). The input is the validated rows the model saw, as an ``/invocations`` JSON
body (``{"instances": [...]}``, null for missing values, categorical values as their category
text, and ``OTHER_CATEGORY`` for a value the model saw as its 'other' code: read back through
``core.features`` each gives the code the model saw); the output is the ``/invocations`` JSON
answer. ``inferenceId`` is the request id (the caller's ``X-Request-Id`` when it sent one,
echoed in the response), the key for joining labels that arrive later.

The request path only appends to a bounded in-memory queue (no I/O, no serialisation, no lock
shared with the writer); when the queue holds ``max_queued_rows`` rows, new records are dropped
and counted (``mlship_capture_dropped_total``), never waited for. A writer thread serialises
and writes them. Files:

- ``<dir>/yyyy/mm/dd/hh/<MM-SS-mmm>-<pid>-<id>.jsonl`` (UTC, the hour the file was opened, as
  SageMaker lays out its capture prefix), one writer per worker process, so no two processes
  ever write one file;
- written as ``….jsonl.part`` and renamed to ``….jsonl`` once complete (after ``fsync``), every
  ``rotate_seconds``, past 64 MiB, at the turn of the hour and at shutdown: a ``*.jsonl`` file
  is always whole;
- :meth:`CaptureWriter.close` (the app's shutdown, after in-flight requests finished) writes
  everything still queued, so a SIGTERM loses no record.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from core.model import Prediction

log = logging.getLogger("mlship.app")

JSON = "application/json"
EVENT_VERSION = "0"
PART_SUFFIX = ".part"
# How a categorical value outside the known categories is captured (the model saw it as the
# 'other' code; its own text is not kept).
OTHER_CATEGORY = "(other)"
MAX_FILE_BYTES = 64 * 1024 * 1024
# How often the writer thread looks for queued records (and for a file to complete).
POLL_SECONDS = 0.05
# Records serialised and written at a time, between which the writer yields to the event loop.
BATCH_RECORDS = 64
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_TIME = "%Y-%m-%dT%H:%M:%SZ"
# The fixed parts of a record, in the documented key order.
_INPUT_HEAD = (
    b'{"captureData":{"endpointInput":{"observedContentType":"application/json",'
    b'"mode":"INPUT","data":'
)
_OUTPUT_HEAD = (
    b',"encoding":"JSON"},"endpointOutput":{"observedContentType":"application/json",'
    b'"mode":"OUTPUT","data":'
)
_METADATA_HEAD = b',"encoding":"JSON"}},"eventMetadata":{"eventId":"'
_RECORD_TAIL = b'"},"eventVersion":"' + EVENT_VERSION.encode() + b'"}\n'
# The variant digit of a version-4 UUID: 8, 9, a or b.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}

_Item = tuple[float, str | None, np.ndarray, Prediction]


class CaptureWriter:
    """Writes captured predictions of one worker process, off the request path.

    Args:
        directory: The capture root (``MLSHIP_CAPTURE_DIR``).
        model_version: The served version, written in every output like ``/invocations`` does.
        classes: The model's classes (None for regressors), idem.
        max_queued_rows: Rows waiting to be written beyond which records are dropped.
        rotate_seconds: Longest a file stays open before it is completed.
        records: Counter of records written; ``dropped``: counter of records dropped, with a
            ``reason`` label (``queue_full``, ``write_error``). None in tests that need none.
        worker: Process id in file names.
        clock: Seconds since the epoch (tests pass their own).
        categories: Per feature, the known categories of a categorical one (None for the
            others): their codes in ``X`` are written as text.
    """

    def __init__(
        self,
        directory: Path,
        model_version: str,
        classes: list[Any] | None,
        max_queued_rows: int = 100_000,
        rotate_seconds: float = 60.0,
        records: Any = None,
        dropped: Any = None,
        worker: int | None = None,
        clock: Callable[[], float] = time.time,
        categories: Sequence[list[str] | None] | None = None,
    ) -> None:
        self.directory = directory
        self.clock = clock
        # (column, its categories, the text of its 'other' code) per categorical feature
        self._categorical = [
            (j, cats, _other_text(cats)) for j, cats in enumerate(categories or []) if cats
        ]
        self.model_version = model_version
        self.classes = classes
        self.max_queued_rows = max_queued_rows
        self.rotate_seconds = rotate_seconds
        self.worker = os.getpid() if worker is None else worker
        self.written = 0
        self.dropped_full = 0  # request path only
        self.dropped_error = 0  # writer thread only
        self._records = records
        self._dropped_full = None if dropped is None else dropped.labels("queue_full")
        self._dropped_error = None if dropped is None else dropped.labels("write_error")
        self._queue: deque[_Item] = deque()
        # Rows appended (request path only) and rows taken (writer only): each has one writer,
        # so the queue's size needs no lock between them.
        self._rows_in = 0
        self._rows_out = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file: IO[bytes] | None = None
        self._part: Path | None = None
        self._deadline = 0.0
        self._size = 0
        self._second = -1
        self._stamp = b""
        tail = orjson.dumps({"classes": classes, "model_version": model_version})
        self._answer_tail = b"," + tail[1:]  # ',"classes":[...],"model_version":"..."}'

    # -- request path -----------------------------------------------------------------------

    def submit(self, X: np.ndarray, prediction: Prediction, inference_id: str | None) -> None:
        """Queue one prediction; never blocks: drops and counts it when the queue is full."""
        rows = X.shape[0]
        if self._rows_in - self._rows_out + rows > self.max_queued_rows or self._stop.is_set():
            self.dropped_full += 1
            if self._dropped_full is not None:
                self._dropped_full.inc()
            return
        self._rows_in += rows
        self._queue.append((self.clock(), inference_id, X, prediction))

    @property
    def dropped(self) -> int:
        """Records not written: the queue was full, or writing failed."""
        return self.dropped_full + self.dropped_error

    # -- writer thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="mlship-capture", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write every queued record, complete the open file, stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        else:  # never started: write what was queued from here
            self._drain()
            self._complete()

    def _run(self) -> None:
        try:
            while not self._stop.wait(POLL_SECONDS):
                self._drain()
                if self._file is not None and self._due(self.clock()):
                    self._complete()
            self._drain()  # what was queued before close()
        finally:
            self._complete()

    def _drain(self) -> None:
        while self._queue:
            batch: list[_Item] = []
            rows = 0
            while self._queue and len(batch) < BATCH_RECORDS:
                item = self._queue.popleft()
                batch.append(item)
                rows += item[2].shape[0]
            try:
                written = self._write(batch)
            except OSError as e:
                log.warning("capture: %d records not written: %s", len(batch), e)
                self._count_errors(len(batch))
                # Keep what was written before: readers skip a partial last line.
                self._complete()
            else:
                self.written += written
                if self._records is not None and written:
                    self._records.inc(written)
            finally:
                self._rows_out += rows
            # Hand the interpreter back between batches: the event loop waits for it otherwise
            # up to the thread switch interval (5 ms), a latency spike on every request then.
            time.sleep(0)

    def _write(self, batch: list[_Item]) -> int:
        """Write the records of ``batch``; returns how many were written."""
        file = self._file
        ids = os.urandom(16 * len(batch)).hex()  # one system call for every eventId
        lines: list[bytes] = []
        written = 0
        for i, item in enumerate(batch):
            try:
                line = self.line(*item, event_id=_uuid4(ids[32 * i : 32 * i + 32]))
            except (TypeError, ValueError) as e:  # orjson's refusal: this record only
                log.warning("capture: a record cannot be serialised: %s", e)
                self._count_errors(1)
                continue
            at = item[0]
            if file is None or at >= self._deadline or self._size >= MAX_FILE_BYTES:
                if file is not None and lines:
                    file.write(b"".join(lines))
                    lines = []
                self._complete()
                file = self._open(at)
            lines.append(line)
            self._size += len(line)
            written += 1
        if file is not None:
            file.write(b"".join(lines))
            file.flush()  # to the OS: a crash of this process loses nothing written
        return written

    def _count_errors(self, records: int) -> None:
        self.dropped_error += records
        if self._dropped_error is not None:
            self._dropped_error.inc(records)

    def line(
        self,
        at: float,
        inference_id: str | None,
        X: np.ndarray,
        prediction: Prediction,
        event_id: str | None = None,
    ) -> bytes:
        """One capture record, as a JSON line (assembled from fixed parts: the writer thread
        shares the interpreter with the request path, so it must stay cheap)."""
        labels: Any = prediction.labels
        if labels.dtype.kind not in "biuf":
            labels = labels.tolist()  # orjson serialises numeric arrays only
        if self._categorical:
            request = orjson.dumps({"instances": self._as_sent(X)})
        else:
            request = orjson.dumps({"instances": X}, option=_NUMPY)
        answer = b"".join(
            (
                b'{"predictions":',
                orjson.dumps(labels, option=_NUMPY),
                b',"probabilities":',
                orjson.dumps(prediction.probabilities, option=_NUMPY),
                self._answer_tail,
            )
        )
        return b"".join(
            (
                _INPUT_HEAD,
                orjson.dumps(request.decode()),  # the body as a JSON string
                _OUTPUT_HEAD,
                orjson.dumps(answer.decode()),
                _METADATA_HEAD,
                (event_id or str(uuid.uuid4())).encode(),
                b'","inferenceId":',
                orjson.dumps(inference_id or uuid.uuid4().hex),
                b',"inferenceTime":"',
                self._time(at),
                _RECORD_TAIL,
            )
        )

    def _as_sent(self, X: np.ndarray) -> list[list[Any]]:
        """Rows with each category code turned back into its text (NaN stays missing)."""
        rows: list[list[Any]] = X.tolist()
        for j, cats, other in self._categorical:
            k = len(cats)
            for row in rows:
                code = row[j]
                if code == code:  # not NaN
                    row[j] = cats[int(code)] if code < k else other
        return rows

    def _time(self, at: float) -> bytes:
        """``inferenceTime`` (seconds, UTC, as SageMaker writes it); formatted once a second."""
        second = int(at)
        if second != self._second:
            self._second = second
            self._stamp = datetime.fromtimestamp(second, UTC).strftime(_TIME).encode()
        return self._stamp

    def _due(self, now: float) -> bool:
        return now >= self._deadline

    def _open(self, at: float) -> IO[bytes]:
        when = datetime.fromtimestamp(at, UTC)
        folder = self.directory / when.strftime("%Y/%m/%d/%H")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{when:%M-%S}-{when.microsecond // 1000:03d}-{self.worker}-{uuid.uuid4().hex[:8]}"
        self._part = folder / f"{name}.jsonl{PART_SUFFIX}"
        self._file = self._part.open("xb")
        # Complete it after rotate_seconds, or at the turn of the hour (files sit in the
        # folder of their hour), whichever comes first.
        next_hour = (int(at) // 3600 + 1) * 3600
        self._deadline = min(at + self.rotate_seconds, float(next_hour))
        self._size = 0
        return self._file

    def _complete(self) -> None:
        """fsync the open file and give it its final name (readers only read ``*.jsonl``)."""
        if self._file is None or self._part is None:
            return
        file, part = self._file, self._part
        self._file = self._part = None
        try:
            file.flush()
            os.fsync(file.fileno())
            file.close()
            final = part.with_name(part.name.removesuffix(PART_SUFFIX))
            os.replace(part, final)
            _fsync_dir(final.parent)
        except OSError as e:
            log.warning("capture: could not complete %s: %s", part, e)


def _other_text(categories: list[str]) -> str:
    """A text outside ``categories``, read back as the 'other' code."""
    text = OTHER_CATEGORY
    while text in categories:
        text = f"({text})"
    return text


def _uuid4(hex32: str) -> str:
    """A version-4 UUID string from 32 random hex digits."""
    h = hex32
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
