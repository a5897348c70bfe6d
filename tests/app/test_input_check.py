"""The batch input check (app/input_check.py): SageMaker's mini-batch split, and a verdict on
each mini-batch equal to what ``POST /invocations`` answers that same body."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.input_check import (
    EXIT_MESSAGE_BYTES,
    InputReport,
    QualityGate,
    check_input,
    input_files,
    mini_batches,
    without_id_columns,
)
from app.main import create_app
from app.settings import AppSettings
from core.drift import ReferenceBins
from core.features import FeatureSchema
from core.model import Model, load_model
from tests.contract.batch_transform import split_mini_batches
from tests.factories import flags_table

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def penguin_model(penguin_bundle: Path) -> Model:
    return load_model(penguin_bundle)


@pytest.fixture(scope="module")
def client(penguin_bundle: Path) -> Iterator[TestClient]:
    with TestClient(create_app(AppSettings(model_uri=str(penguin_bundle)))) as c:
        yield c


def _counted(model: Model) -> QualityGate:
    """The training reference, no shares gated."""
    return QualityGate(ReferenceBins(model.manifest))


def _table(penguins: pd.DataFrame, model: Model, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return penguins[model.feature_names].iloc[rng.integers(0, len(penguins), rows)]


@pytest.mark.parametrize("final_newline", [True, False])
@pytest.mark.parametrize(("limit_mb", "longest"), [(1, 3000), (2, 3000), (1, 60)])
def test_mini_batches_are_the_ones_sagemaker_sends(
    final_newline: bool, limit_mb: int, longest: int
) -> None:
    """The split equals the emulator's (tests/contract/batch_transform.py: whole records
    packed greedily up to MaxPayloadInMB), line numbers included."""
    rng = np.random.default_rng(limit_mb)
    lines = [b"x" * int(n) + b"\n" for n in rng.integers(0, longest, 4 * MIB // longest)]
    data = b"".join(lines) if final_newline else b"".join(lines)[:-1]
    ours = list(mini_batches(io.BytesIO(data), limit_mb * MIB))

    assert [body for _, _, body in ours] == split_mini_batches(data, limit_mb * MIB // MIB)
    assert len(ours) > 1
    assert ours[0][0] == 1 and ours[-1][1] == len(lines)
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ours))


def test_a_record_longer_than_a_mini_batch_is_named_by_its_line() -> None:
    data = b"a,b\n" + b"c" * (MIB + 10) + b"\nd,e\n"
    got = list(mini_batches(io.BytesIO(data), MIB))
    assert got == [(1, 1, b"a,b\n"), (2, 2, None), (3, 3, b"d,e\n")]


def test_every_mini_batch_gets_the_services_verdict(
    tmp_path: Path, penguins: pd.DataFrame, penguin_model: Model, client: TestClient
) -> None:
    """Text, gaps, unseen categories, a short row and a blank line in a 3 MB file split into
    1 MB mini-batches: the check refuses exactly the mini-batches /invocations refuses, and
    counts what it accepts but monitors."""
    frame = _table(penguins, penguin_model, 60_000).astype({"island": object})
    frame.loc[frame.index[::97], "island"] = "Atlantis"  # unseen: counted, not refused
    lines = frame.to_csv(index=False, header=False).splitlines(keepends=True)
    lines[30_000] = "Dream,1,2\n"
    lines[50_001] = "\n"
    data = "".join(lines).encode()
    (tmp_path / "in" / "day=1").mkdir(parents=True)
    (tmp_path / "in" / "day=1" / "part.csv").write_bytes(data)
    schema = FeatureSchema(penguin_model.manifest)

    gate = _counted(penguin_model)
    report = check_input(
        input_files(tmp_path / "in"), tmp_path / "in", schema, "text/csv", MIB, gate
    )
    threaded = check_input(
        input_files(tmp_path / "in"), tmp_path / "in", schema, "text/csv", MIB, gate, 3
    )
    assert threaded.as_json() == report.as_json()  # in line order, whatever finishes first

    answers = []
    for first, last, body in mini_batches(io.BytesIO(data), MIB):
        assert body is not None
        r = client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
        answers.append((first, last, r.status_code, r.json().get("error", "")))
    refused = [(f, la, e) for f, la, status, e in answers if status != 200]
    assert len(refused) == 2 and all(status in (200, 400, 422) for *_, status, _ in answers)
    assert [(p.file, p.first_line, p.last_line) for p in report.problems] == [
        ("day=1/part.csv", f, la) for f, la, _ in refused
    ]
    assert [p.reason.split(" (rows count")[0] for p in report.problems] == [e for *_, e in refused]
    assert not report.passed and report.files == 1 and report.mini_batches == len(answers)
    accepted = sum(la - f + 1 for f, la, status, _ in answers if status == 200)
    assert report.rows == accepted
    assert report.unseen_categories["island"] > 0
    assert report.missing_values["sex"] > 0 and "island" not in report.missing_values
    assert "day=1/part.csv lines" in report.summary()


@pytest.mark.parametrize("rows", [40, 4_000], ids=["exact-path", "fast-path"])
def test_a_line_break_inside_a_quoted_value_is_refused_by_its_row(
    tmp_path: Path, penguins: pd.DataFrame, penguin_model: Model, client: TestClient, rows: int
) -> None:
    """pandas quotes a text value holding a line break and writes it across two lines. Read
    as one row (as CSV readers do), it would make every later answer land on the next input
    line: Batch Transform pairs output and input lines, and splits records at line breaks."""
    frame = _table(penguins, penguin_model, rows).astype({"island": object})
    frame = frame.reset_index(drop=True)  # the sample repeats index labels
    frame.loc[rows // 2, "island"] = "Bis\ncoe"
    data = frame.to_csv(index=False, header=False).encode()
    assert data.count(b"\n") == rows + 1

    r = client.post("/invocations", content=data, headers={"Content-Type": "text/csv"})
    assert r.status_code == 422
    assert r.json()["error"].startswith(
        f"CSV row {rows // 2} has a line break inside a quoted value; send each row on one line"
    )
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "part.csv").write_bytes(data)
    gate = _counted(penguin_model)
    schema = FeatureSchema(penguin_model.manifest)
    report = check_input(
        input_files(tmp_path / "in"), tmp_path / "in", schema, "text/csv", MIB, gate
    )
    assert not report.passed
    assert [(p.file, p.first_line, p.last_line) for p in report.problems] == [
        ("part.csv", 1, rows + 1)
    ]
    assert "line break inside a quoted value" in report.problems[0].reason
    # the same table with the line break replaced, as the error advises, is scored row by row,
    # its text quoted or not
    fixed = frame.replace({"island": {"Bis\ncoe": "Bis coe"}})
    for quoting in (csv.QUOTE_MINIMAL, csv.QUOTE_NONNUMERIC):
        body = fixed.to_csv(index=False, header=False, quoting=quoting).encode()
        r = client.post(
            "/invocations", content=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
        )
        assert r.status_code == 200 and r.text.count("\n") == rows


def test_identifier_columns_are_left_out_as_the_job_filters_them(
    tmp_path: Path, penguins: pd.DataFrame, penguin_model: Model, client: TestClient
) -> None:
    """--id-columns 2, a file whose first two columns identify each row (an order reference
    holding a comma, so pandas quotes it, and a date): each line is checked without them, as
    the job's InputFilter "$[2:]" passes it to the container; without --id-columns every
    mini-batch is refused for its column count."""
    frame = _table(penguins, penguin_model, 5_000).reset_index(drop=True)
    ids = pd.DataFrame({"order": [f"order {k}, box {k % 7}" for k in range(len(frame))]})
    ids["day"] = "2026-12-02"
    data = pd.concat([ids, frame], axis=1).to_csv(index=False, header=False).encode()
    features = frame.to_csv(index=False, header=False).encode()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "part.csv").write_bytes(data)
    schema = FeatureSchema(penguin_model.manifest)

    def check(id_columns: int) -> InputReport:
        files = input_files(tmp_path / "in")
        gate = _counted(penguin_model)
        return check_input(
            files, tmp_path / "in", schema, "text/csv", MIB, gate, 2, "None", id_columns
        )

    filtered = check(2)
    assert filtered.passed and filtered.rows == len(frame)
    assert without_id_columns(data, 2) == features  # the lines the container gets
    r = client.post("/invocations", content=features, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200
    whole = check(0)
    assert not whole.passed
    assert "CSV row 0 has 9 columns; the model expects 7" in whole.problems[0].reason
    assert "give the job --id-columns 2 (mlship:batchIdColumns)" in whole.problems[0].reason
    # a header: the service skips it (it names the features), so it gets no answer to join
    header = pd.concat([ids, frame], axis=1).to_csv(index=False, header=True).encode()
    (tmp_path / "in" / "part.csv").write_bytes(header)
    headed = check(2)
    assert not headed.passed
    assert [(p.first_line, p.reason.split(";")[0]) for p in headed.problems] == [
        (1, "line 1 is a header")
    ]


def test_json_lines_records_are_checked_by_their_features_attribute(
    tmp_path: Path, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    """--features-attribute features: each record's "features" is what the container gets
    (InputFilter "$.features"); a record without it, or holding SageMakerOutput (which the
    job overwrites with the answer), is named by its line."""
    frame = _table(penguins, penguin_model, 3_000).reset_index(drop=True)
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    lines = [json.dumps({"order": f"A-{k}", "features": r}).encode() for k, r in enumerate(records)]
    (tmp_path / "in").mkdir()
    schema = FeatureSchema(penguin_model.manifest)

    def check(data: list[bytes], attribute: str) -> InputReport:
        (tmp_path / "in" / "part.jsonl").write_bytes(b"\n".join(data) + b"\n")
        files = input_files(tmp_path / "in")
        gate = _counted(penguin_model)
        jsonl = "application/jsonlines"
        return check_input(
            files, tmp_path / "in", schema, jsonl, MIB, gate, 2, "None", 0, attribute
        )

    report = check(lines, "features")
    assert report.passed and report.rows == len(records)
    assert not check(lines, "").passed  # the whole record is not a record of features
    broken = list(lines)
    broken[10] = json.dumps({"order": "A-10", "feature": records[10]}).encode()
    broken[20] = json.dumps({"SageMakerOutput": 1, "features": records[20]}).encode()
    problems = check(broken, "features").problems
    assert [p.reason.split(";")[0] for p in problems] == [
        "JSON Lines row 10 is not a record with a 'features' attribute"
    ]
    broken[10] = lines[10]
    (problem,) = check(broken, "features").problems
    assert problem.reason.startswith("JSON Lines row 20 holds 'SageMakerOutput'")


def test_leaving_out_identifier_columns_keeps_every_line() -> None:
    """One line out for each line in: CRLF ends kept, a quoted field read as one, a line of
    identifiers only left empty (which the service then refuses by its row), an unterminated
    quote left whole for the service to name."""
    body = b'a,1,2\r\n"x,y",3,"4,5"\r\nonly\n"open,6\n7,8'
    assert without_id_columns(body, 1) == b'1,2\r\n3,"4,5"\r\n\n"open,6\n8'
    assert without_id_columns(body, 0) is body


def test_json_lines_records_are_checked_as_the_service_reads_them(
    tmp_path: Path, penguins: pd.DataFrame, penguin_model: Model, client: TestClient
) -> None:
    frame = _table(penguins, penguin_model, 2_000)
    good = frame.to_json(orient="records", lines=True).encode()
    bad = frame.drop(columns=["year"]).to_json(orient="records", lines=True).encode()
    (tmp_path / "good.jsonl").write_bytes(good)
    (tmp_path / "bad.jsonl").write_bytes(bad)
    schema = FeatureSchema(penguin_model.manifest)
    media = "application/jsonlines"

    gate = _counted(penguin_model)
    report = check_input(input_files(tmp_path), tmp_path, schema, media, 6 * MIB, gate)

    served = client.post("/invocations", content=bad, headers={"Content-Type": media})
    assert served.status_code == 422
    assert [(p.file, p.reason.split(" (rows count")[0]) for p in report.problems] == [
        ("bad.jsonl", served.json()["error"])
    ]
    assert report.rows == len(frame)  # the good file's


def test_refusing_unseen_categories_refuses_them(
    tmp_path: Path, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    frame = _table(penguins, penguin_model, 100).astype({"island": object})
    frame.loc[frame.index[3], "island"] = "Atlantis"
    (tmp_path / "part.csv").write_text(frame.to_csv(index=False, header=False))
    counted = FeatureSchema(penguin_model.manifest)
    refused = FeatureSchema(penguin_model.manifest, refuse_unseen=True)
    paths = input_files(tmp_path)

    gate = _counted(penguin_model)
    assert check_input(paths, tmp_path, counted, "text/csv", MIB, gate).passed
    report = check_input(paths, tmp_path, refused, "text/csv", MIB, gate)
    assert not report.passed and "island" in report.problems[0].reason


def test_no_files_or_no_rows_do_not_pass(tmp_path: Path, penguin_model: Model) -> None:
    schema, gate = FeatureSchema(penguin_model.manifest), _counted(penguin_model)
    empty = check_input([], tmp_path, schema, "text/csv", MIB, gate)
    assert not empty.passed and "no files" in empty.summary()
    (tmp_path / "empty.csv").write_bytes(b"")
    report = check_input(input_files(tmp_path), tmp_path, schema, "text/csv", MIB, gate)
    assert not report.passed and "hold no rows" in report.summary()


def test_the_exit_message_fits_sagemakers_1_kb(tmp_path: Path, flags_bundle: Path) -> None:
    """Many failing files: the summary is cut to whole UTF-8 characters within 1 KB."""
    model = load_model(flags_bundle)
    frame = flags_table()[model.feature_names]
    for k in range(30):
        (tmp_path / f"ünïcode-{k:02d}.csv").write_text(frame.to_csv(index=False, header=False))
        with (tmp_path / f"ünïcode-{k:02d}.csv").open("a") as f:
            f.write("1,2\n")
    report = check_input(
        input_files(tmp_path),
        tmp_path,
        FeatureSchema(model.manifest),
        "text/csv",
        MIB,
        _counted(model),
    )
    message = report.exit_message()
    assert len(report.problems) + report.unlisted == 30 and report.unlisted == 10
    assert len(message) <= EXIT_MESSAGE_BYTES
    message.decode()  # whole characters


def test_the_gate_fails_a_feature_past_the_alarm_shares_and_reports_drift(
    tmp_path: Path, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    """Shares are of the rows read, counted as the service's drift monitor counts them; a
    feature past a limit fails the check, drift is only reported."""
    frame = _table(penguins, penguin_model, 4_000).reset_index(drop=True)
    frame.loc[: len(frame) // 4 - 1, "bill_depth_mm"] = None  # 25 % missing
    frame.loc[len(frame) // 2 :, "flipper_length_mm"] = 900.0  # 50 % out of range
    (tmp_path / "part.csv").write_text(frame.to_csv(index=False, header=False))
    schema = FeatureSchema(penguin_model.manifest)
    bins = ReferenceBins(penguin_model.manifest)

    def check(missing: float | None, outside: float | None) -> list[str]:
        gate = QualityGate(bins, missing, outside)
        report = check_input(input_files(tmp_path), tmp_path, schema, "text/csv", MIB, gate)
        assert report.rows == len(frame) and not report.problems
        assert report.missing_values["bill_depth_mm"] == frame["bill_depth_mm"].isna().sum()
        assert report.out_of_range_values["flipper_length_mm"] >= len(frame) // 2
        assert report.drift_psi["flipper_length_mm"] > 0.25  # reported, never a failure
        assert report.passed == (not report.quality)
        return report.quality

    (tmp_path / "short.csv").write_text("Dream,1,2\n")  # a refused mini-batch besides
    both = check_input(
        input_files(tmp_path), tmp_path, schema, "text/csv", MIB, QualityGate(bins, 20)
    )
    assert (
        both.problems
        and both.quality
        and "1 feature(s) past the data-quality gate" in (both.summary())
    )
    (tmp_path / "short.csv").unlink()
    assert check(None, None) == []
    assert check(30, 60) == []
    failed = check(20, 40)
    assert [f.split(" ", 1)[0] for f in failed] == ["bill_depth_mm", "flipper_length_mm"]
    assert "(limit 20%, mlship:alarmMissingPercent)" in failed[0]
    assert "outside the training range in 50.0% of rows" in failed[1]


def test_gzip_files_are_read_as_the_job_decompresses_them(
    tmp_path: Path, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    """CompressionType Gzip ("Amazon SageMaker automatically decompresses the data for the
    transform job", TransformInput): each file is split after decompression, so the verdict,
    lines and counts equal those of the same files stored uncompressed; a plain file among
    them, or a gzip file with CompressionType None, is one the job would fail on."""
    lines = _table(penguins, penguin_model, 30_000).to_csv(index=False, header=False)
    broken = lines.splitlines(keepends=True)
    broken[20_000] = "Dream,1,2\n"
    plain, gz = tmp_path / "plain", tmp_path / "gz"
    plain.mkdir()
    gz.mkdir()
    for name, text in (("a.csv", lines), ("b.csv", "".join(broken))):
        (plain / name).write_text(text)
        (gz / f"{name}.gz").write_bytes(gzip.compress(text.encode()))
    schema, gate = FeatureSchema(penguin_model.manifest), _counted(penguin_model)

    stored = check_input(input_files(plain), plain, schema, "text/csv", MIB, gate)
    gzipped = check_input(input_files(gz), gz, schema, "text/csv", MIB, gate, 2, "Gzip")
    assert [p.describe() for p in gzipped.problems] == [
        p.describe().replace(".csv ", ".csv.gz ") for p in stored.problems
    ]
    assert len(stored.problems) == 1
    assert (gzipped.rows, gzipped.mini_batches, gzipped.missing_values) == (
        stored.rows, stored.mini_batches, stored.missing_values
    )  # fmt: skip

    (gz / "c.csv").write_text(lines)  # not gzip, in a Gzip prefix
    report = check_input(input_files(gz), gz, schema, "text/csv", MIB, gate, 1, "Gzip")
    assert [(p.file, p.first_line) for p in report.problems][-1] == ("c.csv", 1)
    assert "not gzip-compressed" in report.problems[-1].reason
    plain_read = check_input(input_files(gz), gz, schema, "text/csv", MIB, gate)  # None
    assert {p.file for p in plain_read.problems} == {"a.csv.gz", "b.csv.gz"}
    assert all("Set the compression to Gzip" in p.reason for p in plain_read.problems)


def test_a_damaged_gzip_file_is_named_where_it_breaks(
    tmp_path: Path, penguins: pd.DataFrame, penguin_model: Model
) -> None:
    """A file cut short (an interrupted upload): named, with the last line read whole when
    the break comes after the first block (the check reads 8 MB of text at a time)."""
    text = _table(penguins, penguin_model, 40_000).to_csv(index=False, header=False).encode()
    small, large = gzip.compress(text), gzip.compress(text * 8)  # 1.4 and 11 MB of text
    (tmp_path / "a.csv.gz").write_bytes(small[: len(small) // 2])
    (tmp_path / "b.csv.gz").write_bytes(large[: len(large) * 3 // 4])
    schema, gate = FeatureSchema(penguin_model.manifest), _counted(penguin_model)

    report = check_input(input_files(tmp_path), tmp_path, schema, "text/csv", MIB, gate, 1, "Gzip")
    a, b = report.problems
    assert (a.file, a.first_line) == ("a.csv.gz", 1)
    assert a.reason.startswith("the gzip stream is damaged or ends early (")
    assert b.file == "b.csv.gz" and b.first_line > 1
    assert f"ends early after line {b.first_line - 1} (" in b.reason
    assert not report.passed and report.rows == b.first_line - 1  # what was read before

    corrupt = bytearray(small)  # bytes lost in the middle: the CRC or the stream fails
    corrupt[len(small) // 2 : len(small) // 2 + 64] = bytes(64)
    (tmp_path / "a.csv.gz").write_bytes(bytes(corrupt))
    (tmp_path / "b.csv.gz").unlink()
    report = check_input(input_files(tmp_path), tmp_path, schema, "text/csv", MIB, gate, 1, "Gzip")
    assert "the gzip stream is damaged" in report.problems[-1].reason and not report.passed
    assert ".." not in report.summary()  # reasons end in a period; the summary joins them
