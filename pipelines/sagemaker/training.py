"""``mlship train --sagemaker``: the same training run inside a SageMaker training job.

SageMaker starts our image as ``docker run IMAGE train`` and talks to it through files
(https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html):

- input data under ``/opt/ml/input/data/<channel>/`` (mlship's launcher names the channel
  ``train``; it must hold exactly one CSV or Parquet file);
- hyper-parameters in ``/opt/ml/input/config/hyperparameters.json``, every value a string;
  mlship reads each key as a dotted ``params.yaml`` path (``model.type``,
  ``model.hyperparameters.n_estimators``, ``gate.thresholds.roc_auc``) and each value as YAML;
- the model goes to ``/opt/ml/model/``, which SageMaker packs as ``model.tar.gz``: mlship writes
  the bundle's files there, so that archive *is* a bundle the serving container loads;
- on failure, the reason goes to ``/opt/ml/output/failure`` (shown as the job's FailureReason);
- the launcher passes what the network-isolated container cannot see as the job's
  ``Environment``: ``MLSHIP_DATA_VERSION`` (the S3 version of the channel's file) and
  ``MLSHIP_GIT_COMMIT`` (the image's commit); the CLI reads them into a ``Lineage``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.bundle import ARCHIVE_NAME
from core.errors import ConfigError, DataError, MlshipError
from core.files import data_format

if TYPE_CHECKING:
    from pipelines.train import Lineage

CHANNEL = "train"
# SageMaker shows at most 1 KiB of the failure file as FailureReason.
_FAILURE_LIMIT = 1024


def read_hyperparameters(path: Path) -> dict[str, Any]:
    """Read SageMaker's hyperparameters.json; values are YAML scalars sent as strings."""
    from pipelines.params import parse_value

    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{path} is not JSON ({e}); SageMaker writes it from the job's HyperParameters."
        ) from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a JSON object of hyper-parameters.")
    return {str(k): parse_value(v) if isinstance(v, str) else v for k, v in raw.items()}


def find_data_file(channel_dir: Path) -> Path:
    """The one CSV or Parquet file SageMaker copied into the ``train`` channel."""
    if not channel_dir.is_dir():
        raise DataError(
            f"No {CHANNEL!r} input channel at {channel_dir}. Start the job with an "
            f"InputDataConfig channel named {CHANNEL!r} (`mlship sagemaker-train --data s3://…`)."
        )
    files = sorted(p for p in channel_dir.rglob("*") if p.is_file() and data_format(p) is not None)
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "none"
        raise DataError(
            f"The {CHANNEL!r} channel must hold exactly one CSV or Parquet file; found {found}. "
            "Point --data at a prefix that contains only the training file."
        )
    return files[0]


def run_training_job(
    params_path: Path,
    root: Path,
    registry: bool,
    say: Callable[[str], None] = print,
    lineage: Lineage | None = None,
) -> str:
    """Train from SageMaker's input files and leave the bundle in ``root/model``.

    Args:
        params_path: The params.yaml baked into the image (hyper-parameters override it).
        root: SageMaker's ``/opt/ml`` (another directory in tests).
        registry: Register in MLflow (only when a tracking server is configured).
        say: Where progress lines go (the job's log).
        lineage: Data version and commit from the launcher (recorded in the manifest).

    Returns:
        The bundle version written.

    Raises:
        MlshipError: any failure, also written to ``root/output/failure`` (SageMaker shows it
            as the job's FailureReason).
    """
    import yaml

    from pipelines.params import parse_params
    from pipelines.train import train

    try:
        raw = yaml.safe_load(params_path.read_text()) if params_path.is_file() else {}
        overrides = read_hyperparameters(root / "input" / "config" / "hyperparameters.json")
        # The metrics file lives in the bundle's manifest; nothing else is written outside it.
        forced = {"registry.enabled": registry, "output.metrics": None}
        params = parse_params(
            raw or {}, params_path, {**overrides, **forced}, origin="hyper-parameter"
        )
        data = find_data_file(root / "input" / "data" / CHANNEL)
        say(f"SageMaker training: {data.name} with {len(overrides)} override(s)")
        with tempfile.TemporaryDirectory(prefix="mlship-sm-") as tmp:
            result = train(
                params, data=str(data), out=Path(tmp) / "bundle", say=say, lineage=lineage
            )
            model_dir = root / "model"
            model_dir.mkdir(parents=True, exist_ok=True)
            for file in sorted(result.bundle_dir.iterdir()):
                if file.is_dir():  # baseline/
                    shutil.copytree(file, model_dir / file.name, dirs_exist_ok=True)
                elif file.name != ARCHIVE_NAME:  # SageMaker packs model_dir into the archive
                    shutil.copyfile(file, model_dir / file.name)
    except MlshipError as e:
        failure = root / "output" / "failure"
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(str(e)[:_FAILURE_LIMIT])
        raise
    say(f"bundle {result.bundle_version} written to {model_dir}")
    return result.bundle_version
