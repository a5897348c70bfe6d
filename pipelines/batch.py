"""Batch scoring: ``mlship predict`` streams a CSV or Parquet file through the model.

The input is read in chunks of ``chunk_rows`` (pyarrow's streaming CSV reader, or Parquet
record batches), each chunk is checked against the bundle's feature schema and scored with
:meth:`core.model.Model.predict`, the same call the service makes, and the result is appended
to the output file. Memory stays flat in the input size: only one chunk is held at a time
(for Parquet, one row group: files written with huge row groups need that much memory).

The output is written to a temporary file beside its destination and renamed into place when
complete (or uploaded when the output is ``s3://``, where an object appears only once whole), so
an interrupted run never leaves a file that looks finished. Columns: the id column when there
is one, ``prediction``, and for classifiers one ``proba_<class>`` column per class.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core.errors import DataError
from core.features import (
    CSV_MISSING,
    FeatureSchema,
    category_codes,
    flag_values,
    number_values,
    text_codes,
)
from core.files import DESCRIBED, DataFormat, data_format
from core.model import Model, Prediction
from core.s3 import download, is_s3_uri, upload
from pipelines.data import separator_hint

DEFAULT_ID_COLUMN = "id"
# A CSV block is read and parsed in parallel by pyarrow; this many bytes per expected row
# gives blocks of about ``chunk_rows`` rows for typical numeric data.
_CSV_BYTES_PER_ROW_GUESS = 16


@dataclass(frozen=True)
class ScoreResult:
    """What a batch-scoring run did."""

    rows: int
    seconds: float
    output: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def score_file(
    model: Model,
    input_uri: str,
    output_uri: str,
    chunk_rows: int = 100_000,
    id_column: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ScoreResult:
    """Stream ``input_uri`` through ``model.predict`` into ``output_uri`` (see module doc)."""
    if chunk_rows < 1:
        raise DataError(f"--chunk-rows must be at least 1, got {chunk_rows}.")
    in_fmt, out_fmt = file_format(input_uri), file_format(output_uri)
    start = time.perf_counter()
    with ExitStack() as stack:
        local_in = Path(input_uri)
        if is_s3_uri(input_uri):
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlship-in-")))
            local_in = download(input_uri, tmp / Path(input_uri).name)
        elif not local_in.is_file():
            raise DataError(f"Input file {input_uri} does not exist.")

        def run(padded: bool) -> int:
            source = _open_input(local_in, in_fmt, chunk_rows, model, id_column, padded)
            writer = _AtomicOutput(output_uri, out_fmt)
            try:
                rows = _pipeline(model, source, writer, progress, start)
                if rows == 0:
                    raise DataError(f"{input_uri} has no rows to score.")
                writer.commit()
            finally:
                writer.discard()
            return rows

        try:
            rows = run(padded=False)
        except _PaddedNull:
            if progress is not None:
                progress("  a number column has padded null spellings: reading its cells trimmed")
            rows = run(padded=True)
    return ScoreResult(rows=rows, seconds=time.perf_counter() - start, output=output_uri)


def _pipeline(
    model: Model,
    source: _Input,
    writer: _AtomicOutput,
    progress: Callable[[str], None] | None,
    started: float,
) -> int:
    """Decode chunk n+1 and write chunk n-1 in threads while chunk n is checked and predicted.

    pyarrow decodes and encodes without the GIL, and numpy copies and checks without it, so on
    two cores reading and writing hide behind the model; at most three chunks are held at once.
    The reading thread only decodes: when it also made the feature matrix (a column-to-row
    copy about as long as the model's predict), the model waited for it 117 of the 211 ms
    that 1 M rows of the 30-feature logistic model took; with the matrix made here, 189 ms.
    Returns the rows scored.
    """
    rows = 0
    chunks = source.chunks
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlship-batch-io") as io:
        upcoming = io.submit(next, chunks, None)
        written: Future[None] | None = None
        while (table := upcoming.result()) is not None:
            upcoming = io.submit(next, chunks, None)
            X = table_to_matrix(model, table, source.plan, rows)
            out = output_table(model, table, source.plan, model.predict(X))
            if written is not None:
                written.result()
            written = io.submit(writer.write, out)
            rows += table.num_rows
            if progress is not None:
                progress(_progress_line(rows, source.rows, time.perf_counter() - started))
        if written is not None:
            written.result()
    return rows


def file_format(uri: str) -> DataFormat:
    """The file format of an input or output by its name (the suffixes of core.files)."""
    fmt = data_format(uri)
    if fmt is None:
        raise DataError(f"{uri}: unknown file type; batch scoring reads and writes {DESCRIBED}.")
    return fmt


@dataclass(frozen=True)
class ChunkPlan:
    """Which input columns feed the model, in which order, which one is the id, and the
    feature rules every chunk is checked with (built once per file)."""

    feature_columns: list[str]
    id_column: str | None
    schema: FeatureSchema
    csv: bool = False  # text cells are read as the service reads a CSV cell

    @staticmethod
    def for_columns(
        model: Model, columns: list[str], id_column: str | None, csv: bool = False
    ) -> ChunkPlan:
        """Check the input's columns against the bundle schema.

        Raises:
            DataError: naming the first missing feature and the closest input column.
        """
        hint = separator_hint("The input", columns) if csv else None
        if hint:
            raise DataError(hint)
        present = set(columns)
        for name in model.feature_names:
            if name not in present:
                close = difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
                hint = f" The closest input column is {close[0]!r}." if close else ""
                raise DataError(
                    f"The input has no column {name!r}, a feature of model "
                    f"{model.name} {model.version} ({model.n_features} features).{hint} Rename "
                    "the column or score with the model it was prepared for."
                )
        if id_column is not None and id_column not in present:
            raise DataError(
                f"--id-column {id_column!r} is not a column of the input; its columns are "
                f"{', '.join(columns[:8])}{', …' if len(columns) > 8 else ''}."
            )
        if id_column is None and DEFAULT_ID_COLUMN in present:
            id_column = DEFAULT_ID_COLUMN
        if id_column in model.feature_names:
            id_column = None  # a feature called "id" is not an identifier to copy
        return ChunkPlan(
            feature_columns=list(model.feature_names),
            id_column=id_column,
            schema=FeatureSchema(model.manifest),
            csv=csv,
        )

    @property
    def columns_read(self) -> list[str]:
        """The input columns scoring reads: the features, then the id column if any."""
        return [*self.feature_columns, *([self.id_column] if self.id_column else [])]


def table_to_matrix(model: Model, table: pa.Table, plan: ChunkPlan, first_row: int) -> np.ndarray:
    """The chunk's features as a (rows, n_features) float64 matrix, checked like a request.

    Raises:
        DataError: for a non-numeric column where the model expects numbers.
        InvalidInput: for a value the service refuses too (infinite, missing where the model
            had none, fractional in an integer feature, not 0/1 in a boolean one), naming the
            feature and the input row (0-based, header excluded).
    """
    # Row-major, the order onnxruntime takes (scikit-learn takes either): filled column by
    # column, it costs about what a column-major fill and onnxruntime's copy to row-major did
    # (3.3 against 3.8 ms per 100,000 rows of 30 features), without that copy's second 24 MB
    # buffer per chunk (peak RSS scoring 1 M rows: 541-604 MB in 8 runs, against 589-635).
    X = np.empty((table.num_rows, len(plan.feature_columns)), dtype=np.float64)
    for j, (name, spec) in enumerate(
        zip(plan.feature_columns, model.manifest.features, strict=True)
    ):
        column = table.column(name)
        if spec.is_categorical:  # text (or codes) to category codes, as the service does
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                # in C++; a CSV cell is trimmed, and missing when empty, as in the service
                X[:, j] = text_codes(column, spec, csv_cell=plan.csv)
            else:
                X[:, j] = category_codes(column.to_numpy(zero_copy_only=False), spec)
            continue
        if pa.types.is_string(column.type) and plan.csv:  # bool (or padded) cells (_open_csv)
            values = flag_values(column) if spec.dtype == "bool" else number_values(column)
            if values is None:  # cell by cell, as the service's exact path: it names the row
                cells = column.to_pylist()
                values = np.array(
                    [plan.schema.text_value(c, first_row + i, j, f"row {first_row + i}: ")
                     for i, c in enumerate(cells)]
                )  # fmt: skip
            X[:, j] = values
            continue
        if not (
            pa.types.is_integer(column.type)
            or pa.types.is_floating(column.type)
            or pa.types.is_boolean(column.type)
            or pa.types.is_null(column.type)
        ):
            raise DataError(
                f"Column {name!r} is {column.type}, not numeric; the model expects numbers "
                f"({spec.dtype}). Clean the column before scoring."
            )
        values = column.to_numpy(zero_copy_only=False)
        X[:, j] = (
            values.astype(np.float64, copy=False)
            if values.dtype != object
            else [np.nan if v is None else v for v in values]
        )
    # The same value rules as the service, with the same messages (core.features).
    plan.schema.validate(X, first_row=first_row)
    return X


def output_table(
    model: Model, table: pa.Table, plan: ChunkPlan, prediction: Prediction
) -> pa.Table:
    """The output columns of one chunk: its id column, the prediction, class probabilities."""
    columns: dict[str, Any] = {}
    if plan.id_column is not None:
        columns[plan.id_column] = table.column(plan.id_column)
    columns["prediction"] = pa.array(prediction.labels)
    if prediction.probabilities is not None:
        for k, cls in enumerate(model.classes or range(prediction.probabilities.shape[1])):
            columns[f"proba_{cls}"] = pa.array(prediction.probabilities[:, k])
    return pa.table(columns)


@dataclass(frozen=True)
class _Input:
    """An input file opened for scoring: what it is read with, its chunks (read as they are
    asked for) and its number of rows when the file says it."""

    plan: ChunkPlan
    chunks: Iterator[pa.Table]
    rows: int | None


def _open_input(
    path: Path,
    fmt: DataFormat,
    chunk_rows: int,
    model: Model,
    id_column: str | None,
    padded: bool = False,
) -> _Input:
    """Open ``path`` and check its columns against the bundle schema (see
    :meth:`ChunkPlan.for_columns`); only the columns scoring reads are decoded, so a wide
    table's other columns never are. ``padded``: see :class:`_PaddedNull`."""
    if fmt == "parquet":
        return _open_parquet(path, chunk_rows, model, id_column)
    return _open_csv(path, chunk_rows, model, id_column, padded)


def _open_parquet(path: Path, chunk_rows: int, model: Model, id_column: str | None) -> _Input:
    try:
        # pre_buffer (on by default) caches every column chunk read: memory would grow with
        # the file.
        parquet = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path} is not a readable Parquet file ({e}).") from e
    plan = ChunkPlan.for_columns(model, parquet.schema_arrow.names, id_column)
    chunks = _parquet_chunks(parquet, chunk_rows, plan.columns_read, path)
    return _Input(plan, chunks, int(parquet.metadata.num_rows))


