"""`make demo`: the whole story on one machine, no cloud account.

Each step prints what it does; a failing step stops the demo with its error.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from cli.main import main as mlship


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def _promote_challenger() -> int:
    """Make the version just registered the champion, so models:/NAME@champion resolves."""
    from pathlib import Path

    from core.registry import RegistrySettings
    from pipelines.params import load_params
    from pipelines.registry import aliased

    params = load_params(Path("params.yaml"))
    settings = RegistrySettings.from_env(params.registered_name, params.registry.experiment)
    challenger = aliased(settings, alias="challenger")
    if challenger is None:
        return 0
    print(f"\n$ mlship promote {challenger.version}", flush=True)
    code = mlship(["promote", challenger.version])
    if code == 0:
        code = mlship(["models"])
    return code


def _http(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 (127.0.0.1 only)
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


# Where the demo keeps its captured traffic, the labels of that traffic and the report.
DEMO_DIR = Path(".mlship") / "demo"
CAPTURE_DIR = DEMO_DIR / "capture"
LABELS_FILE = DEMO_DIR / "labels.csv"
REPORT_FILE = DEMO_DIR / "report.html"


def _serve_demo() -> int:
    """Start `mlship serve` on the trained bundle with capture on, send requests, stop it with
    SIGTERM (the capture files are completed at shutdown)."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import tempfile
    import time

    from core.bundle import read_manifest
    from pipelines.params import load_params

    params = load_params(Path("params.yaml"))
    bundle = params.resolve(params.output.dir)
    golden = json.loads((bundle / "golden.json").read_text())
    names = read_manifest(bundle).feature_names
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.gettempdir()) / f"mlship-demo-serve-{port}.log"
    argv = ["serve", "--model", str(bundle), "--host", "127.0.0.1", "--port", str(port)]
    shutil.rmtree(CAPTURE_DIR, ignore_errors=True)
    print(f"$ MLSHIP_CAPTURE_DIR={CAPTURE_DIR} mlship {' '.join(argv)}   (server log: {log})")
    env = {**os.environ, "MLSHIP_WORKERS": "1", "MLSHIP_CAPTURE_DIR": str(CAPTURE_DIR)}
    with log.open("wb") as out:
        server = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
            [sys.executable, "-m", "cli", *argv], stdout=out, stderr=out, env=env
        )
    try:
        deadline = time.monotonic() + 90
        while _ping(url) != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                print(f"the service did not start:\n{log.read_text()[-2000:]}", file=sys.stderr)
                return 1
            time.sleep(0.1)
        rows = golden["inputs"][:2]
        body = json.dumps({"features": rows}).encode()
        print(f"\n$ POST {url}/v1/predict  (JSON, 2 held-out rows)")
        print(*_http(f"{url}/v1/predict", body, {"Content-Type": "application/json"}))
        csv = "\n".join(",".join(repr(v) for v in row) for row in rows).encode()
        print(f"\n$ POST {url}/invocations  (text/csv in and out, SageMaker's contract)")
        status, text = _http(
            f"{url}/invocations", csv, {"Content-Type": "text/csv", "Accept": "text/csv"}
        )
        print(status, text.strip())
        bad = json.dumps({"features": rows[0][:3]}).encode()
        print(f"\n$ POST {url}/v1/predict  (invalid: 3 values instead of {len(names)})")
        print(*_http(f"{url}/v1/predict", bad, {"Content-Type": "application/json"}))
        sent = _send_traffic(url, names, params)
        print(f"\n$ GET {url}/metrics  (a few lines)")
        _, metrics = _http(f"{url}/metrics")
        wanted = (
            "mlship_http_requests_total",
            "mlship_predictions_total",
            "mlship_model_info",
            "mlship_capture_records_total",
            'mlship_feature_drift_psi{feature="mean_radius"}',
        )
        for line in metrics.splitlines():
            if line.startswith(wanted):
                print(line)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            code = server.wait()
    print(f"\nservice stopped (SIGTERM, exit code {code})")
    if code == 0:
        files = sorted(CAPTURE_DIR.rglob("*.jsonl"))
        lines = sum(len(f.read_text().splitlines()) for f in files)
        print(f"captured {lines} predictions in {len(files)} file(s) under {CAPTURE_DIR}")
        if lines < sent:
            print(f"expected at least {sent} captured predictions", file=sys.stderr)
            return 1
    return 0 if code == 0 else 1


