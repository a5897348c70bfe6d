"""The bundle contract: round trip, checksums, archive layout."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest

from core.bundle import ARCHIVE_NAME, BundleError, load_bundle, write_bundle
from core.files import sha256_file
from core.manifest import ManifestDraft
from core.model import load_model


def test_bundle_round_trip_predictions_equal(logistic_bundle: Path) -> None:
    bundle = load_bundle(logistic_bundle)
    X = np.asarray(bundle.golden.inputs, dtype=np.float64)
    assert bundle.model.predict(X).tolist() == bundle.golden.predictions
    model = load_model(logistic_bundle)
    assert model.predict(X).labels.tolist() == bundle.golden.predictions


def test_bundle_archive_has_files_at_root(logistic_bundle: Path) -> None:
    with tarfile.open(logistic_bundle / ARCHIVE_NAME) as tar:
        names = sorted(tar.getnames())
    assert names == ["golden.json", "manifest.json", "model.skops"]
    assert load_bundle(logistic_bundle / ARCHIVE_NAME).manifest.version == "test-logistic-0"


def test_an_archive_is_extracted_for_as_long_as_its_bundle_lives(
    logistic_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    bundle = load_bundle(logistic_bundle / ARCHIVE_NAME)
    extracted = bundle.path
    assert extracted.parent == temp and (extracted / "model.skops").is_file()
    del bundle
    gc.collect()
    assert not extracted.exists()

    # a bundle that fails its checks leaves no extracted copy behind either
    copy = shutil.copytree(logistic_bundle, tmp_path / "b")
    with tarfile.open(copy / ARCHIVE_NAME, "w:gz") as tar:
        for name in ("manifest.json", "golden.json"):
            tar.add(copy / name, arcname=name)
    with pytest.raises(BundleError, match=r"model\.skops is listed in the manifest but missing"):
        load_bundle(copy / ARCHIVE_NAME)
    assert list(temp.iterdir()) == []


def test_bundle_tampered_model_refused(logistic_bundle: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(logistic_bundle, tmp_path / "b")
    with (copy / "model.skops").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match=r"model\.skops does not match its checksum"):
        load_bundle(copy)


def test_bundle_missing_file_refused(logistic_bundle: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(logistic_bundle, tmp_path / "b")
    (copy / "golden.json").unlink()
    with pytest.raises(BundleError, match=r"golden\.json is listed in the manifest but missing"):
        load_bundle(copy)


def test_bundle_not_a_bundle_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"manifest\.json is missing"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="No model bundle at"):
        load_bundle(tmp_path / "nope")


def _rewritten(bundle: Path, out: Path, extra: dict[str, Path]) -> Path:
    """The same model, manifest and golden rows written again with ``extra`` files."""
    loaded = load_bundle(bundle)
    draft = ManifestDraft(**loaded.manifest.model_dump(exclude={"files"}))
    return write_bundle(out, loaded.model, draft, loaded.golden, extra)


def test_bundle_files_in_a_subdirectory_are_listed_archived_and_verified(
    logistic_bundle: Path, tmp_path: Path
) -> None:
    src = tmp_path / "statistics.json"
    src.write_text('{"version": 0.0}')
    out = _rewritten(logistic_bundle, tmp_path / "b", {"baseline/statistics.json": src})

    manifest = load_bundle(out).manifest
    assert manifest.files["baseline/statistics.json"] == sha256_file(src)
    with tarfile.open(out / ARCHIVE_NAME) as tar:
        assert "baseline/statistics.json" in tar.getnames()
    assert load_bundle(out / ARCHIVE_NAME).manifest.files == manifest.files
    (out / "baseline" / "statistics.json").write_text("{}")
    with pytest.raises(BundleError, match=r"baseline/statistics\.json does not match"):
        load_bundle(out)


@pytest.mark.parametrize(
    "name",
    ["../outside.json", "/abs.json", "a//b.json", "./a.json", "a\\b.json", "", "model.skops"],
)
def test_bundle_extra_file_must_be_a_new_path_inside_it(
    logistic_bundle: Path, tmp_path: Path, name: str
) -> None:
    src = tmp_path / "x.json"
    src.write_text("{}")
    with pytest.raises(BundleError, match="give a relative path inside it"):
        _rewritten(logistic_bundle, tmp_path / "b", {name: src})
    assert not (tmp_path / "outside.json").exists()


def test_bundle_manifest_listing_a_path_outside_it_refused(
    logistic_bundle: Path, tmp_path: Path
) -> None:
    copy = shutil.copytree(logistic_bundle, tmp_path / "b")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["../golden.json"] = manifest["files"]["golden.json"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    shutil.copyfile(copy / "golden.json", tmp_path / "golden.json")
    with pytest.raises(BundleError, match=r"lists '\.\./golden\.json', which is not a path"):
        load_bundle(copy)


def _strict_umask_bundle(logistic_bundle: Path, out: Path) -> Path:
    """The bundle rewritten (with a file in a subdirectory) under umask 077, as on a hardened
    machine: every file and directory it creates is its owner's only."""
    src = out.parent / "statistics.json"
    src.write_text('{"version": 0.0}')
    previous = os.umask(0o077)
    try:
        return _rewritten(logistic_bundle, out, {"baseline/statistics.json": src})
    finally:
        os.umask(previous)


