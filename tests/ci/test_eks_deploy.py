"""The EKS stack's deploy path (issue 10 item 7): its API endpoint is private and its Service's
load balancer internal, so its rollout runs on a self-hosted runner inside the VPC, opted in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MAIN_ONLY = "github.ref == 'refs/heads/main'"
GITHUB_HOSTED_PREFIXES = ("ubuntu-", "windows-", "macos-")


def jobs() -> dict[str, Any]:
    result: dict[str, Any] = yaml.safe_load((ROOT / ".github/workflows/deploy.yml").read_text())[
        "jobs"
    ]
    return result


def eks_stack() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.eks.yaml").read_text())["config"]
    return config


def reachable_from_github_hosted_runners(config: dict[str, Any]) -> bool:
    """Both what the rollout talks to are public: the EKS API (some CIDRs listed, and they would
    have to include GitHub's runner ranges) and the Service (internet-facing)."""
    return bool(config.get("mlship:clusterPublicAccessCidrs")) and (
        config.get("mlship:serviceInternal") is False
    )


def test_eks_stack_needs_a_runner_inside_its_vpc() -> None:
    assert not reachable_from_github_hosted_runners(eks_stack())
    assert reachable_from_github_hosted_runners(
        {"mlship:clusterPublicAccessCidrs": ["203.0.113.0/24"], "mlship:serviceInternal": False}
    )


def test_eks_job_runs_on_a_self_hosted_runner_in_the_vpc() -> None:
    job = jobs()["eks"]
    labels = job["runs-on"]
    assert isinstance(labels, list)
    assert labels[0] == "self-hosted" and "mlship-eks" in labels
    assert not any(str(label).startswith(GITHUB_HOSTED_PREFIXES) for label in labels)


def test_eks_job_is_opt_in_and_main_only() -> None:
    condition = jobs()["eks"]["if"]
    assert MAIN_ONLY in condition
    # Without the variable no job waits for a runner that does not exist.
    assert "vars.MLSHIP_EKS_DEPLOY == 'true'" in condition


def test_eks_rolls_out_the_tested_artifacts_in_its_own_environment() -> None:
    all_jobs = jobs()
    job = all_jobs["eks"]
    assert set(job["needs"]) == {"image", "train"}  # the same image and bundle as dev and prod
    assert job["environment"]["name"] in eks_stack()["mlship:githubEnvironments"]
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    rollout = next(s for s in job["steps"] if s.get("id") == "rollout")
    assert rollout["uses"] == "./.github/actions/rollout"
    assert rollout["with"]["stack"] == "${{ vars.PULUMI_STACK_PREFIX }}eks"
    # The gate calls the service through its URL with an API key (the EKS REST path).
    assert job["env"]["MLSHIP_API_KEY"] == "${{ secrets.MLSHIP_API_KEY }}"
    # prod does not wait for the EKS stack, and the EKS stack does not wait for prod.
    assert "eks" not in str(all_jobs["prod"]["needs"]) and "prod" not in job["needs"]


def test_only_the_eks_job_uses_a_self_hosted_runner() -> None:
    for path in sorted((ROOT / ".github/workflows").glob("*.yml")):
        for job_id, job in yaml.safe_load(path.read_text())["jobs"].items():
            if "self-hosted" in str(job.get("runs-on", "")):
                assert (path.name, job_id) == ("deploy.yml", "eks")
