"""``MLSHIP_METRICS_PORT``: ``/metrics`` answers only on that port, with every worker's totals,
and not on the service's port, which the EKS stack's load balancer exposes to clients."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipelines.release.evidence import fetch_metrics
from pipelines.release.targets import EndpointUnreachable
from tests.contract.conftest import start_server, stop_server
from tests.factories import free_port


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _predicted(exposition: str) -> float:
    """mlship_predictions_total summed over its labels."""
    values = re.findall(r"^mlship_predictions_total\{[^}]*\} (\S+)$", exposition, re.MULTILINE)
    return sum(float(v) for v in values)


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_answer_only_on_the_metrics_port(
    logistic_bundle: Path, tmp_path: Path, workers: int
) -> None:
    metrics_port = free_port()
    row = json.loads((logistic_bundle / "golden.json").read_text())["inputs"][0]
    srv = start_server(
        logistic_bundle,
        tmp_path / "server.log",
        "--workers",
        str(workers),
        MLSHIP_METRICS_PORT=str(metrics_port),
    )
    try:
        for _ in range(12):  # new connections: with 2 workers both get some
            request = urllib.request.Request(
                f"{srv.url}/v1/predict",
                data=json.dumps({"features": row}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as r:
                assert r.status == 200
        public = _get(f"{srv.url}/metrics")
        internal = _get(f"http://127.0.0.1:{metrics_port}/metrics")
        ping = _get(f"{srv.url}/ping")
        # the promotion gate reads /metrics: pointed at the service's port, it names the fix
        with pytest.raises(EndpointUnreachable, match="give --metrics-url"):
            fetch_metrics(srv.url, 10)
        assert _predicted(fetch_metrics(f"http://127.0.0.1:{metrics_port}", 10)) == 12
    finally:
        stop_server(srv)

    assert public[0] == 404, public
    assert internal[0] == 200, srv.logs()[-3000:]
    assert _predicted(internal[1]) == 12  # every worker's predictions
    assert ping[0] == 200
    assert srv.proc.returncode == 0, srv.logs()[-3000:]
