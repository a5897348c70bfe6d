"""The GitHub workflows: valid, linted, and holding the invariants the deploy path relies on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ACTIONS = sorted((GITHUB / "actions").glob("*/action.yml"))
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
PIN_COMMENT = re.compile(r"uses:\s*(\S+@[0-9a-f]{40})\s+#\s*v\d+(\.\d+){0,2}\s*$")
MAIN_ONLY = "github.ref == 'refs/heads/main'"
AWS_CREDENTIALS = "aws-actions/configure-aws-credentials@"


def load(path: Path) -> dict[str, Any]:
    raw: dict[Any, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the bare key `on` as True.
    return {"on" if k is True else str(k): v for k, v in raw.items()}


def workflow(name: str) -> dict[str, Any]:
    return load(GITHUB / "workflows" / name)


def all_steps() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every step of every workflow job and composite action, with where it is."""
    for path in WORKFLOWS:
        for job_id, job in load(path)["jobs"].items():
            for step in job.get("steps", []):
                yield f"{path.name}:{job_id}", step
    for path in ACTIONS:
        for step in load(path)["runs"].get("steps", []):
            yield f"{path.parent.name}/action.yml", step


def uses_aws_role(job: dict[str, Any]) -> bool:
    return any(AWS_CREDENTIALS in str(s.get("uses", "")) for s in job.get("steps", []))


def test_expected_files_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "deploy.yml", "retrain.yml"}
    assert GITHUB / "actions" / "setup" / "action.yml" in ACTIONS


