"""A start from ``model.tar.gz`` or ``s3://`` extracts the bundle into a directory that goes away
when the server stops, and when the archive is refused: the system temp dir is left as found."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from core.s3 import s3_client
from tests.contract.conftest import ENTRYPOINT, server_env, start_server, stop_server
from tests.factories import free_port


@pytest.fixture
def system_tmp(tmp_path: Path) -> Path:
    """An empty directory the server process takes as its system temp dir (TMPDIR)."""
    tmp = tmp_path / "system-tmp"
    tmp.mkdir()
    return tmp


def _serve_then_stop(
    model: Path | str, log: Path, tmp: Path, *args: str, **env: str
) -> tuple[list[str], str]:
    """Serve until ``/ping`` answers, then stop; the exit is clean and ``tmp`` (the server's
    system temp dir) is empty again. Returns what ``tmp`` held while serving, and the log."""
    srv = start_server(model, log, *args, TMPDIR=str(tmp), **env)
    try:
        held = sorted(p.name for p in tmp.iterdir())
        logs = srv.logs()
    finally:
        stop_server(srv)

    assert srv.proc.returncode == 0, srv.logs()[-3000:]
    assert sorted(p.name for p in tmp.iterdir()) == []
    return held, logs


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_from_archive_leaves_the_temp_dir_empty(
    logistic_bundle: Path, tmp_path: Path, system_tmp: Path, workers: int
) -> None:
    archive = logistic_bundle / "model.tar.gz"
    held, _ = _serve_then_stop(
        archive, tmp_path / "server.log", system_tmp, "--workers", str(workers)
    )

    assert held  # the bundle is extracted there while the server runs


def test_serve_from_s3_leaves_the_temp_dir_empty(
    logistic_bundle: Path, tmp_path: Path, system_tmp: Path, aws: str
) -> None:
    s3 = s3_client()
    s3.create_bucket(Bucket="mlship-models")
    s3.upload_file(str(logistic_bundle / "model.tar.gz"), "mlship-models", "models/v1/model.tar.gz")
    aws_env = {
        "AWS_ENDPOINT_URL": aws,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    held, _ = _serve_then_stop(
        "s3://mlship-models/models/v1/",
        tmp_path / "server.log",
        system_tmp,
        "--workers",
        "2",
        **aws_env,
    )

    assert held


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_with_a_challenger_archive_leaves_the_temp_dir_empty(
    logistic_bundle: Path, forest_bundle: Path, tmp_path: Path, system_tmp: Path, workers: int
) -> None:
    """MLSHIP_CHALLENGER_URI is resolved like the model's URI, and its copy goes away too."""
    challenger = str(forest_bundle / "model.tar.gz")
    held, logs = _serve_then_stop(
        logistic_bundle,
        tmp_path / "server.log",
        system_tmp,
        "--workers",
        str(workers),
        MLSHIP_CHALLENGER_URI=challenger,
    )

    assert held and "challenger ready" in logs, logs[-3000:]


def test_refused_archive_leaves_the_temp_dir_empty(
    logistic_bundle: Path, tmp_path: Path, system_tmp: Path
) -> None:
    tmp, env = system_tmp, {"TMPDIR": str(system_tmp)}
    tampered = tmp_path / "tampered"
    shutil.copytree(logistic_bundle, tampered, ignore=shutil.ignore_patterns("model.tar.gz"))
    (tampered / "golden.json").write_text((tampered / "golden.json").read_text() + " ")
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for p in sorted(tampered.iterdir()):
            tar.add(p, arcname=p.name)

    result = subprocess.run(
        [str(ENTRYPOINT), "serve"],
        env=server_env(archive, free_port(), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert "does not match its checksum" in result.stderr
    assert sorted(p.name for p in tmp.iterdir()) == []
