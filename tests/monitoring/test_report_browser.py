"""The report as people see it: headless Chromium loads the file offline, without a console
error, parses every chart, and paints them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from pipelines.monitoring.render import LIVE_COLOUR, REFERENCE_COLOUR
from tests.monitoring.test_report import DATA_BLOCK, FIXTURE, FIXTURE_LABELS, run_report

WIDTH, HEIGHT = 1280, 5000  # tall enough for the whole page of the iris report
# How Chromium logs a page's console output with --enable-logging=stderr --v=0.
CONSOLE_MESSAGE = re.compile(r":CONSOLE[:(]\d*\)?.*|Uncaught .*")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: `make system-tools` installs it (Debian).")
        pytest.skip("chromium not installed; run `make system-tools`")
    return path


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _pixels(image: Image.Image, colour: str) -> int:
    rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return sum(n for n, c in image.convert("RGB").getcolors(WIDTH * HEIGHT) or [] if c == rgb)


def test_report_renders_in_chromium_with_its_charts(
    chromium: str, iris_bundle: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(FIXTURE_LABELS)
    report = tmp_path / "report.html"
    data = run_report(str(FIXTURE), iris_bundle, report, str(labels))
    url = report.resolve().as_uri()

    dom = _chromium(chromium, tmp_path / "profile-dom", "--dump-dom", url)
    shot = tmp_path / "report.png"
    painted = _chromium(chromium, tmp_path / "profile-shot", f"--screenshot={shot}", url)

    assert dom.returncode == 0, dom.stderr[-2000:]
    assert painted.returncode == 0, painted.stderr[-2000:]
    for run in (dom, painted):  # console messages are logged as "CONSOLE(line)"
        assert not CONSOLE_MESSAGE.search(run.stderr), run.stderr
    # The parsed document holds every chart as an SVG element with its drawing, and the
    # figures block intact (an early "</script>" would have cut it).
    charts = re.findall(
        r'<figure class="chart" data-chart="[^"]+"><svg[^>]*>(.*?)</svg>', dom.stdout, re.S
    )
    assert len(charts) == 1 + 4 + 4  # PSI, a histogram per iris feature, quality, timeline,
    assert all("<path" in c or "<use" in c for c in charts)  # distribution, live quality
    block = DATA_BLOCK.search(dom.stdout)
    assert block is not None and json.loads(block.group(1)) == data
    # Painted: the histograms' training bars and the served bars are on screen.
    image = Image.open(shot)
    assert image.size == (WIDTH, HEIGHT)
    assert _pixels(image, REFERENCE_COLOUR) > 500
    assert _pixels(image, LIVE_COLOUR) > 500


def test_report_console_check_sees_a_page_error(chromium: str, tmp_path: Path) -> None:
    """The control: the console check above does catch an error when a page has one."""
    page = tmp_path / "broken.html"
    page.write_text('<html><body><script>console.error("boom"); missing();</script></body></html>')

    run = _chromium(chromium, tmp_path / "profile", "--dump-dom", page.resolve().as_uri())

    assert [m.group(0).split("] ")[-1][:60] for m in CONSOLE_MESSAGE.finditer(run.stderr)]
    assert "Uncaught ReferenceError: missing is not defined" in run.stderr