def _parquet_chunks(
    parquet: pq.ParquetFile, chunk_rows: int, columns: list[str], path: Path
) -> Iterator[pa.Table]:
    """The file's chunks; the reader starts in the thread that asks for the first one."""
    batches = parquet.iter_batches(batch_size=chunk_rows, columns=columns)
    rows = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as e:  # a damaged page, a truncated file
            reason = " ".join(str(e).split())  # pyarrow's message spans lines
            where = f" after its first {rows:,} rows" if rows else ""
            raise DataError(
                f"{path} cannot be read{where} ({reason}). The file is damaged: write it "
                "again, or restore it from its source."
            ) from e
        rows += batch.num_rows
        yield pa.Table.from_batches([batch])


def _header_cells(path: Path) -> list[str]:
    """The first line's comma-separated cells, as far as they can be read (for a hint)."""
    try:
        with path.open("rb") as f:
            first = f.readline(4096).decode("utf-8", "replace")
    except OSError:
        return []
    return first.removeprefix("\ufeff").rstrip("\r\n").split(",")


def _open_csv(
    path: Path, chunk_rows: int, model: Model, id_column: str | None, padded: bool = False
) -> _Input:
    """The header alone first (a small block), then the columns scoring reads, each feature
    with its type: pyarrow otherwise infers a column's type from the first block and fails on
    a later block that does not fit it (whole numbers, then "2.5"; or an unused column of
    codes, then text). A cell is missing when the service reads it so: empty or a null
    spelling (``CSV_MISSING``, pandas' list, which pyarrow's default lacks two of); text
    cells are kept as text here and read by ``text_codes``, and the id column is the text in
    its cells (inferred, "00123" became 123). The number of rows is not known: counting
    would read the file twice."""
    try:
        header = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16))
    except (pa.ArrowInvalid, OSError) as e:
        hint = separator_hint(str(path), _header_cells(path))
        raise DataError(hint or f"{path} is not a readable CSV file ({e}).") from e
    names = header.schema.names
    header.close()
    plan = ChunkPlan.for_columns(model, names, id_column, csv=True)
    # A boolean feature's cells are text too, read by the service's rule (flag_values): True
    # or false in any case, or a number; and every number feature's when ``padded``.
    types = {
        f.name: pa.string() if padded or f.is_categorical or f.dtype == "bool" else pa.float64()
        for f in model.manifest.features
    }
    if plan.id_column is not None:
        types[plan.id_column] = pa.string()
    convert = pacsv.ConvertOptions(
        column_types=types,
        include_columns=plan.columns_read,
        null_values=sorted(CSV_MISSING),  # in number and bool columns
        strings_can_be_null=False,
    )
    block = max(1 << 20, min(chunk_rows * _CSV_BYTES_PER_ROW_GUESS * 8, 1 << 28))
    try:
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(block_size=block), convert_options=convert
        )
    except (pa.ArrowInvalid, OSError) as e:
        raise _csv_error(path, names, e) from e
    return _Input(plan, _rechunk(reader, chunk_rows, path, names), None)


