"""``cnnlab report``: the static page's content, and the page in headless Chromium (loads
without console errors, the zoo table sorts on a header click, the screenshot is not blank).

Chromium is Debian's ``chromium`` package: installed here when missing; the browser tests
are skipped, with the reason, only if that install fails."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from cnnlab.ablate import get_ablation, run_ablation, write_results
from cnnlab.cli import main
from cnnlab.report import write_report

PATTERN = "simpnet*"  # three small models, each with a paper accuracy, not in size order


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    res = root / "results"
    r = run_ablation(get_ablation("gap_fc"), seeds=2, iters=1, val_split=40, train_images=32,
                     batch_size=16, latency_runs=2)
    write_results(r, res)
    return write_report(root / "site", PATTERN, res, "simpnet")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True,
                       timeout=300, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True,
                       capture_output=True, timeout=900, env=env)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"headless Chromium is not installed and apt-get could not install it: {e}")
    path = shutil.which("chromium")
    if not path:
        pytest.skip("apt-get ran but no chromium binary appeared")
    return path


def _run_chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--no-first-run", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0",
           f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_page_holds_the_zoo_the_plots_and_the_ablation(page):
    text = page.read_text()
    from cnnlab.models import list_models

    for name in list_models(PATTERN):
        assert f"<td>{name}</td>" in text
    assert text.count("<circle") >= 2  # the scatter: models with a paper top-1
    assert "Per-layer mult-adds: simpnet" in text and "<rect x=" in text
    assert "Global average pooling vs a fully connected head" in text
    assert "data:image/png;base64," in text
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text  # nothing fetched from the network


def test_cli_report_and_its_bad_input(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path / "r"), "--models", "lenet5", "--json"]) == 0
    assert (tmp_path / "r" / "index.html").exists()
    for argv in (["report", "--out", str(tmp_path / "x"), "--models", "nosuchnet*"],
                 ["report", "--out", str(tmp_path / "x"), "--results", str(tmp_path / "no")],
                 ["report", "--out", str(tmp_path / "x"), "--layers", "nosuchnet"]):
        capsys.readouterr()
        assert main(argv) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
        assert not (tmp_path / "x").exists()


def _zoo_params(dom: str) -> list[float]:
    body = dom.split('id="zoo"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)
    return [float(re.findall(r'data-v="([^"]+)"', r)[0]) for r in rows]


def test_page_in_headless_chromium_loads_sorts_and_renders(page, tmp_path):
    url = page.resolve().as_uri()
    plain = _run_chromium(tmp_path, "--dump-dom", url)
    assert plain.returncode == 0, plain.stderr[-500:]
    assert 'data-ready="ok"' in plain.stdout  # the script ran and caught no error
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", plain.stderr), plain.stderr[-800:]
    params = _zoo_params(plain.stdout)
    assert len(params) >= 2 and params != sorted(params)  # registry order, not by size

    clicked = _run_chromium(tmp_path, "--dump-dom", url + "#click=3")  # the params header
    assert 'data-order="asc"' in clicked.stdout
    assert _zoo_params(clicked.stdout) == sorted(params)

    shot = tmp_path / "shot.png"
    r = _run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,800", url)
    assert r.returncode == 0 and shot.exists(), r.stderr[-500:]
    from PIL import Image

    im = Image.open(shot).convert("L")
    dark = sum(im.histogram()[:200])
    assert dark > 0.005 * im.width * im.height  # text, bars and dots, not a blank page
