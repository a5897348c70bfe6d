"""AppSettings: every ``MLSHIP_`` environment variable the service reads, validated once.

Built once at the edge (``serve``, or the caller of ``create_app``) and passed down; nothing else
in ``app/`` reads the environment.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.media import JSONLINES, JSONLINES_ALIASES
from core.runtime import cpus_available
from core.transform import DEFAULT_PAYLOAD_MB, MIB

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# SageMaker kills a container 30 s after SIGTERM; the drain must end before that.
_SAGEMAKER_KILL_AFTER_S = 30.0


# Service settings that decide who may call it: a misspelt variable near one of these must stop
# the start (a typo would otherwise leave the API open), not just warn.
KEY_SETTINGS = ("api_key_hashes", "api_keys_file", "api_keys_secret", "invocations_auth")
# MLSHIP_ variables read by other mlship commands, not by the service.
OTHER_COMMANDS_VARIABLES = frozenset({"MLSHIP_API_KEY"})


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None, bool]]:
    """``MLSHIP_`` variables the service does not read: (name, closest setting, refuse).

    ``refuse`` is True when the name looks like a key setting (its closest setting is one of
    :data:`KEY_SETTINGS`, or it mentions KEY or AUTH): a typo there must stop the start.
    """
    known = {
        variable: name
        for name in AppSettings.model_fields
        for variable in _variables(name)
        if variable.startswith("MLSHIP_")
    }
    found = []
    for name in sorted(environ):
        if not name.startswith("MLSHIP_") or name in known or name in OTHER_COMMANDS_VARIABLES:
            continue
        close = difflib.get_close_matches(name, list(known), n=1)
        closest = close[0] if close else None
        refuse = (closest is not None and known[closest] in KEY_SETTINGS) or any(
            word in name for word in ("KEY", "AUTH")
        )
        if refuse and (closest is None or known[closest] not in KEY_SETTINGS):
            keys = [f"MLSHIP_{k.upper()}" for k in KEY_SETTINGS]
            close = difflib.get_close_matches(name, keys, n=1, cutoff=0.5)
            closest = close[0] if close else None
        found.append((name, closest, refuse))
    return found


def _body_limit(transform_payload_mb: int | None) -> int:
    """The default body limit: a transform job's MaxPayloadInMB, else SageMaker's real-time
    limit (6 MiB)."""
    return (transform_payload_mb or DEFAULT_PAYLOAD_MB) * MIB


def variable_of(location: str, environ: Mapping[str, str]) -> str:
    """The environment variable a setting was read from, for a validation error's location
    (a field's name, or the alias pydantic names): of the variables it may be read from, the
    first one set in ``environ``, as pydantic reads them (``MLSHIP_PORT`` before
    ``SAGEMAKER_BIND_TO_PORT``)."""
    for name in AppSettings.model_fields:
        names = _variables(name)
        if location == name or location in names:
            return next((n for n in names if n in environ), names[0])
    return f"MLSHIP_{location.upper()}"


def _variables(name: str) -> list[str]:
    """The environment variables setting ``name`` is read from, in pydantic's order."""
    alias = AppSettings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [str(alias)] if alias else [f"MLSHIP_{name.upper()}"]


def parse_key_hashes(raw: str, source: str) -> list[str]:
    """Split comma- or newline-separated SHA-256 hex digests and check each one.

    Raises:
        ValueError: naming ``source``, the bad entry's position and how to make a hash.
    """
    hashes = [h.strip().lower() for h in re.split(r"[,\s]+", raw) if h.strip()]
    for i, h in enumerate(hashes, start=1):
        if not _SHA256_HEX.match(h):
            raise ValueError(
                f"{source}: entry {i} is not a SHA-256 hex digest (64 hex characters). Store "
                'hashes, never the keys themselves: `printf %s "$KEY" | sha256sum`.'
            )
    return hashes


class AppSettings(BaseSettings):
    """The service's settings; field ``x`` is read from ``MLSHIP_X``."""

    model_config = SettingsConfigDict(
        env_prefix="MLSHIP_", extra="ignore", frozen=True, populate_by_name=True
    )

    model_uri: str = Field(
        default="/opt/ml/model",
        description="Bundle directory, model.tar.gz, s3://bucket/key(.tar.gz) or "
        "models:/name@alias (MLflow, only where installed). SageMaker extracts to /opt/ml/model.",
    )
    host: str = Field(
        default="0.0.0.0",  # noqa: S104 - a container must listen on its external interface
        description="Interface to bind.",
    )
    port: int = Field(
        default=8080,
        ge=1,
        le=65535,
        # SageMaker multi-container endpoints tell each container its port this way.
        validation_alias=AliasChoices("MLSHIP_PORT", "SAGEMAKER_BIND_TO_PORT"),
        description="Port to listen on (SAGEMAKER_BIND_TO_PORT is honoured too).",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve /metrics only on this second port (the EKS stack sets it: its load "
        "balancer exposes the main port, so metrics stay inside the cluster). Unset: /metrics "
        "on the main port.",
    )
    workers: int = Field(
        default_factory=cpus_available,
        ge=1,
        le=64,
        description="Server worker processes (default: one per CPU, as SageMaker's own "
        "containers run); each loads the model before it accepts requests. With fewer workers "
        "than CPUs, a worker predicts a large request and writes its answer in row slices on "
        "the CPUs it has to itself.",
    )
    max_batch_rows: int | None = Field(
        default=None,
        ge=1,
        description="Most rows one request may carry (422 above). Unset: no row limit, the "
        "body size bounds a request (a Batch Transform mini-batch is bytes, not rows).",
    )
    # SageMaker sets this in a Batch Transform container when the job sets MaxPayloadInMB
    # ("Custom Inference Code with Batch Transform", Amazon SageMaker Developer Guide:
    # SAGEMAKER_BATCH, SAGEMAKER_MAX_PAYLOAD_IN_MB, SAGEMAKER_BATCH_STRATEGY and
    # SAGEMAKER_MAX_CONCURRENT_TRANSFORMS); declared before max_body_bytes, which defaults to it.
    sagemaker_max_payload_in_mb: int | None = Field(
        default=None,
        ge=0,
        le=100,
        validation_alias="SAGEMAKER_MAX_PAYLOAD_IN_MB",
        description="Set by SageMaker in a Batch Transform job that sets MaxPayloadInMB: the "
        "largest mini-batch it sends, in MiB. The body limit when MLSHIP_MAX_BODY_BYTES is "
        "unset; the service refuses to start below it.",
    )
    # SageMaker's framework containers answer a request without Accept (a Batch Transform job
    # whose TransformOutput sets none sends none) or with */* in this type, JSON when unset.
    default_invocations_accept: (
        Literal["application/json", "text/csv", "application/jsonlines", "application/x-npy"] | None
    ) = Field(
        default=None,
        validation_alias="SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT",
        description="The answer type of a /invocations request without Accept or with */* "
        "(as SageMaker's framework containers read it; JSON when unset): text/csv or "
        "application/jsonlines gives a Batch Transform job that sets no Accept one output "
        "line per input line.",
    )
    max_body_bytes: int = Field(
        default_factory=lambda data: _body_limit(data["sagemaker_max_payload_in_mb"]),
        ge=1024,
        le=100 * MIB,
        description="Largest request body accepted (413 above). Unset: 6 MiB, SageMaker's "
        "real-time limit, or in a Batch Transform job its MaxPayloadInMB "
        "(SAGEMAKER_MAX_PAYLOAD_IN_MB, up to 100 MiB).",
    )

    @model_validator(mode="after")
    def _check_transform_payload(self) -> AppSettings:
        payload = self.sagemaker_max_payload_in_mb
        if payload == 0:
            raise ValueError(
                "SAGEMAKER_MAX_PAYLOAD_IN_MB=0: the transform job may send payloads of any size "
                "(MaxPayloadInMB=0, chunked), and mlship takes bodies up to 100 MiB. Set the "
                "job's MaxPayloadInMB between 1 and 100."
            )
        if payload is not None and self.max_body_bytes < payload * MIB:
            raise ValueError(
                f"MLSHIP_MAX_BODY_BYTES={self.max_body_bytes} is below the {payload} MiB "
                f"mini-batches this transform job sends (SAGEMAKER_MAX_PAYLOAD_IN_MB={payload}): "
                f"each larger one would be refused with 413. Raise it to at least "
                f"{payload * MIB}, or unset it to take the job's MaxPayloadInMB."
            )
        return self

    api_key_hashes: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated SHA-256 hex digests of the accepted API keys.",
    )
    api_keys_file: Path | None = Field(
        default=None, description="File of SHA-256 hex digests, one per line."
    )
    api_keys_secret: str | None = Field(
        default=None,
        description="AWS Secrets Manager secret (name or ARN) holding the digests: a JSON list, "
        'a JSON object {"api_key_hashes": [...]}, or one digest per line.',
    )
    invocations_auth: bool | None = Field(
        default=None,
        description="API key on /invocations. Unset: required whenever API keys are "
        "configured, as on every prediction route. false: open even with keys, only where "
        "something else guards it (SageMaker authenticates /invocations callers with IAM).",
    )
    graceful_timeout: int = Field(
        default=25,
        gt=0,
        lt=_SAGEMAKER_KILL_AFTER_S,
        description="Seconds in-flight requests get to finish after SIGTERM.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of the JSON logs."
    )
    access_log: bool = Field(default=True, description="Log one JSON line per request.")
    monitoring: bool = Field(
        default=True, description="Track drift (PSI) and data quality on prediction inputs."
    )
    drift_window_rows: int = Field(
        default=10_000,
        ge=100,
        description="Rows the drift histograms remember (older rows decay by halves).",
    )
    signals: bool = Field(
        default=True,
        description="Write the model-signal lines (PSI, missing and out-of-range ratios, class "
        "shares) to stdout, where the stack's CloudWatch metric filters read them "
        "(app/signals.py). MLSHIP_MONITORING=false turns them off too.",
    )
    signal_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        le=60,
        description="Seconds between two rounds of signal lines: at most 60, the stack's "
        "alarms read one-minute periods.",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="Directory where worker processes share their metrics, so /metrics sums "
        "all of them (`serve` sets it, and PROMETHEUS_MULTIPROC_DIR, when workers > 1).",
    )
    model_cache_dir: Path | None = Field(
        default=None,
        description="Where s3:// and models:/ bundles are downloaded (default: a temp dir).",
    )
    runtime: Literal["auto", "sklearn", "onnx"] = Field(
        default="auto",
        description="What computes predictions: auto uses onnxruntime when the bundle carries "
        "a verified model.onnx and onnxruntime is installed, else scikit-learn; onnx refuses "
        "to start without them.",
    )
    microbatching: bool = Field(
        default=True,
        description="Coalesce concurrent requests into one predict call (results are split "
        "back per request; a failing request fails alone).",
    )
    microbatch_max_rows: int = Field(
        default=64, ge=1, description="Most rows one micro-batched predict call takes."
    )
    microbatch_max_wait_ms: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="Longest a request waits for others to join its batch; it waits only "
        "while more keep arriving, so a lone request is sent at once.",
    )
    cache_enabled: bool | None = Field(
        default=None,
        description="Prediction cache by model version and feature values; unset: on when "
        "the model predicts its golden rows identically twice at start (deterministic).",
    )
    cache_max_entries: int = Field(
        default=10_000, ge=1, description="Rows the prediction cache keeps (LRU)."
    )
    cache_max_request_rows: int = Field(
        default=64,
        ge=1,
        description="Largest request (rows) the prediction cache answers; a larger one goes "
        "straight to the model, is not stored and is counted in "
        "mlship_prediction_cache_skipped_rows_total. A lookup costs microseconds per row, more "
        "than predicting the row in a batch, and a Batch Transform mini-batch would replace "
        "every cached row.",
    )
    unseen_categories: Literal["count", "refuse"] = Field(
        default="count",
        description="A categorical value the model was not trained on: count it "
        "(mlship_unseen_categories_total) and predict (the model ignores it), or refuse the "
        "request with 422.",
    )

    # -- rollout: a challenger beside the champion (app/routing.py, core/flags.py) ----------
    challenger_uri: str | None = Field(
        default=None,
        description="A second bundle served beside MLSHIP_MODEL_URI (same URI forms); it must "
        "take the same requests (task, features, classes) or the start is refused. The flags "
        "document decides which requests it answers or shadows.",
    )
    flags_uri: str | None = Field(
        default=None,
        description="The rollout policy (a JSON flags document: file or s3://), re-read every "
        "MLSHIP_FLAGS_REFRESH_SECONDS; a bad or unreachable document keeps the last good one. "
        "Unset: the champion answers everything.",
    )
    flags_refresh_seconds: float = Field(
        default=15.0, ge=0.05, le=3600, description="Seconds between reads of the flags document."
    )
    shadow_max_in_flight: int = Field(
        default=32,
        ge=1,
        description="Most shadow predictions running at once; sampled requests above it are "
        "counted (mlship_shadow_skipped_total) and not scored.",
    )

    @model_validator(mode="after")
    def _check_rollout(self) -> AppSettings:
        if self.flags_uri is not None and self.challenger_uri is None:
            raise ValueError(
                "MLSHIP_FLAGS_URI is set but MLSHIP_CHALLENGER_URI is not: there is no "
                "challenger to route to. Set MLSHIP_CHALLENGER_URI or unset MLSHIP_FLAGS_URI."
            )
        return self

    @field_validator("api_key_hashes", mode="before")
    @classmethod
    def _split_hashes(cls, value: object) -> object:
        if isinstance(value, list):  # from code (the default is []); the environment gives str
            return parse_key_hashes(",".join(str(v) for v in value), "MLSHIP_API_KEY_HASHES")
        if not isinstance(value, str):
            return value
        hashes = parse_key_hashes(value, "MLSHIP_API_KEY_HASHES")
        if not hashes:
            # Set, but no key in it (",", "", spaces): an intent to protect that protects
            # nothing must not leave the API open.
            raise ValueError(
                "MLSHIP_API_KEY_HASHES is set but holds no SHA-256 digest. Set it to the "
                'comma-separated digests of your keys (`printf %s "$KEY" | sha256sum`), or '
                "unset it to run without API keys"
            )
        return hashes

    @property
    def keys_on_invocations(self) -> bool:
        """Whether /invocations asks for a key when keys are configured (see the field)."""
        return self.invocations_auth is not False

    @field_validator("default_invocations_accept", mode="before")
    @classmethod
    def _media_type(cls, value: object) -> object:
        """``Text/CSV; charset=utf-8`` -> ``text/csv``; a JSON Lines alias -> JSON Lines (as in
        ``Accept``)."""
        if not isinstance(value, str):
            return value
        media = value.split(";", 1)[0].strip().lower()
        return JSONLINES if media in JSONLINES_ALIASES else media

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_key_file(self) -> AppSettings:
        if self.api_keys_file is not None and not self.api_keys_file.is_file():
            raise ValueError(
                f"MLSHIP_API_KEYS_FILE={self.api_keys_file} does not exist or is not a file. "
                "Mount the file or unset the variable."
            )
        return self

    # --- Connections (mlship serve): kept together at the end of the class for easy merges ---
    max_connections: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Connections one worker holds at once. Beyond it a new connection closes "
        "the oldest one that carries no request (idle or half-sent), else gets a 503.",
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Longest request line plus headers, in bytes (431 above).",
    )
    max_header_count: int = Field(
        default=100, ge=1, le=10_000, description="Most headers one request may carry (431 above)."
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds a client has to send a whole request line and headers, counted "
        "from connecting or from the request's first byte (408 after, or a quiet close when "
        "nothing came).",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Seconds a client has to send a request's whole body once its headers "
        "arrived (408 after).",
    )
    keep_alive_timeout: int = Field(
        default=5,
        ge=1,
        le=300,
        description="Seconds an idle keep-alive connection stays open. After SIGTERM an idle "
        "connection's next request is still answered (with Connection: close) within it.",
    )

    @model_validator(mode="after")
    def _check_metrics_port(self) -> AppSettings:
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ValueError(
                f"MLSHIP_METRICS_PORT is the service's own port {self.port}: choose another "
                "port for /metrics, or unset it to serve /metrics on the main port."
            )
        return self

    @model_validator(mode="after")
    def _check_drain_fits(self) -> AppSettings:
        if self.keep_alive_timeout >= self.graceful_timeout:
            raise ValueError(
                f"MLSHIP_KEEP_ALIVE_TIMEOUT={self.keep_alive_timeout} must be shorter than "
                f"MLSHIP_GRACEFUL_TIMEOUT={self.graceful_timeout}: the drain after SIGTERM "
                "waits for idle connections' last request. Lower it or raise the drain time."
            )
        return self

    # -- Prediction capture (app/capture.py) ---------------------------------------------------
    capture_dir: Path | None = Field(
        default=None,
        description="Write every prediction request and answer here as JSON Lines in "
        "SageMaker Data Capture's format (<dir>/yyyy/mm/dd/hh/*.jsonl, complete files only), "
        "for `mlship report`. Unset: no capture.",
    )
    capture_queue_rows: int = Field(
        default=100_000,
        ge=1,
        description="Rows of captured predictions waiting to be written, per worker, beyond "
        "which new ones are dropped and counted (mlship_capture_dropped_total), never waited "
        "for.",
    )
    capture_rotate_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Longest a capture file stays open before it is completed (renamed from "
        ".part to .jsonl, fsynced): readers see traffic at most this late.",
    )
