"""The service and batch scoring keep large freed blocks for reuse (core/memory.py): a 6 MB
request body is served from the heap instead of a fresh mmap, in a process of its own."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import pytest

_PROBE = """
import ctypes, json, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
applied = None
if sys.argv[1] == "tuned":
    from core.memory import keep_large_blocks
    applied = keep_large_blocks()
body = bytearray(6_000_000)  # a Batch Transform mini-batch
print(json.dumps({"applied": applied, "mmapped": libc.mallinfo2().hblkhd}))
"""


def _glibc_with_mallinfo2() -> bool:
    process = ctypes.CDLL(None)
    return hasattr(process, "gnu_get_libc_version") and hasattr(process, "mallinfo2")


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="glibc >= 2.33 only")
def test_large_blocks_come_from_the_heap_once_the_server_says_so() -> None:
    def probe(mode: str) -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, mode], check=True, capture_output=True, text=True
        )
        return dict(json.loads(out.stdout))

    default, tuned = probe("default"), probe("tuned")

    assert int(str(default["mmapped"])) >= 6_000_000  # glibc's default: its own mmap
    assert tuned["applied"] is True
    assert int(str(tuned["mmapped"])) < 6_000_000  # from the heap, reusable
