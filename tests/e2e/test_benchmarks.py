"""`make bench` keeps working: the script runs at toy size and prints the promised JSON lines.
(Speed itself is measured by `make bench`, never asserted in a test.)"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_quick_benchmark_prints_every_workload_line():
    out = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--workloads", "W1,W3,W4"],
                         cwd=REPO, capture_output=True, text=True, timeout=900, check=True).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    w1 = next(line for line in lines if line.get("workload") == "W1")
    assert {"engine_s", "tf_keras_vis_s", "floor_s"} <= set(w1)
    w3 = {line["metric"]: line for line in lines if line.get("workload") == "W3"}
    assert set(w3) == {"pointing_game", "cascading_randomisation", "max_sensitivity"}
    assert all({"heatcheck_s", "quantus_s", "floor_s"} <= set(line) for line in w3.values())
    w4 = next(line for line in lines if line.get("workload") == "W4")
    assert w4["images"] == [20, 80]
    assert len(w4["peak_rss_mb"]) == 2
    assert all(p > 100 for p in w4["peak_rss_mb"])  # TensorFlow alone takes more: the child was measured
