"""The Makefile's first run: which uv it uses, how it installs one, what `clean` keeps.

Each test runs the real Makefile with `make` in a scratch directory, with a PATH that holds only
the tools the recipes need plus fakes of `uv` and `python3` that log how they were called (the
fakes never install anything, so the tests need no network).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def _fake_uv(path: Path, log: Path) -> Path:
    return _script(path, f'echo "uv $*" >> {log}\n')


def _fake_python(path: Path, log: Path, has_uv_module: bool = False, venv_ok: bool = True) -> Path:
    """A python3 that logs its arguments; `-m venv DIR` makes DIR/bin/python, whose
    `-m pip install … uv` makes DIR/bin/uv (both fakes that log too)."""
    uv_check = "exit 0" if has_uv_module else "exit 1"
    venv = (
        f"""mkdir -p "$3/bin"
cat > "$3/bin/python" <<'EOS'
#!/bin/sh
echo "venv-python $*" >> {log}
for last; do :; done
if [ "$1 $2 $3" = "-m pip install" ] && [ "$last" = uv ]; then
  printf '#!/bin/sh\\necho "venv-uv $*" >> {log}\\n' > "$(dirname "$0")/uv"
  chmod 755 "$(dirname "$0")/uv"
fi
EOS
chmod 755 "$3/bin/python"
exit 0"""
        if venv_ok
        else 'echo "The virtual environment was not created: ensurepip is not available" >&2\n'
        "exit 1"
    )
    return _script(
        path,
        f"""echo "python $*" >> {log}
if [ "$1 $2 $3" = "-m uv --version" ]; then {uv_check}; fi
if [ "$1 $2" = "-m venv" ]; then
{venv}
fi
exit 0
""",
    )


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A working directory and a bin/ with only what the recipes run besides uv and python."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("mkdir", "cat", "chmod", "dirname", "printf", "rm", "grep", "awk"):
        found = shutil.which(tool)
        assert found is not None, tool
        (tools / tool).symlink_to(found)
    (tmp_path / "work").mkdir()
    return tmp_path


def _make(scratch: Path, *args: str, path: str, python: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": str(scratch), "LANG": os.environ.get("LANG", "C.UTF-8")}
    assert MAKE is not None
    return subprocess.run(
        [MAKE, "--no-print-directory", "-f", str(ROOT / "Makefile"), *args, f"PYTHON={python}"],
        cwd=scratch / "work",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_setup_uses_uv_from_path_and_never_pip(scratch: Path) -> None:
    log = scratch / "calls.log"
    fake_bin = scratch / "fake"
    uv = _fake_uv(fake_bin / "uv", log)
    python = _fake_python(scratch / "py" / "python3", log)
    path = f"{fake_bin}:{scratch / 'bin'}"

    dry = _make(scratch, "-n", "setup", path=path, python=python)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [f"{uv} sync --frozen --quiet"]

    done = _make(scratch, "setup", path=path, python=python)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["uv sync --frozen --quiet"], "python never called"
    assert not (scratch / "work" / ".tools").exists()


def test_setup_without_uv_installs_it_into_a_private_venv(scratch: Path) -> None:
    log = scratch / "calls.log"
    python = _fake_python(scratch / "py" / "python3", log)
    path = str(scratch / "bin")
    tools = scratch / "work" / ".tools"

    dry = _make(scratch, "-n", "setup", path=path, python=python)
    assert dry.returncode == 0, dry.stderr
    assert f"{python} -m venv {tools}" in dry.stdout
    assert f"{tools}/bin/python -m pip install --quiet --disable-pip-version-check uv" in dry.stdout
    assert dry.stdout.splitlines()[-1] == f"{tools}/bin/uv sync --frozen --quiet"
    log.unlink()

    first = _make(scratch, "setup", path=path, python=python)
    assert first.returncode == 0, first.stderr
    assert f"uv is not on PATH: installing it into {tools}" in first.stdout
    assert log.read_text().splitlines() == [
        "python -m uv --version",
        f"python -m venv {tools}",
        "venv-python -m pip install --quiet --disable-pip-version-check uv",
        "venv-uv sync --frozen --quiet",
    ]
    log.unlink()
    again = _make(scratch, "setup", path=path, python=python)
    assert again.returncode == 0, again.stderr
    assert log.read_text().splitlines() == [
        "python -m uv --version",
        "venv-uv sync --frozen --quiet",
    ], "installed once, then reused"


def test_setup_uses_the_interpreters_uv_module_when_present(scratch: Path) -> None:
    log = scratch / "calls.log"
    python = _fake_python(scratch / "py" / "python3", log, has_uv_module=True)
    done = _make(scratch, "setup", path=str(scratch / "bin"), python=python)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == [
        "python -m uv --version",
        "python -m uv sync --frozen --quiet",
    ]


def test_setup_without_venv_support_names_the_fix(scratch: Path) -> None:
    log = scratch / "calls.log"
    python = _fake_python(scratch / "py" / "python3", log, venv_ok=False)
    done = _make(scratch, "setup", path=str(scratch / "bin"), python=python)
    assert done.returncode != 0
    assert "apt-get install python3-venv" in done.stderr
    assert "docs.astral.sh/uv/getting-started/installation" in done.stderr


def test_clean_keeps_the_registry_and_clean_all_removes_it(scratch: Path) -> None:
    work = scratch / "work"
    for kept in (".mlship/mlflow.db", "models/latest/manifest.json", ".tools/bin/uv"):
        (work / kept).parent.mkdir(parents=True, exist_ok=True)
        (work / kept).write_text("x")
    python = _fake_python(scratch / "py" / "python3", scratch / "calls.log")
    uv = _fake_uv(scratch / "fake" / "uv", scratch / "calls.log")
    path = f"{uv.parent}:{scratch / 'bin'}"
    assert _make(scratch, "clean", path=path, python=python).returncode == 0
    assert (work / ".mlship" / "mlflow.db").is_file()
    assert (work / ".tools" / "bin" / "uv").is_file()
    assert not (work / "models").exists()
    assert _make(scratch, "clean-all", path=path, python=python).returncode == 0
    assert not (work / ".mlship").exists()
    assert not (work / ".tools").exists()


def test_help_lists_every_target_with_a_description(scratch: Path) -> None:
    python = _fake_python(scratch / "py" / "python3", scratch / "calls.log")
    out = _make(scratch, "help", path=str(scratch / "bin"), python=python)
    assert out.returncode == 0, out.stderr
    listed = {line.split()[0].removeprefix("\x1b[36m") for line in out.stdout.splitlines()}
    phony = {
        line.split(":", 1)[1].strip()
        for line in (ROOT / "Makefile").read_text().splitlines()
        if line.startswith(".PHONY:")
    }
    assert phony <= listed, phony - listed
