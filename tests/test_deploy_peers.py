"""benchmarks/peers.py refuses to run without torchvision/timm, in one line, exit 2."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None
                    or importlib.util.find_spec("timm") is not None,
                    reason="peers are installed here: the script would run the benchmark")
def test_peers_script_needs_the_peers():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peers.py")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "torchvision" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
