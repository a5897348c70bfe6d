"""`make demo`: the whole story on one machine, no cloud account.

Each step prints what it does; a failing step stops the demo with its error.
"""

from __future__ import annotations

import sys

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


def _serve_demo() -> int:
    """Start `mlship serve` on the trained bundle, send three requests, stop it with SIGTERM."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import tempfile
    import time
    from pathlib import Path

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
    print(f"$ mlship {' '.join(argv)}   (server log: {log})", flush=True)
    env = {**os.environ, "MLSHIP_WORKERS": "1"}
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
        print(f"\n$ GET {url}/metrics  (a few lines)")
        _, metrics = _http(f"{url}/metrics")
        wanted = ("mlship_http_requests_total", "mlship_predictions_total", "mlship_model_info")
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
    return 0 if code == 0 else 1


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
    # Keep this step last: it shows where the model goes next.
    _step("3. Plan the dev stack offline (Pulumi mock runtime: no cloud account, no Pulumi CLI)")
    print("$ mlship plan dev", flush=True)
    return mlship(["plan", "dev"])


if __name__ == "__main__":
    sys.exit(main())
