"""The image's contract, checked without a Docker engine: Dockerfile properties, the
environment it sets equals the app's settings, and the entrypoint's command dispatch."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from app.settings import AppSettings
from tests.contract.conftest import ENTRYPOINT, REPO, server_env
from tests.factories import free_port

DOCKERFILE = (REPO / "app" / "Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def test_container_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    assert len(_instructions("FROM")) >= 2
    assert set(_instructions("USER")) == {"10001:10001"}
    assert _instructions("EXPOSE") == ["8080"]
    assert "/ping" in _instructions("HEALTHCHECK")[0]
    assert _instructions("ENTRYPOINT") == ['["/opt/mlship/app/entrypoint.sh"]']
    # the last stage is what a plain `docker build` gives: the serving image
    assert _instructions("CMD")[-1] == '["serve"]'
    assert _instructions("FROM")[-1].endswith("AS runtime")


def test_container_installs_only_the_locked_serving_dependencies() -> None:
    serving, training = (r for r in _instructions("RUN") if "uv sync" in r)

    for sync in (serving, training):
        assert "--frozen" in sync
        assert "--no-default-groups" in sync
        assert "--no-install-project" in sync
    assert "--group" not in serving
    assert "--group pipelines" in training


def test_container_serving_image_ships_no_pipelines_code() -> None:
    # The runtime stage copies core/, app/ and cli/; only the training stage adds pipelines/.
    stages = re.split(r"^FROM ", DOCKERFILE, flags=re.M)
    base = next(s for s in stages if s.split("\n")[0].endswith("AS base"))
    runtime = next(s for s in stages if s.split("\n")[0].endswith("AS runtime"))
    training = next(s for s in stages if s.split("\n")[0].endswith("AS training"))
    copied = re.findall(r"^COPY --chown=\S+ (\S+)/", base + runtime, flags=re.M)

    assert sorted(copied) == ["app", "cli", "core"]
    assert "pipelines/" in training


def test_container_environment_names_are_app_settings() -> None:
    env = " ".join(_instructions("ENV"))
    names = set(re.findall(r"\b(MLSHIP_[A-Z_]+)=", env))
    fields = {f"MLSHIP_{n.upper()}" for n in AppSettings.model_fields}

    assert names
    assert names <= fields, names - fields


def test_container_dockerignore_keeps_the_context_to_what_the_image_copies() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()

    assert lines[lines.index("**")] == "**"
    assert {"!pyproject.toml", "!uv.lock", "!app/", "!pipelines/"} <= set(lines)


def test_container_entrypoint_dispatches_train_and_other_commands(tmp_path: Path) -> None:
    env = server_env(tmp_path, free_port())

    train = subprocess.run(
        [str(ENTRYPOINT), "train", "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    other = subprocess.run(
        [str(ENTRYPOINT), "echo", "hello"], env=env, capture_output=True, text=True, timeout=10
    )

    assert train.returncode == 0, train.stderr
    assert train.stdout.startswith("usage: mlship train")
    assert other.stdout == "hello\n"
