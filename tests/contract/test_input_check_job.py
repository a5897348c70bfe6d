"""The scheduled pipeline's input check as SageMaker Processing runs it: ``docker run IMAGE
<ContainerArguments>`` (the image's entrypoint, ``app/entrypoint.sh``), with the arguments the
pipeline definition gives (``infra.pipeline_definition.check_input_command``), the input
prefix and the bundle downloaded where its ProcessingInputs put them, and the exit message
where SageMaker reads it ("How Amazon SageMaker Processing Runs Your Processing Container
Image"; "Save and Access Metadata Information About Your Processing Job")."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from infra.pipeline_definition import BatchPipelineSpec, check_input_command
from tests.contract.conftest import ENTRYPOINT, server_env

pytestmark = pytest.mark.slow

OPT_ML = "/opt/ml"


def _spec(content_type: str, compression: str = "None") -> BatchPipelineSpec:
    return BatchPipelineSpec(
        region="eu-west-1",
        bucket="bucket",
        input_prefix="batch/input/",
        output_prefix="batch/output/",
        baseline_prefix="models/current/baseline/",
        model_name="m",
        job_role_arn="arn:aws:iam::123456789012:role/job",
        key_arn="arn:aws:kms:eu-west-1:123456789012:key/k",
        instance_type="ml.m5.large",
        instance_count=1,
        check_instance_type="ml.m5.xlarge",
        check_volume_gb=30,
        check_max_runtime_minutes=60,
        id_columns=0,
        features_attribute="",
        max_payload_mb=1,
        content_type=content_type,
        compression=compression,
        input_check="mlship",
        image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlship:abc",
        model_data_key="models/current/model.tar.gz",
        max_missing_percent=10,  # Pulumi.yaml's alarm defaults
        max_out_of_range_percent=5,
    )


def _run_job(
    root: Path, bundle: Path, files: dict[str, bytes], content_type: str, compression: str = "None"
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Lay out /opt/ml under ``root`` as the job's inputs would, run the container's command
    with the definition's arguments (paths moved under ``root``); returns the run and the
    job's /opt/ml."""
    opt_ml = root / "opt" / "ml"
    spec = _spec(content_type, compression)
    args = [a.replace(OPT_ML, str(opt_ml)) for a in check_input_command(spec)]
    options = dict(zip(args[1::2], args[2::2], strict=True))
    model = Path(options["--model"])
    model.parent.mkdir(parents=True)
    shutil.copy(bundle / "model.tar.gz", model)
    for key, data in files.items():
        path = Path(options["--input"]) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    Path(options["--report"]).parent.mkdir(parents=True)  # SageMaker creates LocalPath
    return _container(args, opt_ml), opt_ml


def _container(args: list[str], opt_ml: Path) -> subprocess.CompletedProcess[str]:
    """``docker run IMAGE <args>``: the image's entrypoint with the job's arguments."""
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env=server_env(str(opt_ml / "model"), 0),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("compression", ["None", "Gzip"])
def test_a_good_prefix_passes_and_reports(
    tmp_path: Path, penguin_bundle: Path, penguins: pd.DataFrame, compression: str
) -> None:
    """Stored as they are, or every file gzip-compressed (mlship:batchCompression: Gzip, which
    the definition passes to the job and to the check alike)."""
    frame = penguins.drop(columns=["species"])
    files = {
        "2026/12/01/part-0.csv": frame.to_csv(index=False, header=False).encode(),
        "2026/12/01/part-1.csv": frame.head(10).to_csv(index=False, header=False).encode(),
    }
    if compression == "Gzip":
        files = {f"{key}.gz": gzip.compress(data) for key, data in files.items()}
    run, opt_ml = _run_job(tmp_path, penguin_bundle, files, "text/csv", compression)

    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((opt_ml / "processing" / "output" / "report.json").read_text())
    assert report["passed"] is True
    assert report["files"] == 2 and report["rows"] == len(frame) + 10
    assert report["quality"] == [] and set(report["drift_psi"]) >= {"island", "body_mass_g"}
    assert report["missing_values"]["sex"] == pd.concat([frame, frame.head(10)])["sex"].isna().sum()
    assert not (opt_ml / "output" / "message").exists()


def test_a_mini_batch_the_service_refuses_fails_the_job_with_its_reason(
    tmp_path: Path, penguin_bundle: Path, penguins: pd.DataFrame
) -> None:
    frame = penguins.drop(columns=["species"])
    records = frame.to_json(orient="records", lines=True).encode()
    broken = frame.drop(columns=["island"]).head(5).to_json(orient="records", lines=True)
    files = {"good.jsonl": records, "later/broken.jsonl": records + broken.encode()}

    run, opt_ml = _run_job(tmp_path, penguin_bundle, files, "application/jsonlines")

    assert run.returncode == 1, run.stdout + run.stderr
    message = (opt_ml / "output" / "message").read_bytes()
    assert len(message) <= 1024
    text = message.decode()
    assert "later/broken.jsonl lines 1-" in text and "island" in text
    assert text.splitlines()[0] in run.stdout  # and in the job's log
    report = json.loads((opt_ml / "processing" / "output" / "report.json").read_text())
    assert report["passed"] is False and [p["file"] for p in report["problems"]] == [
        "later/broken.jsonl"
    ]


def test_output_directories_it_cannot_write_leave_the_verdict_and_the_report_in_the_log(
    tmp_path: Path, penguin_bundle: Path, penguins: pd.DataFrame
) -> None:
    """A container running as a non-root user may find /opt/ml/processing/output read-only
    (aws/sagemaker-python-sdk#4764): the exit code still stops the run, and the report goes to
    the job's log. (Here the directories are files: root, as these tests run, writes anywhere.)"""
    frame = penguins.drop(columns=["species"]).head(50)
    files = {"part.csv": frame.to_csv(index=False, header=False).encode() + b"Dream,1\n"}
    run, opt_ml = _run_job(tmp_path, penguin_bundle, files, "text/csv")
    assert run.returncode == 1
    (opt_ml / "processing" / "output" / "report.json").unlink()
    (opt_ml / "processing" / "output").rmdir()
    (opt_ml / "processing" / "output").write_text("")  # not a directory
    (opt_ml / "output" / "message").unlink()
    (opt_ml / "output").rmdir()
    (opt_ml / "output").write_text("")

    args = [a.replace(OPT_ML, str(opt_ml)) for a in check_input_command(_spec("text/csv"))]
    again = _container(args, opt_ml)

    assert again.returncode == 1, again.stderr
    assert "cannot write" in again.stderr
    logged = json.loads(again.stdout.splitlines()[-1])
    assert logged["passed"] is False and logged["rows"] == 0
    assert logged["problems"][0]["file"] == "part.csv"
