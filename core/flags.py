"""The rollout policy: a small declarative flags document, and where it is read from.

The service routes by it (``app/routing.py``), the stack compiles its ``rollout`` settings into
it (``infra/``) and the release gate reads its thresholds (``pipelines/release``): one contract,
so it lives in ``core``.

The document (JSON, a file or an ``s3://`` object named by ``MLSHIP_FLAGS_URI``)::

    {"kill_switch": false,
     "routing_key": {"header": "X-User-ID"},
     "flags": {"new_model": {"allow": ["alice"], "deny": ["bob"], "percent": 10}},
     "shadow": {"percent": 25},
     "thresholds": {"min_agreement": 0.95, "max_latency_delta_ms": 20, "max_error_rate": 0.01}}

- ``kill_switch``: true sends every request to the champion, at once.
- ``routing_key``: a header, or ``{"field": name}``: that feature's value in the first row.
- ``flags.new_model``: the challenger's flag (``feature_flag.is_enabled('new_model', user_id)``):
  ``allow`` keys always get the challenger, ``deny`` keys never (deny wins), and ``percent`` of
  the other keys do, by a sticky hash of the key.
- ``shadow.percent``: the share of champion-answered requests the challenger also scores, off
  the response path, to compare the two.
- ``thresholds``: what the post-deploy gate requires of the comparison before promotion.

A typed pydantic document rather than the OpenFeature SDK: the SDK's evaluation API needs a
provider, and the offline ones (in-memory, flagd's file mode) bring neither sticky weighted
splits on our routing key nor a way to refuse a bad document and keep the last good one, which
is the part that matters here. :class:`FeatureFlags.is_enabled` keeps OpenFeature's call shape.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import ConfigError, MlshipError
from core.s3 import is_s3_uri, parse_s3_uri, s3_client

CHALLENGER_FLAG = "new_model"


class FlagsUnreachable(MlshipError):
    """The flags document could not be read (missing file, S3 error): not a bad document."""


# Buckets of the sticky hash: percentages with two decimals.
BUCKETS = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RoutingKey(_Strict):
    """Where a request's routing key comes from: one header, or one feature of the first row."""

    header: str | None = None
    field: str | None = None

    @model_validator(mode="after")
    def _one(self) -> RoutingKey:
        if (self.header is None) == (self.field is None):
            raise ValueError("routing_key: give exactly one of header or field")
        return self


class Flag(_Strict):
    """One flag: on for allowed keys, off for denied ones, on for ``percent`` of the rest."""

    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    percent: float = Field(default=0.0, ge=0, le=100)

    @model_validator(mode="after")
    def _disjoint(self) -> Flag:
        both = sorted(self.allow & self.deny)
        if both:
            raise ValueError(f"keys both allowed and denied: {', '.join(both[:5])}")
        return self


class Shadow(_Strict):
    percent: float = Field(default=0.0, ge=0, le=100)


class Thresholds(_Strict):
    """What the post-deploy gate requires of the challenger before it is promoted."""

    min_agreement: float | None = Field(default=None, ge=0, le=1)
    max_abs_difference: float | None = Field(default=None, ge=0)
    max_latency_delta_ms: float | None = None
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    min_compared_rows: int = Field(default=100, ge=1)


class FeatureFlags(_Strict):
    """The whole document; every field has a safe default (champion only)."""

    kill_switch: bool = False
    routing_key: RoutingKey = RoutingKey(header="X-User-ID")
    flags: dict[str, Flag] = Field(default_factory=dict)
    shadow: Shadow = Shadow()
    thresholds: Thresholds = Thresholds()

    def is_enabled(self, name: str, key: str | None) -> bool:
        """Whether flag ``name`` is on for ``key`` (sticky: the same key, the same answer).

        Off for every key under the kill switch, for an unknown flag, and for a request
        without a key (unless the flag is at 100 %).
        """
        flag = self.flags.get(name)
        if flag is None or self.kill_switch:
            return False
        if key is None:
            return flag.percent >= 100
        if key in flag.deny:
            return False
        if key in flag.allow:
            return True
        return bucket(name, key) < flag.percent * (BUCKETS // 100)

    @property
    def challenger_on(self) -> bool:
        """Whether any request can reach the challenger (routed or shadowed)."""
        if self.kill_switch:
            return False
        flag = self.flags.get(CHALLENGER_FLAG)
        routed = flag is not None and (flag.percent > 0 or bool(flag.allow))
        return routed or self.shadow.percent > 0


def bucket(salt: str, key: str) -> int:
    """The key's sticky bucket in [0, BUCKETS): a hash, the same in every process and release."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def parse_flags(raw: bytes, source: str, features: list[str] | None = None) -> FeatureFlags:
    """Parse and check a flags document (JSON).

    Args:
        features: The model's feature names: a ``routing_key.field`` must be one of them.

    Raises:
        ConfigError: naming the source and the first problem.
    """
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"{source}: not a JSON document ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the document must be a mapping, got {type(data).__name__}")
    try:
        flags = FeatureFlags.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "document"
        raise ConfigError(f"{source}: {loc}: {err['msg']}") from e
    field = flags.routing_key.field
    if field is not None and features is not None and field not in features:
        raise ConfigError(
            f"{source}: routing_key.field {field!r} is not a feature of the model; use one of "
            f"its features or a header"
        )
    return flags


def read_flags_source(uri: str) -> bytes:
    """The raw document at ``uri`` (a path or ``s3://bucket/key``).

    Raises:
        FlagsUnreachable: when the source cannot be read (missing, unreachable).
    """
    if is_s3_uri(uri):
        bucket_name, key = parse_s3_uri(uri)
        try:
            body = s3_client(max_attempts=2).get_object(Bucket=bucket_name, Key=key)["Body"]
            data: bytes = body.read()
        except (BotoCoreError, ClientError) as e:
            raise FlagsUnreachable(f"cannot read {uri}: {e}") from e
        return data
    try:
        return Path(uri).read_bytes()
    except OSError as e:
        raise FlagsUnreachable(f"cannot read {uri}: {e.strerror or e}") from e


def digest(flags: FeatureFlags) -> str:
    """A short fingerprint of a policy, for logs and the policy-info metric."""
    text = json.dumps(flags.model_dump(mode="json"), sort_keys=True, default=sorted)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
