"""s3:// helpers against moto's server."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.s3 import S3Error, download, parse_s3_uri, s3_client, upload


def test_s3_upload_download_round_trip(aws: str, tmp_path: Path) -> None:
    s3_client().create_bucket(Bucket="mlship-test")
    src = tmp_path / "a.txt"
    src.write_text("hello")
    upload(src, "s3://mlship-test/x/a.txt")
    assert download("s3://mlship-test/x/a.txt", tmp_path / "out" / "a.txt").read_text() == "hello"


def test_s3_missing_object_names_uri_and_leaves_nothing(aws: str, tmp_path: Path) -> None:
    s3_client().create_bucket(Bucket="mlship-test")
    with pytest.raises(S3Error, match=r"Could not download s3://mlship-test/missing"):
        download("s3://mlship-test/missing", tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("uri", ["b/key", "s3://", "s3://bucket", "s3://bucket/"])
def test_s3_parse_rejects_malformed(uri: str) -> None:
    with pytest.raises(S3Error):
        parse_s3_uri(uri)


def test_s3_upload_to_missing_bucket_names_the_fix(aws: str, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello")
    with pytest.raises(S3Error, match=r"Could not upload .* to s3://no-such-bucket/a\.txt"):
        upload(src, "s3://no-such-bucket/a.txt")
