"""``mlship publish``: put a bundle's ``model.tar.gz`` where the stack deploys it from.

The archive goes to ``s3://<bucket>/models/<version>/model.tar.gz``; the stack's
``mlship:modelDataKey`` names that key. Versions are immutable: publishing the same archive
again is a no-op, publishing a different archive under an existing version is refused.
Before uploading, the archive itself is extracted and verified against its manifest, so what
is published is exactly a loadable bundle.

With a baseline prefix (the stack's ``mlship:batchBaselinePrefix``, a stack output when
scheduled batch scoring is on), the bundle's data-quality baseline is copied from the verified
archive to ``<prefix>statistics.json`` and ``<prefix>constraints.json``, the keys the batch
pipeline's check reads (:mod:`core.baseline`). Unlike versions, those keys are overwritten:
they follow the bundle published last. The bundle may be an archive already in S3
(``s3://<bucket>/models/<version>/model.tar.gz``): a rollback publishes the previous release's
archive again, which uploads nothing and puts its baseline back at the prefix.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.baseline import BUNDLE_CONSTRAINTS, BUNDLE_STATISTICS, baseline_keys
from core.bundle import ARCHIVE_NAME, extract_archive, verify_bundle
from core.errors import MlshipError
from core.files import sha256_file
from core.manifest import Manifest
from core.s3 import S3Error, download, is_s3_uri, s3_client

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SHA256_METADATA = "sha256"


class PublishError(MlshipError):
    """The bundle cannot be published as asked."""


@dataclass(frozen=True)
class Published:
    """Where a bundle was published."""

    bucket: str
    key: str
    sha256: str
    uploaded: bool
    baseline: tuple[str, ...] = ()  # the baseline's keys, when it was copied too

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def model_key(version: str) -> str:
    """The artifact-bucket key of a version's archive (the stack's ``mlship:modelDataKey``)."""
    if not VERSION_RE.match(version):
        raise PublishError(
            f"Version {version!r} cannot be used in an S3 key: use letters, digits, '.', '_' "
            "and '-' (at most 128), starting with a letter or digit."
        )
    return f"models/{version}/{ARCHIVE_NAME}"


def _archive_of(bundle: Path) -> Path:
    archive = bundle / ARCHIVE_NAME if bundle.is_dir() else bundle
    if not archive.is_file():
        raise PublishError(
            f"No {ARCHIVE_NAME} at {archive}. Pass a bundle directory written by `mlship train` "
            "or the model.tar.gz itself."
        )
    return archive


def verified_manifest(archive: Path) -> Manifest:
    """Extract the archive into a scratch directory and verify it; returns its manifest."""
    return _verified(archive)[0]


def _verified(archive: Path) -> tuple[Manifest, dict[str, bytes]]:
    """The archive's manifest and its baseline files (by bundle name), read after every file
    was checked against the manifest."""
    scratch = Path(tempfile.mkdtemp(prefix="mlship-publish-"))
    try:
        bundle = extract_archive(archive, scratch)
        manifest = verify_bundle(bundle)
        baseline = {
            name: (bundle / name).read_bytes()
            for name in (BUNDLE_STATISTICS, BUNDLE_CONSTRAINTS)
            if name in manifest.files
        }
        return manifest, baseline
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _head(client: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    """The object's metadata, or None when there is no such object.

    Listing first: the deploy role may list ``models/*`` but, without bucket-wide
    s3:ListBucket, S3 answers a HEAD of a missing key with 403, not 404.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        if not any(o.get("Key") == key for o in listed.get("Contents", [])):
            return None
        return dict(client.head_object(Bucket=bucket, Key=key))
    except (BotoCoreError, ClientError) as e:
        response: Any = getattr(e, "response", {})
        code = str(response.get("Error", {}).get("Code", type(e).__name__))
        raise S3Error(
            f"Could not check s3://{bucket}/{key} ({code}). Check the bucket name "
            "(`pulumi stack output bucketName`) and your credentials (s3:ListBucket on models/, "
            "s3:GetObject on models/*)."
        ) from e


def publish_bundle(
    bundle: Path | str,
    bucket: str,
    version: str | None = None,
    client: S3Client | None = None,
    baseline_prefix: str | None = None,
) -> Published:
    """Upload a verified bundle archive under ``models/<version>/``, and its baseline.

    Args:
        bundle: Bundle directory (its ``model.tar.gz`` is published), the archive itself, or
            an archive's ``s3://`` URI (downloaded to a scratch directory, removed after).
        bucket: The stack's artifact bucket (``pulumi stack output bucketName``).
        version: Version in the key; default the manifest's version.
        client: S3 client (default: standard AWS configuration).
        baseline_prefix: Where the batch check reads its baseline (``pulumi stack output
            batchBaselinePrefix``); None: the baseline is not copied.

    Raises:
        PublishError: when the archive is missing, the version already holds another one, or
            a baseline prefix is given and the bundle has no baseline.
        BundleError: when the archive is not a complete, unmodified bundle.
        ConfigError: when the baseline prefix is not a key prefix.
    """
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(bundle, str) and is_s3_uri(bundle):
        client = client or s3_client()
        with tempfile.TemporaryDirectory(prefix="mlship-publish-") as scratch:
            archive = download(bundle, Path(scratch) / ARCHIVE_NAME, client)
            return publish_bundle(archive, bucket, version, client, baseline_prefix)
    archive = _archive_of(Path(bundle))
    manifest, baseline = _verified(archive)
    key = model_key(version or manifest.version)
    copies = _baseline_copies(baseline, baseline_prefix, manifest.version)
    digest = sha256_file(archive)
    client = client or s3_client()
    existing = _head(client, bucket, key)
    if existing is not None:
        recorded = existing.get("Metadata", {}).get(SHA256_METADATA)
        if recorded == digest:
            # The version is there already; its baseline may not be where the check reads it
            # (a release of an earlier version again), so it is copied all the same.
            keys = _put_baseline(client, bucket, copies, key)
            return Published(bucket=bucket, key=key, sha256=digest, uploaded=False, baseline=keys)
        raise PublishError(
            f"s3://{bucket}/{key} already holds a different archive (sha256 "
            f"{str(recorded)[:12]}…, this one {digest[:12]}…). Versions are immutable: "
            "publish under a new --version."
        )
    try:
        client.upload_file(
            str(archive),
            bucket,
            key,
            ExtraArgs={
                "Metadata": {SHA256_METADATA: digest, "mlship-version": manifest.version},
                "ContentType": "application/gzip",
            },
        )
    except (BotoCoreError, ClientError, S3UploadFailedError) as e:
        raise S3Error(
            f"Could not upload {archive} to s3://{bucket}/{key} ({e}). Check the bucket name "
            "and that your role may write models/* (s3:PutObject, kms:GenerateDataKey)."
        ) from e
    keys = _put_baseline(client, bucket, copies, key)
    return Published(bucket=bucket, key=key, sha256=digest, uploaded=True, baseline=keys)


def _baseline_copies(
    baseline: dict[str, bytes], prefix: str | None, version: str
) -> dict[str, bytes]:
    """The baseline files by the key they go to (empty without a prefix)."""
    if prefix is None:
        return {}
    keys = baseline_keys(prefix).by_bundle_file()
    missing = [name for name in keys if name not in baseline]
    if missing:
        raise PublishError(
            f"Bundle {version} has no {' or '.join(missing)}, so the batch check would have no "
            f"baseline at {prefix}. Retrain it with this mlship (training writes the "
            "baseline into the bundle), or publish without --baseline-prefix when the stack "
            "has no batchSchedule."
        )
    return {keys[name]: baseline[name] for name in keys}


def _put_baseline(
    client: S3Client, bucket: str, copies: dict[str, bytes], model_data_key: str
) -> tuple[str, ...]:
    """Write the baseline files; each records the archive it came from."""
    from botocore.exceptions import BotoCoreError, ClientError

    for key, body in copies.items():
        try:
            client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                Metadata={
                    SHA256_METADATA: hashlib.sha256(body).hexdigest(),
                    "mlship-model-key": model_data_key,
                },
            )
        except (BotoCoreError, ClientError) as e:
            raise S3Error(
                f"Could not write the baseline to s3://{bucket}/{key} ({e}). Check that your "
                "role may write that prefix (s3:PutObject, kms:GenerateDataKey): the stack's "
                "deploy role may write models/* only, so keep mlship:batchBaselinePrefix under "
                "models/."
            ) from e
    return tuple(copies)
