"""Past one process: pytest-xdist workers and sharded runs merged give one process's results.json.

Every run here audits the same small bench (12 images, batches of 4, so that two workers or
three shards each get images, and the localisation pairs and the gallery cross blocks) with
`--hc-no-cache`, in subprocesses (TensorFlow in the test process after pytester aborts here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
AUDIT = ["--hc-images", "bench:12", "--hc-profile", "smoke", "--hc-methods", "saliency,gradcam",
         "--hc-batch-size", "4",
         "--hc-no-cache", "-p", "no:cacheprovider", "-q"]
# Fields that say when and how a run ran, not what it found.
TIMING = ("wall_s", "started_utc", "shards", "workers")

pytestmark = pytest.mark.slow


def audit(report_dir: Path, *args: str, target: str = "audits") -> subprocess.Popen[str]:
    """`pytest audits/` in a subprocess, started (the caller waits)."""
    command = [sys.executable, "-m", "pytest", str(REPO / target), "-c", str(REPO / "pyproject.toml"),
               f"--rootdir={REPO}", *AUDIT, "--hc-report-dir", str(report_dir), *args]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def merge(*folders: Path, output: Path) -> subprocess.CompletedProcess[str]:
    """`python -m heatcheck merge FOLDER... -o OUTPUT`."""
    return subprocess.run([sys.executable, "-m", "heatcheck", "merge", *map(str, folders), "-o", str(output)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def finished(run: subprocess.Popen[str], timeout: float = 900) -> tuple[int, str]:
    out, _ = run.communicate(timeout=timeout)
    return run.returncode, out


def findings(report_dir: Path) -> dict[str, Any]:
    """results.json without its timing fields."""
    results = json.loads((report_dir / "results.json").read_text())
    results["environment"] = {k: v for k, v in results["environment"].items() if k not in TIMING}
    return results


def assert_same_run(one: Path, other: Path) -> None:
    a, b = findings(one), findings(other)
    assert [(c["audit"], c["metric"], c["method"]) for c in a["checks"]] == \
           [(c["audit"], c["metric"], c["method"]) for c in b["checks"]]
    for ca, cb in zip(a["checks"], b["checks"], strict=True):
        assert ca == cb, (ca["audit"], ca["metric"], ca["method"])
    assert a == b
    with np.load(one / "maps.npz") as za, np.load(other / "maps.npz") as zb:
        assert sorted(za.files) == sorted(zb.files)
        for key in za.files:
            np.testing.assert_array_equal(za[key], zb[key], err_msg=key)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same audit in one process."""
    report_dir = tmp_path_factory.mktemp("one") / "reports"
    code, out = finished(audit(report_dir))
    assert code == 0, out
    return report_dir


def test_two_xdist_workers_give_one_process_results(one_process: Path, tmp_path: Path) -> None:
    code, out = finished(audit(tmp_path / "reports", "-n", "2"))
    assert code == 0, out
    assert "computed" in out  # the workers computed their shares; the controller decided
    assert "heatcheck verdict: PASS on 12 images" in out
    results = findings(tmp_path / "reports")
    assert all(len(c["per_image"]) == 12 for c in results["checks"] if c["audit"] == "localisation")
    assert not (tmp_path / "reports" / ".heatcheck-workers").exists()
    assert (tmp_path / "reports" / "index.html").exists()
    assert_same_run(one_process, tmp_path / "reports")


def test_three_shards_merged_give_one_process_results(one_process: Path, tmp_path: Path) -> None:
    runs = [audit(tmp_path / f"shard-{i}", "--hc-shard", f"{i}/3") for i in range(3)]
    for run in runs:
        code, out = finished(run)
        assert code == 0, out
        assert "partial results in" in out
    merged = merge(*(tmp_path / f"shard-{i}" for i in (2, 0, 1)), output=tmp_path / "merged")
    assert merged.returncode == 0, merged.stderr
    assert "3 shards merged" in merged.stdout
    assert_same_run(one_process, tmp_path / "merged")


def test_shards_of_two_models_are_refused_with_one_line(tmp_path: Path) -> None:
    labels = "audits/test_labels.py"
    runs = [audit(tmp_path / "a", "--hc-shard", "0/2", target=labels),
            audit(tmp_path / "b", "--hc-shard", "1/2", "--hc-model", "bench:shortcut", target=labels)]
    for run in runs:
        code, out = finished(run)
        assert code == 0, out
    merged = merge(tmp_path / "a", tmp_path / "b", output=tmp_path / "merged")
    assert merged.returncode == 2
    lines = merged.stderr.strip().splitlines()
    assert len(lines) == 1, merged.stderr
    assert lines[0].startswith("heatcheck merge: shards audit different models: "
                               "shard 0/2 bench:clean (sha256 ")
    assert "vs shard 1/2 bench:shortcut (sha256 " in lines[0]
    assert not (tmp_path / "merged").exists()


def test_sample_audits_alone_run_whole_on_one_worker(tmp_path: Path) -> None:
    """Only sanity chosen: nothing to split by image, so one worker runs it as one process would
    (every image's prediction row included) and the other writes an idle partial."""
    runs = {name: audit(tmp_path / name, "--hc-methods", "saliency", *args, target="audits/test_sanity.py")
            for name, args in (("one", ()), ("n2", ("-n", "2")))}
    for run in runs.values():
        code, out = finished(run)
        assert code == 0, out
    assert len(findings(tmp_path / "n2")["images"]["items"]) == 12
    assert_same_run(tmp_path / "one", tmp_path / "n2")