def _rechunk(
    reader: pacsv.CSVStreamingReader, chunk_rows: int, path: Path, names: list[str]
) -> Iterator[pa.Table]:
    """Regroup the reader's record batches into tables of ``chunk_rows`` rows."""
    pending: list[pa.RecordBatch] = []
    held = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as e:
            raise _csv_error(path, names, e) from e
        pending.append(batch)
        held += batch.num_rows
        while held >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows)
            rest = table.slice(chunk_rows)
            pending = rest.to_batches()
            held = rest.num_rows
    if held:
        yield pa.Table.from_batches(pending, schema=reader.schema)


class _PaddedNull(Exception):
    """A number column holds a null spelling with spaces around it (a fixed-width export's
    ``" NA "``). pyarrow trims a cell to convert it to a number but matches the null
    spellings untrimmed, so :func:`score_file` reads the file again with the number
    columns as text, each cell trimmed as the service trims it (about 2.5 times slower to
    read, so only then)."""


def _csv_error(path: Path, names: list[str], e: Exception) -> Exception:
    """The error for a CSV parse error, naming the column pyarrow numbers (on one thread,
    as on a machine with one CPU, pyarrow also numbers the line: ``Row #4: ``)."""
    reason = " ".join(str(e).split())
    found = re.search(r"CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to double", reason)
    if found is None or int(found.group(1)) >= len(names):
        return DataError(f"{path}: the CSV cannot be parsed ({reason}).")
    value = re.search(r"invalid value '(.*)'", reason)
    if value is not None and value.group(1).strip() in CSV_MISSING:
        return _PaddedNull(reason)
    return DataError(
        f"{path}: column {names[int(found.group(1))]!r} holds a value that is not a number "
        f"({reason}); the model expects numbers there, and an empty cell (or NA) where a "
        "value is missing. Clean the column before scoring."
    )


