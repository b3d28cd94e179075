"""A run stopped midway (SIGTERM, as CI cancels a job) still leaves a readable report, marked
incomplete, with what was computed before it stopped."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_terminated_run_leaves_an_incomplete_report(tmp_path):
    report_dir = tmp_path / "reports"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", str(REPO / "audits"), "-q", "-p", "no:cacheprovider",
         "--hc-report-dir", str(report_dir), "--hc-no-cache", "--hc-images", "bench:16"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results_path = report_dir / "results.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for a checkpoint that holds some checks
        time.sleep(0.5)
        if results_path.exists() and json.loads(results_path.read_text())["checks"]:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    results = json.loads(results_path.read_text())
    assert results["verdict"] == "incomplete", out[-2000:]
    assert results["not_run"]
    assert results["checks"]
    html = (report_dir / "index.html").read_text()
    assert '<div class="verdict incomplete" role="status">INCOMPLETE</div>' in html
    assert "heatcheck verdict: INCOMPLETE" in out
