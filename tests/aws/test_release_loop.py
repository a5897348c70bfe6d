"""The release loop of deploy.yml / retrain.yml, step by step, against moto and a real MLflow.

Data pushed to the stack's bucket -> a SageMaker training job request (moto) -> the training
container's command run locally on a directory laid out as /opt/ml -> the bundle in the staging
area -> `mlship register` (gate against the real champion, @challenger with data version and
commit) -> dev and prod deploy that registered version (the stacks planned with it) -> prod's
gate (`mlship smoke` against a real `mlship serve`) -> `mlship promote` moves @champion only
when it passed. Every AWS and MLflow call each job makes is recorded and checked against the
planned deploy role (tests/aws/release_calls.py): least privilege stays provable.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from cli.main import main as mlship
from infra import policies
from infra.plan import StackPlan, run_stack
from tests.aws.release_calls import CallLog, denied, unused_mlflow_actions
from tests.aws.test_smoke_service import API_KEY, _serve
from tests.factories import free_port

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 with a SQLite store (as the brief's tooling notes say)."""
    port = free_port()
    store = tmp_path / "mlflow"
    store.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
         "--default-artifact-root", str(store / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        # Generous: it takes tens of seconds on a loaded machine (uvicorn, job executor).
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mlflow server did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        # The server runs uvicorn in a child process: stop the whole group it leads.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def breast_cancer_csv(tmp_path: Path) -> Path:
    from pipelines.data import materialise

    return materialise("breast_cancer", tmp_path / "data" / "breast_cancer.csv")


@pytest.fixture
def stacks() -> dict[str, StackPlan]:
    """dev hosts the registry (its own server); prod uses dev's server."""
    dev = run_stack("dev", overrides={"mlship:mlflowServer": "true"})
    server = dev.outputs["mlflowTrackingServerArn"]
    prod = run_stack("prod", overrides={"mlship:mlflowTrackingServerArn": server})
    return {"dev": dev, "prod": prod}


def _deploy_policy(plan: StackPlan) -> dict[str, Any]:
    name = f"mlship-{plan.config.environment}-github-policy"
    (found,) = [r for r in plan.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == name]
    doc: dict[str, Any] = json.loads(found.inputs["policy"])
    return doc


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = mlship(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _outputs(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _sagemaker_emulation(
    request: dict[str, Any], tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What SageMaker does between CreateTrainingJob and Completed: copy the channel into
    /opt/ml/input/data/train, run the container's `train` (app/entrypoint.sh runs exactly
    `python -m cli train --sagemaker /opt/ml --params /opt/mlship/params.yaml`) with the job's
    Environment and no registry (network isolation), and pack /opt/ml/model to the output."""
    s3 = boto3.session.Session().client("s3")  # SageMaker's own work: not the deploy role's
    job = request["TrainingJobName"]
    root = tmp / f"opt-ml-{job}"
    uri = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    bucket, key = uri[len("s3://") :].split("/", 1)
    channel = root / "input" / "data" / "train"
    channel.mkdir(parents=True)
    s3.download_file(bucket, key, str(channel / Path(key).name))
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(request.get("HyperParameters", {})))
    with monkeypatch.context() as env:
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        for name, value in request.get("Environment", {}).items():
            env.setenv(name, value)
        assert (
            mlship(["train", "--sagemaker", str(root), "--params", str(ROOT / "params.yaml")]) == 0
        )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for file in sorted((root / "model").iterdir()):
            tar.add(file, arcname=file.name)
    out_bucket, prefix = request["OutputDataConfig"]["S3OutputPath"][len("s3://") :].split("/", 1)
    s3.put_object(
        Bucket=out_bucket,
        Key=f"{prefix.rstrip('/')}/{job}/output/model.tar.gz",
        Body=buf.getvalue(),
    )


def _noisy(csv: Path, share: float, seed: int) -> bytes:
    """The same table with a share of labels flipped: worse data that still validates."""
    frame = pd.read_csv(csv)
    rng = np.random.default_rng(seed)
    flip = rng.random(len(frame)) < share
    frame.loc[flip, "target"] = 1 - frame.loc[flip, "target"]
    return frame.to_csv(index=False, lineterminator="\n").encode()


class Loop:
    """The workflow's steps, with the stacks' outputs and a call log per job."""

    def __init__(
        self,
        stacks: dict[str, StackPlan],
        tmp: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        calls: CallLog,
    ) -> None:
        self.stacks, self.tmp, self.mp, self.capsys, self.calls = (
            stacks,
            tmp,
            monkeypatch,
            capsys,
            calls,
        )
        self.dev = stacks["dev"].outputs
        self.runs = 0

    def train(
        self, data_key: str, hyperparameters: tuple[str, ...] = ()
    ) -> tuple[int, dict[str, str], str]:
        """deploy.yml `train` job: the SageMaker job, then `mlship register`."""
        self.runs += 1
        job = f"mlship-dev-train-{COMMIT[:12]}-{self.runs}"
        self.calls.job = "train"
        sent: list[dict[str, Any]] = []

        def client() -> Any:
            sm = self.calls.client("sagemaker")
            sm.meta.events.register(
                "provide-client-params.sagemaker.CreateTrainingJob",
                lambda params, **_: sent.append(dict(params)),
            )
            # moto completes the job at once: emulate what SageMaker does before that.
            sm.meta.events.register(
                "after-call.sagemaker.CreateTrainingJob",
                lambda **_: _sagemaker_emulation(sent[-1], self.tmp, self.mp),
            )
            return sm

        self.mp.setattr("cli.jobs.sagemaker_client", client)
        argv = [
            "sagemaker-train",
            "--image", f"{self.dev['repositoryUrl']}:train-{COMMIT}",
            "--role", self.dev["trainingRoleArn"],
            "--data", f"{self.dev['trainingDataUri']}/{data_key}",
            "--output", f"{self.dev['stagingUri']}/jobs",
            "--job-name", job,
            "--git-commit", COMMIT,
            "--tag", f"mlship-commit={COMMIT}",
            "--poll-seconds", "0.1", "--wait-minutes", "1",
            *[x for hp in hyperparameters for x in ("--hyperparameter", hp)],
        ]  # fmt: skip
        code, out, err = _run(argv, self.capsys)
        assert code == 0, err
        artifact = out.strip().splitlines()[-1]
        assert artifact == f"{self.dev['stagingUri']}/jobs/{job}/output/model.tar.gz"
        code, out, err = _run(
            ["register", "--bundle", artifact, "--out", str(self.tmp / f"register-{self.runs}")],
            self.capsys,
        )
        self.calls.job = None
        return code, _outputs(out), err

    def deploy(self, stack: str, version: str) -> Path:
        """deploy.yml `dev` / `prod` job: fetch the registered version, publish it to the
        stack's bucket, plan the stack with the same image tag and key."""
        self.calls.job = stack
        code, out, err = _run(
            ["fetch", f"models:/mlship/{version}", "--out", str(self.tmp / f"{stack}-{version}")],
            self.capsys,
        )
        assert code == 0, err
        archive = Path(_outputs(out)["bundle"])
        bucket = self.stacks[stack].outputs["bucketName"]
        code, out, err = _run(
            ["publish", "--bundle", str(archive), "--bucket", bucket], self.capsys
        )
        assert code == 0, err
        key = _outputs(out)["key"]
        plan = run_stack(
            stack,
            overrides={"mlship:imageTag": COMMIT, "mlship:modelDataKey": key},
        )
        # the serving model (a stack with scheduled batch scoring has a batch model too)
        (model,) = [m for m in plan.of_type("aws:sagemaker/model:Model") if "batch" not in m.name]
        container = model.inputs["primaryContainer"]
        assert container["modelDataUrl"] == f"s3://{bucket}/{key}"
        assert container["image"] == f"{plan.outputs['repositoryUrl']}:{COMMIT}"
        self.calls.job = None
        return archive

    def gate_then_promote(self, service: str, archive: Path, version: str) -> bool:
        """prod's post-deploy gate, and `mlship promote` only when it passed."""
        self.calls.job = "prod"
        self.mp.setenv("MLSHIP_API_KEY", API_KEY)
        code, _, _ = _run(
            ["smoke", "--url", service, "--bundle", str(archive), "--requests", "20",
             "--max-p99-ms", "5000"],
            self.capsys,
        )  # fmt: skip
        if code != 0:
            self.calls.job = None
            return False
        code, _, err = _run(
            ["promote", version, "--stack", "prod", "--commit", COMMIT], self.capsys
        )
        assert code == 0, err
        self.calls.job = None
        return True


def test_the_release_loop_in_the_cloud(
    aws: str,
    mlflow_server: str,
    stacks: dict[str, StackPlan],
    breast_cancer_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.chdir(ROOT)  # `mlship promote/register` read the model name from params.yaml
    calls = CallLog(stacks["dev"].outputs["mlflowTrackingServerArn"])
    calls.install(monkeypatch)
    s3 = boto3.session.Session().client("s3")  # the test's own calls are not recorded
    for plan in stacks.values():
        bucket = plan.outputs["bucketName"]
        s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    dev_bucket = stacks["dev"].outputs["bucketName"]
    loop = Loop(stacks, tmp_path, monkeypatch, capsys, calls)
    registry = MlflowClient(tracking_uri=mlflow_server)

    # 1. Data pushed to the stack's training-data area (`aws s3 cp`, README).
    first_data = s3.put_object(
        Bucket=dev_bucket, Key="data/breast_cancer.csv", Body=breast_cancer_csv.read_bytes()
    )["VersionId"]

    # 2. First run: no champion anywhere yet; registered as @challenger with its lineage.
    code, out, err = loop.train("breast_cancer.csv")
    assert code == 0, err
    assert "no champion registered yet" in err
    assert out["version"] == "1"
    assert out["data-version"] == f"s3:{first_data}"
    v1 = registry.get_model_version("mlship", "1")
    assert v1.tags["mlship.data_version"] == f"s3:{first_data}"
    assert v1.tags["mlship.git_commit"] == COMMIT
    assert v1.tags["mlship.training_artifact"].startswith(f"s3://{dev_bucket}/staging/jobs/")
    assert registry.get_model_version_by_alias("mlship", "challenger").version == "1"

    # 3. dev and prod deploy that registered version: the same archive, byte for byte.
    dev_archive = loop.deploy("dev", "1")
    prod_archive = loop.deploy("prod", "1")
    assert dev_archive.read_bytes() == prod_archive.read_bytes()

    # 4. prod's gate passes (the service serves v1): @champion moves to 1, tagged.
    service: Generator[str, None, None] = _serve(prod_archive)  # type: ignore[assignment]
    url = next(service)
    try:
        assert loop.gate_then_promote(url, prod_archive, "1")
        champion = registry.get_model_version_by_alias("mlship", "champion")
        assert champion.version == "1"
        assert champion.tags["mlship.champion.prod.commit"] == COMMIT
        assert "mlship.champion.prod.at" in champion.tags

        # 5. Worse data (a new version of the same object): refused against the champion,
        # even with the in-job thresholds out of the way; nothing registered.
        worse = s3.put_object(
            Bucket=dev_bucket, Key="data/breast_cancer.csv", Body=_noisy(breast_cancer_csv, 0.2, 1)
        )["VersionId"]
        assert worse != first_data
        relaxed = [f"gate.thresholds.{m}=0.5" for m in ("accuracy", "f1", "roc_auc")]
        code, out, err = loop.train("breast_cancer.csv", tuple(relaxed))
        assert code != 0
        assert "is not admitted" in err and "worse than champion v1" in err
        assert [v.version for v in registry.search_model_versions("name = 'mlship'")] == ["1"]

        # 6. A good run whose prod gate fails (prod still answers with v1): @champion stays.
        s3.put_object(
            Bucket=dev_bucket, Key="data/breast_cancer.csv", Body=breast_cancer_csv.read_bytes()
        )
        code, out, err = loop.train("breast_cancer.csv", ("model.hyperparameters.C=0.05",))
        assert code == 0, err
        assert out["version"] == "2"
        loop.deploy("dev", "2")
        v2_archive = loop.deploy("prod", "2")
        assert not loop.gate_then_promote(url, v2_archive, "2")
        assert registry.get_model_version_by_alias("mlship", "champion").version == "1"
        assert registry.get_model_version_by_alias("mlship", "challenger").version == "2"
    finally:
        service.close()

    # 7. Each job's calls are allowed by its stack's deploy role, and the registry actions
    # granted are the ones the jobs use (the failure-path undo aside).
    dev_policy, prod_policy = _deploy_policy(stacks["dev"]), _deploy_policy(stacks["prod"])
    assert calls.by_job("train") and calls.by_job("dev") and calls.by_job("prod")
    assert denied(calls.by_job("train"), dev_policy) == []
    assert denied(calls.by_job("dev"), dev_policy) == []
    assert denied(calls.by_job("prod"), prod_policy) == []
    assert unused_mlflow_actions(calls.all(), dev_policy) == {"sagemaker-mlflow:DeleteModelVersion"}
    actions = {c.action for c in calls.all()}
    assert {"sagemaker:CreateTrainingJob", "iam:PassRole", "s3:GetObject"} <= actions
    assert set(policies.MLFLOW_PROMOTE) <= {c.action for c in calls.by_job("prod")}