def test_workflows_match_the_github_schemas() -> None:
    for schema, files in (
        ("vendor.github-workflows", WORKFLOWS),
        ("vendor.github-actions", ACTIONS),
    ):
        result = subprocess.run(
            [str(BIN / "check-jsonschema"), "--builtin-schema", schema, *map(str, files)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_high() -> None:
    result = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--format", "json", str(GITHUB)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    findings = json.loads(result.stdout)
    assert findings is not None, result.stderr
    high = [
        f"{f['ident']}: {f['locations'][0]['concrete']['feature']}"
        for f in findings
        if f["determinations"]["severity"] in ("High", "Medium")
    ]
    assert high == []


def test_default_permissions_are_read_only() -> None:
    for path in WORKFLOWS:
        assert load(path)["permissions"] == {"contents": "read"}, path.name


def test_id_token_only_on_jobs_that_assume_an_aws_role() -> None:
    for path in WORKFLOWS:
        for job_id, job in load(path)["jobs"].items():
            wants_token = job.get("permissions", {}).get("id-token") == "write"
            if "uses" in job:  # a reusable-workflow call: the token is for its role jobs
                called = load(ROOT / job["uses"])
                assert wants_token == any(uses_aws_role(j) for j in called["jobs"].values())
            else:
                assert wants_token == uses_aws_role(job), f"{path.name}:{job_id}"


def test_third_party_actions_are_pinned_to_a_commit_with_its_tag() -> None:
    seen: dict[str, set[str]] = {}
    for where, step in all_steps():
        uses = step.get("uses")
        if uses is None or uses.startswith("./"):
            continue
        assert PINNED.match(uses), f"{where}: {uses} is not pinned to a commit SHA"
        action, sha = uses.split("@")
        seen.setdefault(action, set()).add(sha)
    assert seen, "no third-party actions found"
    assert {a: s for a, s in seen.items() if len(s) > 1} == {}, "one SHA per action"
    for path in [*WORKFLOWS, *ACTIONS]:
        for line in path.read_text().splitlines():
            if re.search(r"uses:\s*[\w.-]+/[\w.-]+.*@", line):
                assert PIN_COMMENT.search(line), f"{path.name}: {line.strip()} lacks '# vX.Y.Z'"


def test_checkout_never_persists_credentials() -> None:
    checkouts = [(w, s) for w, s in all_steps() if "actions/checkout@" in str(s.get("uses"))]
    assert checkouts
    for where, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, where


def test_every_job_has_a_timeout() -> None:
    for path in WORKFLOWS:
        for job_id, job in load(path)["jobs"].items():
            if "uses" in job:
                continue
            assert 1 <= int(job["timeout-minutes"]) <= 180, f"{path.name}:{job_id}"


def test_no_expression_is_expanded_inside_a_script() -> None:
    # Values reach scripts through env: only (no template injection, whatever the source).
    for where, step in all_steps():
        assert "${{" not in step.get("run", ""), where


def test_the_test_command_is_make_test() -> None:
    for name, job_id in (("ci.yml", "test"), ("deploy.yml", "test")):
        runs = [s.get("run") for s in workflow(name)["jobs"][job_id]["steps"]]
        assert "make test" in runs, f"{name}:{job_id}"
    assert "make lint" in [s.get("run") for s in workflow("ci.yml")["jobs"]["lint"]["steps"]]
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")


def test_ci_runs_on_pull_requests_and_pushes() -> None:
    on = workflow("ci.yml")["on"]
    assert "pull_request" in on
    assert on["push"]["branches"] == ["main"]


def test_deploy_runs_only_from_main() -> None:
    deploy = workflow("deploy.yml")
    assert deploy["on"]["push"] == {"branches": ["main"]}
    assert "pull_request" not in deploy["on"] and "pull_request_target" not in deploy["on"]
    for job_id, job in deploy["jobs"].items():
        assert MAIN_ONLY in job.get("if", ""), f"deploy.yml:{job_id} lacks the main-only guard"
    # Retrain triggers run on the default branch only, and call the guarded workflow.
    retrain = workflow("retrain.yml")
    assert set(retrain["on"]) == {"schedule", "repository_dispatch", "workflow_dispatch"}
    assert [j["uses"] for j in retrain["jobs"].values()] == ["./.github/workflows/deploy.yml"]


def test_retrain_trains_on_the_data_area_never_the_bundled_csv() -> None:
    retrain = workflow("retrain.yml")
    assert "data-uri" in retrain["on"]["workflow_dispatch"]["inputs"]
    (job,) = retrain["jobs"].values()
    assert "client_payload.data_uri" in job["with"]["data-uri"]
    train = workflow("deploy.yml")["jobs"]["train"]
    stack = next(s for s in train["steps"] if s.get("id") == "stack")
    assert stack["env"]["DATA_URI"] == "${{ inputs.data-uri }}"
    # the default is the stack's training-data area, and only s3:// objects are accepted
    assert "trainingDataUri" in stack["run"] and "s3://*) ;;" in stack["run"]
    runs = "\n".join(s.get("run", "") for s in train["steps"])
    assert "mlship sagemaker-train" in runs and "mlship train " not in runs
    assert "data/breast_cancer.csv" not in json.dumps(train)


def test_production_is_behind_its_environment_after_dev() -> None:
    jobs = workflow("deploy.yml")["jobs"]
    role_jobs = {
        job_id: job for job_id, job in jobs.items() if uses_aws_role(job) and job_id != "train"
    }
    assert {j for j, job in jobs.items() if uses_aws_role(job)} == {"train", "dev", "prod", "eks"}
    assert set(role_jobs) == {"dev", "prod", "eks"}
    assert jobs["prod"]["environment"]["name"] == "production"
    assert jobs["dev"]["environment"]["name"] == "dev"
    assert jobs["prod"]["needs"] == "dev"
    stacks = {
        job_id: next(s["with"]["stack"] for s in job["steps"] if s.get("id") == "rollout")
        for job_id, job in role_jobs.items()
    }
    assert stacks["prod"].endswith("}prod") and stacks["dev"].endswith("}dev")
    assert stacks["eks"].endswith("}eks")


def test_one_rollout_at_a_time_per_environment() -> None:
    groups = []
    for job_id, job in workflow("deploy.yml")["jobs"].items():
        if "environment" in job:
            concurrency = job["concurrency"]
            assert job["environment"]["name"] in concurrency["group"], job_id
            assert concurrency["cancel-in-progress"] is False, "never cancel a rollout midway"
            groups.append(concurrency["group"])
    assert len(groups) == len(set(groups)) == 4


def test_build_gets_no_credentials_and_train_only_the_dev_role() -> None:
    jobs = workflow("deploy.yml")["jobs"]
    for job_id in ("test", "image"):
        assert "permissions" not in jobs[job_id] and not uses_aws_role(jobs[job_id]), job_id
        assert "secrets." not in json.dumps(jobs[job_id]), job_id
    train = jobs["train"]
    # SageMaker trains: the job only starts it, in the dev environment with dev's role.
    assert train["environment"]["name"] == "dev"
    assert train["permissions"] == {"contents": "read", "id-token": "write"}
    (assume,) = [s for s in train["steps"] if AWS_CREDENTIALS in str(s.get("uses"))]
    assert assume["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    assert "MLSHIP_API_KEY" not in json.dumps(train)


def test_the_registry_decides_what_ships() -> None:
    jobs = workflow("deploy.yml")["jobs"]
    train, dev, prod = jobs["train"], jobs["dev"], jobs["prod"]
    build = next(s for s in train["steps"] if "training image" in s.get("name", ""))
    assert "--target training" in build["run"] and build["env"]["TAG"].startswith("train-")
    job = next(s for s in train["steps"] if s.get("id") == "job")
    assert "--wait-minutes" in job["run"] and "--spot" in job["run"]
    register = next(s for s in train["steps"] if s.get("id") == "register")
    assert "mlship register" in register["run"] and "--served-model" in register["run"]
    assert train["outputs"]["version"] == "${{ steps.register.outputs.version }}"
    assert dev["outputs"]["uri"] == "${{ needs.train.outputs.uri }}"
    for job_ in (dev, prod):
        check = next(s for s in job_["steps"] if "registered version" in s.get("name", ""))
        assert "mlship fetch" in check["run"] and "cmp " in check["run"]
        rollout = next(s for s in job_["steps"] if s.get("id") == "rollout")
        assert rollout["with"]["image-tag"] == "${{ github.sha }}"  # the same image
        assert rollout["with"]["bundle"] == "build/model.tar.gz"
    names = [s.get("name", "") for s in prod["steps"]]
    promote = next(s for s in prod["steps"] if "mlship promote" in s.get("run", ""))
    # @champion moves only after the rollout step (which ends with prod's gate) succeeded.
    assert names.index(promote["name"]) > [s.get("id") for s in prod["steps"]].index("rollout")
    assert promote["if"].startswith("success() &&")
    assert "--stack prod --commit" in promote["run"]


def test_pull_requests_preview_dev_or_say_why_not() -> None:
    jobs = workflow("ci.yml")["jobs"]
    preview, skipped = jobs["preview"], jobs["preview-skipped"]
    for var in ("vars.AWS_PREVIEW_ROLE_ARN", "vars.PULUMI_BACKEND_URL"):
        assert f"{var} != ''" in preview["if"] and f"{var} == ''" in skipped["if"]
    assert "::notice" in skipped["steps"][0]["run"]
    pulumi = [s for s in preview["steps"] if s.get("with", {}).get("command") == "preview"]
    assert len(pulumi) == 1
    assert pulumi[0]["uses"].startswith("pulumi/actions@")
    assert pulumi[0]["with"]["comment-on-pr"] is True
    assert preview["permissions"]["pull-requests"] == "write"


def test_workflows_use_the_shared_setup_action() -> None:
    for path in WORKFLOWS:
        for job_id, job in load(path)["jobs"].items():
            steps = [s.get("uses", "") for s in job.get("steps", [])]
            if any("setup-python" in u for u in steps):
                pytest.fail(f"{path.name}:{job_id} sets Python up itself; use the setup action")
    setup = load(GITHUB / "actions" / "setup" / "action.yml")
    runs = [s.get("run", "") for s in setup["runs"]["steps"]]
    assert "make setup" in runs


def test_stack_config_keys_the_workflows_set_exist() -> None:
    from infra.config import KEYS_BY_NAME

    text = "\n".join(p.read_text() for p in [*WORKFLOWS, *ACTIONS])
    used = set(re.findall(r"mlship:([A-Za-z][A-Za-z0-9]*)", text))
    assert used >= {"imageTag", "modelDataKey", "alarmLatencyP99Ms"}
    assert used - set(KEYS_BY_NAME) == set()


HISTORY = [
    {"kind": "update", "result": "failed", "message": "mlship bad1 (models/v9/model.tar.gz)"},
    {
        "kind": "update",
        "result": "succeeded",
        "message": "mlship abc123 (models/v2/model.tar.gz) - rollback after a failed gate",
    },
    {"kind": "refresh", "result": "succeeded", "message": "mlship zzz (models/v0/model.tar.gz)"},
    {"kind": "update", "result": "succeeded", "message": "mlship def456 (models/v3/model.tar.gz)"},
]


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (HISTORY, "abc123 models/v2/model.tar.gz"),
        (HISTORY[3:], "def456 models/v3/model.tar.gz"),
        ([{"kind": "update", "result": "succeeded", "message": "bootstrap"}], ""),
        ([], ""),
    ],
)
def test_deployed_release_is_the_last_successful_rollout(
    history: list[dict[str, str]], expected: str
) -> None:
    jq = shutil.which("jq")
    if jq is None:
        pytest.skip("jq is not installed (GitHub's runners have it): `apt-get install jq`")
    result = subprocess.run(
        [jq, "-r", "-f", str(GITHUB / "scripts" / "deployed-release.jq")],
        input=json.dumps(history),
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert result.stdout.strip() == expected


def _subcommand_options(name: str) -> set[str]:
    import argparse

    from cli.main import build_parser

    sub = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices[name]
    return {opt for action in sub._actions for opt in action.option_strings}


def test_mlship_commands_in_workflows_use_existing_options() -> None:
    # Joined continuation lines, then every `mlship <command> --flag ...` call.
    text = "\n".join(p.read_text() for p in [*WORKFLOWS, *ACTIONS]).replace("\\\n", " ")
    calls = re.findall(
        r"mlship (smoke|publish|train|invoke|sagemaker-train|register|fetch|promote)\b([^\n]*)",
        text,
    )
    assert {c for c, _ in calls} >= {
        "smoke", "publish", "sagemaker-train", "register", "fetch", "promote"
    }  # fmt: skip
    for command, rest in calls:
        used = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest))
        assert used - _subcommand_options(command) == set(), f"mlship {command}: {rest}"


