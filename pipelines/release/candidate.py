"""What the registry decides: admit a trained bundle as the challenger, promote a champion.

A bundle trained elsewhere (a SageMaker training job's ``model.tar.gz`` in the staging area)
is compared with the real champion before it is registered: the registry's ``@champion`` when
the stack has a registry, otherwise the bundle the stack is serving (its manifest metrics, read
from its model key in S3). A bundle that passes is registered with alias ``challenger`` and
its lineage as tags (data version, commit, bundle version, the job's artifact). After prod's
post-deploy gate, :func:`promote_release` moves ``@champion`` to it and tags it with the stack,
the time and the commit: one code path for ``mlship promote`` and the workflows.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.bundle import ARCHIVE_NAME, extract_archive, verify_bundle
from core.errors import GateFailed
from core.s3 import S3Error, download, is_s3_uri

if TYPE_CHECKING:
    from core.manifest import Manifest
    from core.registry import RegistrySettings
    from pipelines.evaluate import Champion, GateResult

CHALLENGER = "challenger"
CHAMPION = "champion"


@dataclass(frozen=True)
class Candidate:
    """A trained bundle, unpacked and verified, with the archive it came in."""

    directory: Path
    archive: Path
    manifest: Manifest


def unpack(source: str, workdir: Path) -> Candidate:
    """Fetch (``s3://``) or copy a ``model.tar.gz``, extract and verify it under ``workdir``.

    The archive itself is kept in the bundle directory: what is registered and deployed is the
    exact archive training produced.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    bundle = workdir / "bundle"
    bundle.mkdir()
    archive = bundle / ARCHIVE_NAME
    if is_s3_uri(source):
        download(source, archive)
    else:
        shutil.copyfile(source, archive)
    extract_archive(archive, bundle)
    return Candidate(directory=bundle, archive=archive, manifest=verify_bundle(bundle))


def served_champion(model_uri: str) -> Champion | None:
    """The champion of a stack without a registry: the bundle it serves (None: nothing yet).

    Args:
        model_uri: ``s3://<bucket>/<mlship:modelDataKey>`` of the stack.
    """
    from pipelines.evaluate import Champion

    with tempfile.TemporaryDirectory(prefix="mlship-champion-") as tmp:
        try:
            local = download(model_uri, Path(tmp) / ARCHIVE_NAME)
        except S3Error as e:
            if "404" in str(e) or "NoSuchKey" in str(e) or "Not Found" in str(e):
                return None
            raise
        manifest = verify_bundle(extract_archive(local, Path(tmp) / "bundle"))
    return Champion(
        version=f"served {manifest.version}",
        metrics=dict(manifest.metrics),
        task=manifest.task,
        dataset_sha256=manifest.dataset_sha256,
    )


def compare(manifest: Manifest, champion: Champion | None) -> GateResult:
    """The champion part of the gate, with the bundle's own metric and tolerance.

    The thresholds and behavioural checks ran where the bundle was trained; what that run
    could not see (a network-isolated SageMaker job) is the champion.
    """
    from pipelines.evaluate import gate
    from pipelines.params import parse_params

    params = parse_params(dict(manifest.params), Path("params.yaml"))
    return gate(
        dict(manifest.metrics),
        {},
        ([], []),
        champion,
        params.champion_metric,
        params.gate.champion_tolerance,
        manifest.task,
        manifest.dataset_sha256,
    )


def lineage_tags(manifest: Manifest, source: str) -> dict[str, str]:
    """Run and version tags that say where a bundle came from."""
    return {
        "mlship.bundle_version": manifest.version,
        "mlship.dataset_sha256": manifest.dataset_sha256,
        "mlship.data_version": manifest.data_version or f"sha256:{manifest.dataset_sha256}",
        "mlship.git_commit": manifest.git_commit or "none",
        "mlship.training_artifact": source,
        "mlship.gate": "passed",
    }


@dataclass(frozen=True)
class Admitted:
    """A candidate that passed: its registered version (None without a registry)."""

    candidate: Candidate
    version: str | None
    result: GateResult


def admit(
    source: str,
    workdir: Path,
    *,
    settings: RegistrySettings | None,
    served_model_uri: str | None,
    say: Callable[[str], None] = print,
) -> Admitted:
    """Gate a trained bundle against the real champion and register it as the challenger.

    Args:
        source: ``s3://…/model.tar.gz`` (a training job's artifact) or a local archive.
        workdir: Where the bundle is unpacked (it stays there, for the deploy step).
        settings: The registry (None: the stack has none).
        served_model_uri: Without a registry, the stack's served bundle (its champion).
        say: Progress lines.

    Raises:
        GateFailed: worse than the champion by more than the tolerance (nothing registered).
    """
    from pipelines.registry import aliased, log_run, register

    candidate = unpack(source, workdir)
    manifest = candidate.manifest
    if settings is not None:
        champion = aliased(settings, CHAMPION)
        where = f"{settings.model_name}@{CHAMPION} in {settings.tracking_uri}"
    else:
        champion = served_champion(served_model_uri) if served_model_uri else None
        where = served_model_uri or "no registry and no served bundle"
    result = compare(manifest, champion)
    if not result.passed:
        raise GateFailed(
            f"Bundle {manifest.version} from {source} is not admitted: "
            f"{'; '.join(result.failures)} (champion: {where}). Nothing was registered or "
            "deployed; the champion keeps serving."
        )
    say(f"gate against the champion ({where}): " + "; ".join(result.passed_checks + result.notes))
    if settings is None:
        return Admitted(candidate, None, result)
    tags = lineage_tags(manifest, source)
    run_id = log_run(
        settings, dict(manifest.params), dict(manifest.metrics), tags, candidate.directory
    )
    version = register(settings, run_id, CHALLENGER, tags)
    say(f"registered {settings.model_name} version {version} as @{CHALLENGER} (run {run_id})")
    return Admitted(candidate, version, result)


def promote_release(
    settings: RegistrySettings,
    version: str,
    *,
    stack: str | None = None,
    commit: str | None = None,
    alias: str = CHAMPION,
    force: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[Champion | None, dict[str, str]]:
    """Move ``alias`` to ``version`` and tag the version with the stack, time and commit.

    Returns:
        The version ``alias`` pointed at before (None: none), and the tags set on the version.
    """
    from core.registry import mlflow_client
    from pipelines.registry import promote

    before = promote(settings, version, alias, force=force)
    tags: dict[str, str] = {}
    if stack is not None:
        tags[f"mlship.{alias}.{stack}.at"] = now().isoformat(timespec="seconds")
        if commit is not None:
            tags[f"mlship.{alias}.{stack}.commit"] = commit
    client = mlflow_client(settings)
    for key, value in tags.items():
        client.set_model_version_tag(settings.model_name, version, key, value)
    return before, tags
