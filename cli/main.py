"""The ``mlship`` command line: the parser, exit codes and dispatch.

Each command's handler lives in a module of ``cli/`` (train, serve, batch, report, release,
jobs, plan) and is imported only when that command runs, so ``mlship serve`` works in the serving
image, which has none of the pipeline or infrastructure dependencies. Handlers read the flags
and the environment once, call library functions and print; nothing imports ``cli``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from core.errors import MlshipError
from core.transform import COMPRESSIONS, DEFAULT_PAYLOAD_MB

Handler = Callable[[argparse.Namespace], int]


def _lazy(module: str, name: str) -> Handler:
    """A handler imported when its command runs: ``mlship serve`` must work in the serving
    image, which has none of the pipeline or infrastructure dependencies."""

    def run(args: argparse.Namespace) -> int:
        handler: Handler = getattr(importlib.import_module(f"cli.{module}"), name)
        return handler(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    """Build the ``mlship`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="mlship",
        description="Train a scikit-learn model and ship it to a monitored AWS endpoint.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    p = add(
        "train",
        _lazy("train", "train"),
        "Validate data, train, evaluate, gate, bundle and register a model.",
    )
    p.add_argument("--data", help="CSV or Parquet file, local or s3:// (default: params.yaml).")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="Parameters file.")
    p.add_argument("--out", type=Path, help="Bundle directory (default: params.yaml).")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="Override a params.yaml key (dotted, e.g. model.type=ridge; the value is YAML). "
        "Repeatable.",
    )
    p.add_argument("--target", help="Label column (shorthand for --set data.target=COL).")
    p.add_argument(
        "--sagemaker",
        nargs="?",
        const="/opt/ml",
        metavar="ROOT",
        help="Run SageMaker's training-job contract under ROOT (default /opt/ml): data from the "
        "'train' channel, hyper-parameters as params.yaml overrides, bundle to ROOT/model. "
        "Registers in MLflow only when MLFLOW_TRACKING_URI is set.",
    )

    p = add(
        "promote",
        _lazy("train", "promote"),
        "Point the champion alias at a registered model version.",
    )
    p.add_argument("version", help="Model version number, as listed by `mlship models`.")
    p.add_argument("--alias", default="champion", help="Alias to move (default: champion).")
    p.add_argument(
        "--force",
        action="store_true",
        help="Promote even when the version's task differs from the current holder's.",
    )
    p.add_argument(
        "--stack", help="Stack it now serves on (tags the version with it and the time)."
    )
    p.add_argument("--commit", help="Commit of the release (tagged with --stack).")

    _add_params_arg(p)

    p = add(
        "register",
        _lazy("train", "register"),
        "Gate a trained bundle against the champion, then register it as @challenger.",
    )
    p.add_argument(
        "--bundle", required=True, help="model.tar.gz, local or s3:// (a job's artifact)."
    )
    p.add_argument("--out", type=Path, required=True, help="Directory to unpack the bundle in.")
    p.add_argument(
        "--served-model",
        help="Without a registry (no MLFLOW_TRACKING_URI): s3:// bundle the stack serves.",
    )
    _add_params_arg(p)

    p = add("fetch", _lazy("train", "fetch"), "Download a registered version's bundle.")
    p.add_argument("uri", help="models:/NAME/VERSION or models:/NAME@ALIAS.")
    p.add_argument("--out", type=Path, required=True, help="Directory to download into.")

    p = add(
        "models",
        _lazy("train", "models"),
        "List registered model versions: aliases, task, data hash and metrics.",
    )
    _add_params_arg(p)

    p = add(
        "prepare",
        _lazy("train", "prepare"),
        "Write a bundled dataset as CSV (DVC stage): breast_cancer, diabetes or penguins.",
    )
    # pipelines.data.BUILTIN_SOURCES, written out: the serving image imports this parser.
    p.add_argument(
        "--dataset", choices=["breast_cancer", "diabetes", "penguins"], default="breast_cancer"
    )
    p.add_argument("--out", type=Path, help="CSV path (default: data/DATASET.csv).")

    p = add(
        "expectations",
        _lazy("train", "expectations"),
        "Generate a data expectation suite (JSON) from reference data.",
    )
    p.add_argument("--data", default="data/breast_cancer.csv", help="Reference CSV/Parquet.")
    p.add_argument("--target", default="target", help="Label column (default: target).")
    p.add_argument(
        "--out",
        type=Path,
        help="Suite file to write (default: pipelines/expectations/<data file stem>.json).",
    )
    p.add_argument("--tolerance", type=float, default=0.1, help="Range widening (share of span).")
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="COLUMN",
        help="A column to check only for presence (an identifier, a timestamp: as "
        "params.yaml data.exclude). Repeatable.",
    )

    p = add(
        "serve",
        _lazy("serve", "serve"),
        "Serve a model bundle over HTTP (SageMaker contract, REST, OIP v2).",
    )
    p.add_argument("--model", help="Bundle dir, model.tar.gz, s3:// or models:/name@alias.")
    p.add_argument("--host", help="Interface to bind (default: MLSHIP_HOST or 0.0.0.0).")
    p.add_argument("--port", type=int, help="Port (default: MLSHIP_PORT or 8080).")
    p.add_argument(
        "--workers", type=int, help="Worker processes (default: MLSHIP_WORKERS or one per CPU)."
    )

    p = add(
        "check-input",
        _lazy("check", "check_input"),
        "Check a Batch Transform input before scoring: every mini-batch the job would send, "
        "read as the service reads it (exit 1 naming what fails).",
    )
    p.add_argument("--model", required=True, help="Bundle dir or model.tar.gz.")
    p.add_argument("--input", required=True, type=Path, help="Input file, or directory of files.")
    p.add_argument(
        "--content-type",
        choices=("text/csv", "application/jsonlines"),
        default="text/csv",
        help="The job's ContentType, one record a line (default text/csv).",
    )
    p.add_argument(
        "--max-payload-mb",
        type=int,
        default=DEFAULT_PAYLOAD_MB,
        help=f"The job's MaxPayloadInMB: the mini-batch size (default {DEFAULT_PAYLOAD_MB}).",
    )
    p.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        default="None",
        help="The job's CompressionType: Gzip when every file is gzip-compressed (SageMaker "
        "decompresses them before splitting; default None).",
    )
    p.add_argument(
        "--id-columns",
        type=int,
        default=0,
        help="The job's leading identifier columns (CSV), which the model does not get "
        "(default 0).",
    )
    p.add_argument(
        "--features-attribute",
        default="",
        help="The job's features attribute (JSON Lines): the model gets only its value.",
    )
    p.add_argument(
        "--unseen-categories",
        choices=("count", "refuse"),
        default="count",
        help="As the service's MLSHIP_UNSEEN_CATEGORIES: count a category the model was not "
        "trained on (the default) or refuse it.",
    )
    for what, setting in (
        ("missing", "alarmMissingPercent"),
        ("out-of-range", "alarmOutOfRangePercent"),
    ):
        p.add_argument(
            f"--max-{what}-percent",
            type=float,
            help=f"Fail when a feature's share of {what} values exceeds this %% of the rows "
            f"(the scheduled pipeline passes the stack's {setting}; default: no limit).",
        )
    p.add_argument("--report", type=Path, help="Write the report (JSON) here.")
    p.add_argument(
        "--message",
        type=Path,
        help="On failure, write the summary here (at most 1 KB: a SageMaker processing job's "
        "/opt/ml/output/message becomes its ExitMessage).",
    )

    p = add("predict", _lazy("batch", "predict"), "Score a CSV or Parquet file in batch.")
    p.add_argument("--model", required=True, help="Bundle dir, model.tar.gz, s3:// or models:/.")
    p.add_argument("--input", required=True, help="CSV or Parquet file, local or s3://.")
    p.add_argument("--output", required=True, help="Output CSV or Parquet file, local or s3://.")
    p.add_argument("--chunk-rows", type=int, default=100_000, help="Rows per chunk.")
    p.add_argument("--id-column", help="Column copied to the output (default: 'id' if present).")
    p.add_argument(
        "--runtime",
        choices=("auto", "sklearn", "onnx"),
        default="auto",
        help="What computes the predictions, as the service's MLSHIP_RUNTIME: auto (the "
        "bundle's model.onnx when it has one, else scikit-learn), sklearn or onnx.",
    )

    p = add(
        "report",
        _lazy("report", "report"),
        "Write an HTML monitoring report (drift, data quality, predictions, live quality) "
        "from captured predictions.",
    )
    p.add_argument(
        "--capture",
        required=True,
        help="Capture files: MLSHIP_CAPTURE_DIR, one .jsonl file, or s3://bucket/prefix of an "
        "endpoint's data capture (SageMaker Data Capture format).",
    )
    p.add_argument("--model", required=True, help="The bundle that served them (dir, tar, s3://).")
    p.add_argument("--labels", help="CSV of inference_id,label[,row] (local or s3://).")
    p.add_argument("--out", type=Path, default=Path("report.html"), help="HTML file to write.")

    p = add(
        "plan",
        _lazy("plan", "plan"),
        "Offline plan of a Pulumi stack (mock runtime, no cloud calls).",
    )
    p.add_argument("stack", help="Stack name: reads Pulumi.<stack>.yaml.")
    p.add_argument("--json", action="store_true", help="Machine-readable output.")

    p = add(
        "invoke", _lazy("release", "invoke"), "Send one prediction request to a deployed endpoint."
    )
    _add_target_args(p)
    p.add_argument("--body", help="JSON request body (default: the bundle's first golden row).")
    p.add_argument("--bundle", help="Bundle whose first golden row is sent when --body is absent.")

    p = add(
        "smoke",
        _lazy("release", "smoke"),
        "Post-deploy gate: golden predictions and a short bounded load.",
    )
    _add_target_args(p)
    p.add_argument("--bundle", required=True, help="The deployed bundle (for its golden rows).")
    p.add_argument("--requests", type=int, default=200, help="Load-phase request count.")
    p.add_argument("--concurrency", type=int, default=4, help="Load-phase concurrency.")
    p.add_argument("--max-p99-ms", type=float, default=500.0, help="Fail above this p99.")
    p.add_argument("--max-error-rate", type=float, default=0.01, help="Fail above this rate.")
    p.add_argument(
        "--evidence",
        action="store_true",
        help="Then read the challenger comparison from --url's /metrics and refuse promotion "
        "below the thresholds (--flags document's, overridden by the options below).",
    )
    p.add_argument(
        "--metrics-url",
        help="Where --evidence reads /metrics (default: --url). The EKS stack serves /metrics on "
        "port 9090 inside the cluster only: forward a pod's port 9090 (kubectl port-forward) "
        "and give --metrics-url http://127.0.0.1:9090.",
    )
    p.add_argument("--flags", help="Flags document (file or s3://) whose thresholds apply.")
    p.add_argument("--min-agreement", type=float, help="Least shadow agreement (0-1).")
    p.add_argument("--max-abs-difference", type=float, help="Largest mean |difference|.")
    p.add_argument("--max-latency-delta-ms", type=float, help="Challenger minus champion.")
    p.add_argument("--max-challenger-error-rate", type=float, help="Challenger error rate.")
    p.add_argument("--min-compared-rows", type=int, help="Rows compared before judging.")

    p = add(
        "publish",
        _lazy("release", "publish"),
        "Upload a bundle's model.tar.gz to s3://BUCKET/models/VERSION/.",
    )
    p.add_argument(
        "--bundle",
        required=True,
        help="Bundle dir, its model.tar.gz, or the s3:// URI of one already published (a "
        "rollback: nothing is uploaded, its baseline goes back to --baseline-prefix).",
    )
    p.add_argument("--bucket", required=True, help="Artifact bucket (stack output bucketName).")
    p.add_argument("--version", help="Version in the key (default: the manifest's version).")
    p.add_argument(
        "--baseline-prefix",
        help="Also copy the bundle's data-quality baseline to this key prefix (stack output "
        "batchBaselinePrefix, present when batchSchedule is set).",
    )

    p = add(
        "sagemaker-train",
        _lazy("jobs", "sagemaker_train"),
        "Run `train` of our image as a SageMaker job.",
    )
    _add_job_args(p)
    p.add_argument("--data", required=True, help="s3:// prefix of the training data.")
    p.add_argument("--output", required=True, help="s3:// prefix for the model artifact.")
    p.add_argument("--volume-gb", type=int, default=30, help="Storage volume per instance.")
    p.add_argument("--max-runtime-minutes", type=float, default=60.0, help="Job time limit.")
    p.add_argument("--hyperparameter", action="append", default=[], help="key=value (repeatable).")
    p.add_argument("--tag", action="append", default=[], help="Job tag key=value (repeatable).")
    p.add_argument("--git-commit", help="Commit the image was built from (recorded in the bundle).")
    p.add_argument("--spot", action="store_true", help="Managed spot training (checkpointed).")
    p.add_argument(
        "--max-wait-minutes", type=float, help="Spot: run plus capacity waits (default 2x runtime)."
    )
    p.add_argument("--checkpoint", help="Spot: s3:// checkpoint prefix (default under --output).")

    p = add(
        "sagemaker-transform",
        _lazy("jobs", "sagemaker_transform"),
        "Batch-score S3 CSV with a bundle.",
    )
    _add_job_args(p)
    p.add_argument("--model-data", required=True, help="s3:// URI of the bundle's model.tar.gz.")
    p.add_argument("--input", required=True, help="s3:// prefix of headerless CSV files.")
    p.add_argument("--output", required=True, help="s3:// prefix for the .out files.")
    p.add_argument("--instance-count", type=int, default=1, help="Instances.")
    p.add_argument(
        "--max-payload-mb", type=int, default=6, help="Largest mini-batch (1-100, default 6)."
    )
    p.add_argument(
        "--max-concurrent",
        type=int,
        help="Requests per instance (default: the container's answer, one per worker).",
    )
    p.add_argument(
        "--content-type",
        default="text/csv",
        choices=["text/csv", "application/jsonlines"],
        help="Input and output format, one record per line (default text/csv).",
    )
    p.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        default="None",
        help="Gzip when every input file is gzip-compressed (SageMaker decompresses them; "
        "default None).",
    )
    p.add_argument(
        "--id-columns",
        type=int,
        default=0,
        help="Leading CSV columns that identify a record, not features (default 0): the model "
        "gets each line without them, and each output line is the input line followed by its "
        "prediction.",
    )
    p.add_argument(
        "--features-attribute",
        default="",
        help="JSON Lines: the attribute of each record that holds its features (its other "
        "attributes identify it): the model gets that attribute's value, and each output "
        "record is the input record with the prediction under SageMakerOutput.",
    )
    return parser


def _add_params_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="Parameters file whose model name (registry.model_name, else name) is used.",
    )


def _add_target_args(p: argparse.ArgumentParser) -> None:
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--endpoint", help="SageMaker endpoint name (sagemaker-runtime).")
    target.add_argument("--url", help="Base URL of an mlship service (HTTP).")
    p.add_argument("--api-key-env", default="MLSHIP_API_KEY", help="Env var holding the API key.")
    p.add_argument("--timeout", type=float, default=10.0, help="Per-request timeout, seconds.")


def _add_job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", required=True, help="ECR image URI with tag (repositoryUrl:sha).")
    p.add_argument("--role", required=True, help="SageMaker execution role ARN.")
    p.add_argument("--job-name", help="Job name (default: mlship-<kind>-<timestamp>).")
    p.add_argument("--instance-type", default="ml.m5.large", help="SageMaker instance type.")
    p.add_argument("--kms-key-id", help="KMS key for outputs (default: the bucket's).")
    p.add_argument("--no-wait", action="store_true", help="Start the job and return.")
    p.add_argument("--wait-minutes", type=float, default=120.0, help="Longest wait.")
    p.add_argument("--poll-seconds", type=float, default=30.0, help="Status polling interval.")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mlship`` CLI; returns the process exit code."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # onnxruntime's telemetry writes a session file ($TMPDIR/.ses) that nothing removes.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except MlshipError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `mlship plan dev --json | head`: the reader left; stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