def _progress_line(rows: int, total: int | None, seconds: float) -> str:
    rate = rows / seconds if seconds > 0 else 0.0
    share = f" ({100 * rows / total:.0f}%)" if total else ""
    return f"  {rows:,} rows{share}, {rate:,.0f} rows/s"


class _AtomicOutput:
    """Writes chunks to a temporary file; :meth:`commit` publishes it, :meth:`discard` cleans."""

    def __init__(self, uri: str, fmt: DataFormat) -> None:
        self.uri = uri
        self.fmt = fmt
        if is_s3_uri(uri):
            directory = Path(tempfile.mkdtemp(prefix="mlship-out-"))
            name = Path(uri).name
        else:
            directory = Path(uri).resolve().parent
            if not directory.is_dir():
                raise DataError(f"The output directory {directory} does not exist.")
            name = Path(uri).name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=directory)
        os.close(fd)
        self.tmp = Path(tmp)
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        self._done = False

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            if self.fmt == "parquet":
                # Dictionary encoding only costs time on ids and probabilities (all distinct).
                self._writer = pq.ParquetWriter(self.tmp, table.schema, use_dictionary=False)
            else:
                sink: Any = str(self.tmp)
                if self.uri.lower().endswith(".gz"):
                    sink = pa.CompressedOutputStream(sink, "gzip")
                self._writer = pacsv.CSVWriter(sink, table.schema)
        self._writer.write_table(table)

    def commit(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if is_s3_uri(self.uri):
            upload(self.tmp, self.uri)
        else:
            os.replace(self.tmp, self.uri)
        self._done = True

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if not self._done or is_s3_uri(self.uri):
            self.tmp.unlink(missing_ok=True)
            if is_s3_uri(self.uri):
                self.tmp.parent.rmdir()
