"""Data files every side reads: the accepted formats (one list) and file checksums.

Training (``mlship train``, the SageMaker training channel) and batch scoring
(``mlship predict``) accept the same files: CSV (plain or gzip-compressed) and Parquet.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from core.errors import DataError

DataFormat = Literal["csv", "parquet"]
SUFFIXES: dict[DataFormat, tuple[str, ...]] = {
    "csv": (".csv", ".csv.gz"),
    "parquet": (".parquet", ".pq"),
}
DESCRIBED = "CSV (.csv, .csv.gz) and Parquet (.parquet, .pq)"


def data_format(name: str | Path) -> DataFormat | None:
    """The format of a data file by its name, or None when it is not one mlship reads."""
    lowered = str(name).lower()
    for fmt, suffixes in SUFFIXES.items():
        if lowered.endswith(suffixes):
            return fmt
    return None


def require_data_format(name: str | Path, fix: str) -> DataFormat:
    """:func:`data_format`, refusing any other file with a message that ends with ``fix``.

    Raises:
        DataError: naming the file, the formats mlship reads and ``fix``.
    """
    fmt = data_format(name)
    if fmt is None:
        suffix = "".join(Path(str(name)).suffixes[-2:]) or "files without an extension"
        raise DataError(f"Cannot read {name}: mlship reads {DESCRIBED} files, not {suffix}. {fix}")
    return fmt


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
