"""API keys: configured as SHA-256 digests, presented as ``X-API-Key`` or ``Authorization:
Bearer``, compared in constant time. 401 when no key is sent, 403 when it is not a known one.

Digests come from ``MLSHIP_API_KEY_HASHES``, ``MLSHIP_API_KEYS_FILE`` and an AWS Secrets
Manager secret (``MLSHIP_API_KEYS_SECRET``), read once at start. With keys configured every
prediction route requires one, ``/invocations`` included unless ``MLSHIP_INVOCATIONS_AUTH`` is
false. With none configured the API is open (and the start-up log says so); a setting that
looks like keys but yields none refuses to start.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.errors import Forbidden, NotReady, Unauthorized
from app.settings import AppSettings, parse_key_hashes
from core.errors import ConfigError


class KeyChecker:
    """Holds the accepted digests; :meth:`check` raises on a missing or wrong key."""

    def __init__(self, hashes: Iterable[str]) -> None:
        self._digests = tuple(bytes.fromhex(h) for h in dict.fromkeys(hashes))

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def check(self, presented: str | None) -> None:
        if not self._digests:
            return
        if not presented:
            raise Unauthorized(
                "An API key is required: send it in the X-API-Key header or as "
                "Authorization: Bearer <key>."
            )
        digest = hashlib.sha256(presented.encode()).digest()
        # Compare with every digest (no early exit), so timing reveals nothing either.
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        if not matched:
            raise Forbidden("The API key is not valid for this service.")


def load_key_hashes(settings: AppSettings) -> list[str]:
    """Every configured digest: environment, then file, then Secrets Manager.

    Raises:
        ConfigError: when the file or secret cannot be read or holds something else.
    """
    hashes = list(settings.api_key_hashes)
    if settings.api_keys_file is not None:
        try:
            text = settings.api_keys_file.read_text()
        except OSError as e:
            raise ConfigError(f"MLSHIP_API_KEYS_FILE: cannot read it ({e}).") from e
        hashes += _parse(text, f"MLSHIP_API_KEYS_FILE={settings.api_keys_file}")
    if settings.api_keys_secret:
        hashes += _parse(
            _read_secret(settings.api_keys_secret),
            f"MLSHIP_API_KEYS_SECRET={settings.api_keys_secret}",
        )
    return hashes


def _parse(text: str, source: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    stripped = "\n".join(lines).strip()
    value: Any = stripped
    if stripped.startswith(("[", "{")):
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError as e:
            raise ConfigError(f"{source}: not valid JSON ({e}).") from e
        if isinstance(value, dict):
            value = value.get("api_key_hashes")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f'{source}: expected a JSON list of digests or {{"api_key_hashes": [...]}}.'
            )
        value = ",".join(value)
    try:
        hashes = parse_key_hashes(value, source)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if not hashes:
        raise ConfigError(f"{source}: holds no key digests; add one or unset the variable.")
    return hashes


def _read_secret(secret_id: str) -> str:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    # Standard-mode retries, as many attempts as the AWS configuration says (AWS_MAX_ATTEMPTS
    # or max_attempts in the profile; 3 when unset, the AWS SDKs' default).
    client = boto3.client(
        "secretsmanager", config=Config(retries={"mode": "standard"}, connect_timeout=5)
    )
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except (BotoCoreError, ClientError) as e:
        raise ConfigError(
            f"MLSHIP_API_KEYS_SECRET={secret_id}: cannot read the secret ({e}). Check that it "
            "exists and that the service's role may call secretsmanager:GetSecretValue."
        ) from e
    text = response.get("SecretString")
    if not text:
        raise ConfigError(
            f"MLSHIP_API_KEYS_SECRET={secret_id}: the secret has no string value; store the "
            "digests as text."
        )
    return text


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey")
_bearer = HTTPBearer(auto_error=False, scheme_name="Bearer")


def _presented(api_key: str | None, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    if api_key:
        return api_key
    return bearer.credentials if bearer is not None else None


def _checker(request: Request) -> tuple[KeyChecker, AppSettings]:
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise NotReady("The model is not loaded yet; retry shortly.")
    return service.keys, service.settings


async def require_api_key(
    request: Request,
    api_key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """Dependency of every protected route."""
    keys, _ = _checker(request)
    keys.check(_presented(api_key, bearer))


async def require_api_key_on_invocations(
    request: Request,
    api_key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """``/invocations``: keys like every prediction route, unless ``MLSHIP_INVOCATIONS_AUTH``
    is false (where IAM guards it, as on SageMaker)."""
    keys, settings = _checker(request)
    if settings.keys_on_invocations:
        keys.check(_presented(api_key, bearer))


Protected = Depends(require_api_key)
