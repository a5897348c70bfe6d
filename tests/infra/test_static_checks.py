"""checkov (the Dockerfile, the workflows, the rendered Kubernetes objects) and hadolint (the
Dockerfile), offline; each also shown failing on a file broken on purpose. (checkov does not
read composite actions; zizmor and GitHub's schema check them in tests/ci.)

checkov resolves on its own (pyproject's ``checkov`` group conflicts with the others: its pins
would downgrade pulumi and urllib3), so it runs through ``uv run --only-group checkov``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.plan import ROOT, StackPlan

# Every check skipped, with its reason in one line.
SKIPPED = {
    "CKV_DOCKER_7": "FROM ${PYTHON_IMAGE}: checkov does not resolve ARGs; the default "
    "python:3.11-slim-bookworm is a version tag",
    "CKV_K8S_43": "the image tag is the git SHA in an ECR repository with IMMUTABLE tags "
    "(rule ecr_immutable_tags): it names exactly one image, as a digest would",
    "CKV_GHA_7": "retrain's workflow_dispatch input is the training data's s3:// object (issue "
    "12: retrain on a data URI), not a build parameter: images and code come from the commit",
    "CKV_K8S_15": "with immutable tags IfNotPresent runs the same image Always would, without an "
    "ECR pull per pod start",
}
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BROKEN_DOCKERFILE = """FROM python:latest
RUN pip install requests
CMD ["python"]
"""
BROKEN_WORKFLOW = """name: broken
on: push
permissions: write-all
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - run: curl -sSL https://example.com/install.sh | bash
"""
BROKEN_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "broken", "namespace": "default"},
    "spec": {
        "containers": [{"name": "c", "image": "nginx", "securityContext": {"privileged": True}}]
    },
}


def uv() -> list[str]:
    """How to call uv: `uv run` sets $UV; `make setup` installs it next to python3."""
    found = os.environ.get("UV") or shutil.which("uv")
    if found is None:
        pytest.fail("uv is not installed: run `make setup`")
    return [found]


@pytest.fixture(scope="module")
def checkov_report(
    plans: dict[str, StackPlan], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, list[str]]]:
    """One checkov run over the real files and the broken ones: for each file, the ids of its
    passed and failed checks."""
    work = tmp_path_factory.mktemp("checkov")
    manifests = work / "rendered" / "eks.yaml"
    manifests.parent.mkdir()
    objects = [r.inputs for r in plans["eks"].resources if r.type.startswith("kubernetes:")]
    manifests.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    broken = work / "broken"
    (broken / ".github" / "workflows").mkdir(parents=True)
    (broken / "Dockerfile").write_text(BROKEN_DOCKERFILE)
    (broken / ".github" / "workflows" / "broken.yml").write_text(BROKEN_WORKFLOW)
    (broken / "pod.yaml").write_text(yaml.safe_dump(BROKEN_POD))
    files = [ROOT / "app" / "Dockerfile", *WORKFLOWS, manifests]
    files += [broken / "Dockerfile", broken / ".github/workflows/broken.yml", broken / "pod.yaml"]
    command = [
        *uv(),
        "run",
        "--frozen",
        "--isolated",
        "--only-group",
        "checkov",
        "checkov",
        *[arg for f in files for arg in ("-f", str(f))],
        "--framework",
        "dockerfile",
        "github_actions",
        "kubernetes",
        "--skip-check",
        ",".join(SKIPPED),
        "--output",
        "json",
    ]
    env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "UV_PYTHON_DOWNLOADS": "never"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip(), result.stderr[-2000:]
    runs = json.loads(result.stdout)
    report: dict[str, dict[str, list[str]]] = {}
    for run in runs if isinstance(runs, list) else [runs]:
        for outcome in ("passed", "failed"):
            for check in run["results"][f"{outcome}_checks"]:
                path = str(Path(check["file_abs_path"]).resolve())
                report.setdefault(path, {"passed": [], "failed": []})[outcome].append(
                    check["check_id"]
                )
    return report


def _checks(report: dict[str, dict[str, list[str]]], path: Path) -> dict[str, list[str]]:
    return report.get(str(path.resolve()), {"passed": [], "failed": []})


def test_checkov_finds_nothing_in_the_dockerfile(
    checkov_report: dict[str, dict[str, list[str]]],
) -> None:
    checks = _checks(checkov_report, ROOT / "app" / "Dockerfile")
    assert checks["failed"] == []
    assert len(checks["passed"]) >= 10  # it was scanned: HEALTHCHECK, USER, ...
    assert "CKV_DOCKER_2" in checks["passed"] and "CKV_DOCKER_3" in checks["passed"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_checkov_finds_nothing_in_the_workflows(
    checkov_report: dict[str, dict[str, list[str]]], path: Path
) -> None:
    checks = _checks(checkov_report, path)
    assert checks["failed"] == []
    assert len(checks["passed"]) >= 5, "not scanned"  # retrain.yml only calls deploy.yml


def test_checkov_finds_nothing_in_the_rendered_kubernetes_objects(
    checkov_report: dict[str, dict[str, list[str]]],
) -> None:
    rendered = [p for p in checkov_report if p.endswith("/rendered/eks.yaml")]
    assert len(rendered) == 1
    checks = checkov_report[rendered[0]]
    assert checks["failed"] == []
    assert len(checks["passed"]) >= 50


def test_checkov_fails_files_broken_on_purpose(
    checkov_report: dict[str, dict[str, list[str]]],
) -> None:
    failed = {
        Path(path).name: set(checks["failed"])
        for path, checks in checkov_report.items()
        if "/broken/" in path
    }
    assert {"CKV_DOCKER_2", "CKV_DOCKER_3"} <= failed["Dockerfile"]  # no HEALTHCHECK, root
    assert "CKV2_GHA_1" in failed["broken.yml"]  # write-all permissions
    assert "CKV_K8S_16" in failed["pod.yaml"]  # privileged container


def hadolint(path: Path) -> list[dict[str, Any]]:
    binary = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(binary), "--format", "json", "--no-fail", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    assert hadolint(ROOT / "app" / "Dockerfile") == []


def test_hadolint_fails_a_dockerfile_broken_on_purpose(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(BROKEN_DOCKERFILE)
    codes = {f["code"] for f in hadolint(dockerfile)}
    assert {"DL3007", "DL3013"} <= codes  # :latest; pip install without a version pin
