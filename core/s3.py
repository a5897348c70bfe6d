"""``s3://`` URIs: parse, download and upload with bounded retries.

Used by training (data), the serving app (model bundles), batch scoring and publishing, so it
only needs boto3 (part of the serving runtime). Clients take the standard AWS configuration
(``AWS_ENDPOINT_URL`` included), so tests point them at a local moto server.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import MlshipError

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client


class S3Error(MlshipError):
    """An S3 object could not be read or written."""


def is_s3_uri(uri: str | os.PathLike[str]) -> bool:
    return str(uri).startswith("s3://")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key."""
    if not is_s3_uri(uri):
        raise S3Error(f"{uri!r} is not an s3:// URI; write it as s3://bucket/key.")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise S3Error(f"{uri!r} needs both a bucket and a key: s3://bucket/path/to/object.")
    return bucket, key


def s3_client(max_attempts: int = 5) -> S3Client:
    """An S3 client with standard-mode retries (exponential back-off, bounded attempts)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
    )
    client: S3Client = boto3.client("s3", config=config)
    return client


def _describe(e: Exception) -> str:
    response: Any = getattr(e, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return str(e)


def object_version(uri: str, client: S3Client | None = None) -> str | None:
    """The current version id of an object in a versioned bucket (None when the bucket has no
    versioning: S3 then reports the version ``null``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3_uri(uri)
    client = client or s3_client()
    try:
        version = client.head_object(Bucket=bucket, Key=key).get("VersionId")
    except (BotoCoreError, ClientError) as e:
        raise S3Error(
            f"Could not download {uri} ({_describe(e)}). Check that the object exists and that "
            "your AWS credentials may read it (s3:GetObject)."
        ) from e
    return None if version in (None, "null") else str(version)


def download(
    uri: str, dest: Path, client: S3Client | None = None, version_id: str | None = None
) -> Path:
    """Download one object (``version_id``: that version of it) to ``dest`` (written to a
    temporary name, then renamed)."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3_uri(uri)
    client = client or s3_client()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    extra = {"VersionId": version_id} if version_id is not None else None
    try:
        client.download_file(bucket, key, tmp_name, ExtraArgs=extra)
        os.replace(tmp_name, dest)
    except (BotoCoreError, ClientError) as e:
        Path(tmp_name).unlink(missing_ok=True)
        raise S3Error(
            f"Could not download {uri} ({_describe(e)}). Check that the object exists and that "
            "your AWS credentials may read it (s3:GetObject, and kms:Decrypt for SSE-KMS)."
        ) from e
    return dest


def upload(path: Path, uri: str, client: S3Client | None = None) -> str:
    """Upload one file to ``uri``; returns the URI."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3_uri(uri)
    client = client or s3_client()
    try:
        client.upload_file(str(path), bucket, key)
    except (BotoCoreError, ClientError, S3UploadFailedError) as e:
        raise S3Error(
            f"Could not upload {path} to {uri} ({_describe(e)}). Check that the bucket exists "
            "and that your AWS credentials may write it (s3:PutObject, kms:GenerateDataKey)."
        ) from e
    return uri