def test_archive_members_are_anyones_to_read_whatever_wrote_them(
    logistic_bundle: Path, tmp_path: Path
) -> None:
    """SageMaker extracts model.tar.gz into /opt/ml/model itself ("SageMaker AI expects all
    containers to run with root users", Custom Inference Code with Hosting Services); tar run
    by root keeps the modes and owners an archive holds, and the mlship images run as uid
    10001: a member stored 0600 or 0640 by the machine that trained would be unreadable
    there."""
    out = _strict_umask_bundle(logistic_bundle, tmp_path / "b")
    assert (out / "manifest.json").stat().st_mode & 0o777 == 0o600  # the umask did apply
    with tarfile.open(out / ARCHIVE_NAME) as tar:
        members = tar.getmembers()
    assert {m.name for m in members} >= {"manifest.json", "baseline", "baseline/statistics.json"}
    for m in members:
        assert (m.mode, m.uid, m.gid, m.uname, m.gname) == (
            0o755 if m.isdir() else 0o644,
            0,
            0,
            "",
            "",
        ), m.name


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="extracting as root needs root"
)
def test_a_root_extracted_archive_is_readable_by_the_images_user(logistic_bundle: Path) -> None:
    """As SageMaker's extraction would go with root's tar: GNU tar run by root extracts the
    archive (keeping modes and owners), then the images' user (uid 10001) reads every file
    the manifest lists and gets the bytes it names."""
    work = Path(tempfile.mkdtemp(prefix="mlship-root-extract-", dir="/tmp"))
    try:
        work.chmod(0o755)  # the model directory's parent, as /opt/ml is
        out = _strict_umask_bundle(logistic_bundle, work / "b")
        model_dir = work / "model"
        model_dir.mkdir(mode=0o755)
        subprocess.run(["tar", "-xzf", str(out / ARCHIVE_NAME), "-C", str(model_dir)], check=True)
        listed = load_bundle(out, estimator=False).manifest.files
        names = ["manifest.json", *sorted(listed)]
        done = subprocess.run(
            ["sha256sum", *names],
            cwd=model_dir,
            capture_output=True,
            text=True,
            user=10001,
            group=10001,
            extra_groups=[],
            check=False,
        )
        assert done.returncode == 0, done.stderr[-800:]
        sums = {}
        for line in done.stdout.splitlines():  # "<sha256>  <name>"
            digest, name = line.split("  ", 1)
            sums[name] = digest
        assert {name: sums[name] for name in listed} == listed
    finally:
        shutil.rmtree(work, ignore_errors=True)