def _send_traffic(url: str, names: list[str], params: Any) -> int:
    """Send 300 rows of the training data in requests of 1 to 5 rows over about 5 seconds,
    the last 150 drifted (sizes -- radius, perimeter, area -- read 40 % larger, as from a
    miscalibrated scanner), each with its own X-Request-Id; write their true labels to
    LABELS_FILE as they would arrive later. Returns the requests sent."""
    import json
    import time

    import numpy as np

    from pipelines.data import read_table

    frame = read_table(params.resolve(params.data.path)).frame
    rng = np.random.default_rng(7)
    picked = frame.iloc[rng.choice(len(frame), size=300, replace=False)]
    X = picked[names].to_numpy(dtype=np.float64)
    sizes = [j for j, n in enumerate(names) if any(w in n for w in ("radius", "perimeter", "area"))]
    X[150:, sizes] *= 1.4
    y = picked[params.data.target].tolist()
    print(
        f"\n$ POST {url}/v1/predict x N  (300 rows in requests of 1 to 5 rows over ~5 s, the "
        "last 150 drifted: sizes read 40 % larger; X-Request-Id demo-<n>)",
        flush=True,
    )
    label_lines = ["inference_id,label,row"]
    start, requests = 0, 0
    while start < len(X):
        size = int(rng.integers(1, 6))
        rows = X[start : start + size]
        request_id = f"demo-{requests}"
        status, text = _http(
            f"{url}/v1/predict",
            json.dumps({"instances": rows.tolist()}).encode(),
            {"Content-Type": "application/json", "X-Request-Id": request_id},
        )
        if status != 200:
            raise RuntimeError(f"demo traffic: {status} {text[:200]}")
        label_lines += [f"{request_id},{y[start + r]},{r}" for r in range(rows.shape[0])]
        start += size
        requests += 1
        time.sleep(0.05)  # traffic over a few seconds: the report's timeline shows it
    LABELS_FILE.parent.mkdir(parents=True, exist_ok=True)
    LABELS_FILE.write_text("\n".join(label_lines) + "\n")
    print(
        f"{requests} requests answered 200; their labels, as they would arrive later: {LABELS_FILE}"
    )
    return requests


def _report(bundle: Path) -> int:
    argv = [
        "report",
        "--capture",
        str(CAPTURE_DIR),
        "--model",
        str(bundle),
        "--labels",
        str(LABELS_FILE),
        "--out",
        str(REPORT_FILE),
    ]
    print(f"$ mlship {' '.join(argv)}", flush=True)
    code = mlship(argv)
    if code == 0:
        print(f"open it in a browser: file://{REPORT_FILE.resolve()}")
    return code


def _ping(url: str) -> int:
    try:
        return _http(f"{url}/ping")[0]
    except OSError:
        return 0


def main() -> int:
    _step("1. Train, evaluate, gate, bundle and register the default model")
    code = mlship(["train"])
    if code != 0:
        return code
    code = _promote_challenger()
    if code != 0:
        return code
    _step("2. Serve the bundle on 127.0.0.1, predict in JSON and CSV, show an error and metrics")
    code = _serve_demo()
    if code != 0:
        return code
    _step("3. Monitoring report from the captured traffic: drift, data quality, live accuracy")
    from pipelines.params import load_params

    params = load_params(Path("params.yaml"))
    code = _report(params.resolve(params.output.dir))
    if code != 0:
        return code
    # Keep this step last: it shows where the model goes next.
    _step("4. Plan the dev stack offline (Pulumi mock runtime: no cloud account, no Pulumi CLI)")
    print("$ mlship plan dev", flush=True)
    return mlship(["plan", "dev"])


if __name__ == "__main__":
    sys.exit(main())
