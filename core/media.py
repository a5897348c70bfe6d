"""The media types of the service's request and answer bodies, shared by the app that reads and
writes them and the pipelines that read its captured exchanges back (monitoring)."""

from __future__ import annotations

JSON = "application/json"
CSV = "text/csv"
JSONLINES = "application/jsonlines"
# Other names clients give JSON Lines, read as it (in Content-Type and in Accept).
JSONLINES_ALIASES = ("application/jsonl", "application/x-jsonlines", "application/x-ndjson")
