"""The media types of the service's request and answer bodies, and the byte order mark they may
start with: shared by the app that reads and writes them and the pipelines that read its
captured exchanges back (monitoring)."""

from __future__ import annotations

from typing import TypeVar

Text = TypeVar("Text", bytes, str)

JSON = "application/json"
CSV = "text/csv"
JSONLINES = "application/jsonlines"
# Other names clients give JSON Lines, read as it (in Content-Type and in Accept).
JSONLINES_ALIASES = ("application/jsonl", "application/x-jsonlines", "application/x-ndjson")
# NumPy's .npy file: the SageMaker SDK's NumpySerializer and NumpyDeserializer (the defaults of
# its SKLearnPredictor) send and ask for it (core/npy.py).
NPY = "application/x-npy"


BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark


def without_bom(body: Text) -> Text:
    """``body`` (bytes, or text as decoded) without a leading UTF-8 byte order mark.

    Windows tools start a text file with one (Excel's "CSV UTF-8", PowerShell 5's
    ``Out-File -Encoding utf8``), and a Batch Transform job sends it in the first mini-batch of
    each such file. It is not data: RFC 8259 (section 8.1) lets a JSON parser ignore it, and
    CSV readers skip it (pyarrow's does).
    """
    if isinstance(body, bytes):
        return body.removeprefix(BOM)
    return body.removeprefix("\ufeff")