def test_stack_outputs_the_workflows_read_are_exported() -> None:
    import ast

    tree = ast.parse((ROOT / "infra" / "__main__.py").read_text())
    exported = next(
        {ast.literal_eval(e) for e in node.value.elts}
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "OUTPUTS" for t in node.targets)
        and isinstance(node.value, ast.Tuple)
    )
    rollout = (GITHUB / "actions" / "rollout" / "action.yml").read_text()
    rollout += (GITHUB / "workflows" / "deploy.yml").read_text()
    read = set(re.findall(r"\.(\w+) // empty|jq -r \.(\w+)|for name in ([\w ]+); do", rollout))
    names = {n for a, b, loop in read for n in (a or b or loop).split()}
    assert names >= {"repositoryUrl", "bucketName", "endpointName", "serviceUrl", "dashboardUrl"}
    assert names >= {"trainingRoleArn", "trainingDataUri", "stagingUri", "mlflowTrackingServerArn"}
    assert names - exported == set()


def test_readme_documents_every_variable_and_secret() -> None:
    text = "\n".join(p.read_text() for p in [*WORKFLOWS, *ACTIONS])
    names = set(re.findall(r"\b(?:vars|secrets)\.([A-Z][A-Z0-9_]*)", text))
    assert {"AWS_ROLE_ARN", "AWS_REGION", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"} <= names
    readme = (ROOT / "README.md").read_text()
    section = readme[
        readme.index("<!-- section:deploy -->") : readme.index("<!-- /section:deploy -->")
    ]
    assert {n for n in names if f"`{n}`" not in section} == set()


def test_each_stack_trusts_the_github_environment_its_rollout_job_runs_in() -> None:
    """The deploy role's OIDC trust names GitHub environments: they must be the workflow's."""
    jobs = workflow("deploy.yml")["jobs"]
    for job_id in ("dev", "prod", "eks"):
        job = jobs[job_id]
        stack_ref = next(s["with"]["stack"] for s in job["steps"] if s.get("id") == "rollout")
        stack = stack_ref.rsplit("}", 1)[-1]
        config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        trusted = config.get("mlship:githubEnvironments") or [config["mlship:environment"]]
        assert job["environment"]["name"] in trusted, (
            f"Pulumi.{stack}.yaml trusts GitHub environments {trusted}, but deploy.yml's "
            f"{job_id} job runs in {job['environment']['name']!r}: its role could not be assumed"
        )
    # The train job assumes dev's role (it reads the dev stack) from its own environment.
    train = jobs["train"]
    stack_step = next(s for s in train["steps"] if s.get("id") == "stack")
    assert stack_step["env"]["STACK"].endswith("}dev")
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert train["environment"]["name"] in config["mlship:githubEnvironments"]


def test_stack_keys_the_workflows_set_are_declared_in_pulumi_yaml() -> None:
    declared = set(yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"])
    used = {
        key
        for path in [*WORKFLOWS, *ACTIONS]
        for key in re.findall(r"\bmlship:[A-Za-z0-9]+\b", path.read_text())
    }
    assert {"mlship:imageTag", "mlship:modelDataKey"} <= used
    assert used <= declared, f"undeclared stack keys: {sorted(used - declared)}"
