"""A real Prometheus server (Debian's ``prometheus``) on 127.0.0.1, and its query API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.factories import free_port


def prometheus_binary() -> str:
    """The Prometheus server binary; a skip outside CI, a failure in CI, when missing."""
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is missing in CI: `make system-tools` installs it (Debian).")
        pytest.skip("prometheus not installed; run `make system-tools`")
    return path


@contextmanager
def running_prometheus(
    target: str, work: Path, rules: Path | None = None, interval_s: int = 1
) -> Iterator[str]:
    """Run Prometheus scraping ``target`` (host:port) every ``interval_s``; yields its URL."""
    binary = prometheus_binary()
    config = work / "prometheus.yml"
    lines = [
        "global:",
        f"  scrape_interval: {interval_s}s",
        f"  evaluation_interval: {interval_s}s",
        "scrape_configs:",
        "  - job_name: mlship",
        "    static_configs:",
        f"      - targets: ['{target}']",
    ]
    if rules is not None:
        lines += ["rule_files:", f"  - {rules}"]
    config.write_text("\n".join(lines) + "\n")
    port = free_port()
    log = work / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def api(url: str, path: str, **params: str) -> Any:
    """GET a Prometheus HTTP API path; returns its ``data``."""
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}{path}?{query}", timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]


def query(url: str, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
    """An instant query: each series' labels (without ``__name__``) and value."""
    data = api(url, "/api/v1/query", query=expr)
    return {
        tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(
            r["value"][1]
        )
        for r in data["result"]
    }


def scalar(url: str, expr: str) -> float | None:
    """The value of a query that yields one series, or None when it yields none."""
    found = query(url, expr)
    assert len(found) <= 1, found
    return next(iter(found.values()), None)


def predictions_per_worker(metrics_dir: Path) -> dict[str, float]:
    """Rows each worker process predicted, from its own prometheus_client file."""
    found = {}
    for path in metrics_dir.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)]):  # type: ignore[no-untyped-call]
            if family.name == "mlship_predictions":
                found[path.stem] = sum(s.value for s in family.samples if s.name.endswith("_total"))
    return found
