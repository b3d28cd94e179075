"""The verdict never claims more than was audited (issue: a gate that passed on nothing), and a
whole-run error stops the run once, end to end as users run `pytest audits/`."""

import json
from pathlib import Path

import numpy as np
import pytest
from heatcheck.fixtures.bench import CLASS_NAMES, make_bench
from PIL import Image

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run(pytester: pytest.Pytester, *args: str, target: str = "audits"):
    report_dir = pytester.path / "reports"
    result = pytester.runpytest_subprocess(
        str(REPO / target), f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml"), "-p", "no:cacheprovider",
        "--hc-report-dir", str(report_dir), "--hc-no-cache", *args)
    return result, json.loads((report_dir / "results.json").read_text()), report_dir


def shifted_label_manifest(folder: Path, count: int = 12) -> Path:
    """Bench images labelled with the next class: the clean model gets none right at top-1."""
    images, labels, masks, _ = make_bench(count, seed=5)
    rows = ["image,label,mask"]
    for i in range(count):
        Image.fromarray(images[i]).save(folder / f"i{i}.png")
        Image.fromarray(masks[i].astype(np.uint8) * 255).save(folder / f"m{i}.png")
        rows.append(f"i{i}.png,{CLASS_NAMES[(labels[i] + 1) % len(CLASS_NAMES)]},m{i}.png")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


def test_labels_alone_is_a_pass_that_says_no_map_was_audited(pytester):
    result, results, report_dir = run(pytester, "--hc-images", "bench:12", target="audits/test_labels.py")
    assert result.ret == 0
    assert results["verdict"] == "pass"
    assert results["caveats"][0] == "labels only; no map audit ran"
    assert "heatcheck verdict: PASS on 12 images — labels only; no map audit ran" in result.stdout.str()
    assert "labels only; no map audit ran" in (report_dir / "index.html").read_text()


def test_a_run_with_caveats_fails_the_strict_gate(pytester):
    result, results, _ = run(pytester, "--hc-images", "bench:12", "--hc-fail-on-caveats",
                             target="audits/test_labels.py")
    assert result.ret == 1
    assert results["verdict"] == "fail"


def test_only_correct_on_a_set_the_model_gets_wrong_is_not_a_plain_pass(pytester):
    manifest = shifted_label_manifest(pytester.path)
    result, results, _ = run(pytester, "--hc-images", str(manifest), "--hc-only-correct", "--hc-top-k", "3",
                             "--hc-methods", "gradcam")
    assert results["images"]["audited"] == 0
    skipped = [c for c in results["checks"] if c["status"] == "skipped"]
    assert skipped, results["checks"]
    assert all("gets no image right" in c["reason"] for c in skipped)
    assert results["summary"]["skipped"] == len(skipped)
    assert "no map audit ran" in results["caveats"][0]
    out = result.stdout.str()
    assert "heatcheck verdict: PASS on 0 images — " in out or "heatcheck verdict: FAIL" in out
    assert "every recorded check ran" not in out


def test_a_missing_model_stops_the_run_once_with_one_line(pytester):
    result, results, report_dir = run(pytester, "--hc-model", str(pytester.path / "nope.keras"),
                                      "--hc-images", "bench:4")
    assert result.ret == 1
    assert results["verdict"] == "fail"
    assert results["fatal"].endswith("nope.keras: model file not found")
    assert len(results["errors"]) == 1
    out = result.stdout.str()
    assert out.count("model file not found") <= 2  # pytest's exit line and heatcheck's one line
    assert "Traceback" not in out
    html = (report_dir / "index.html").read_text()
    assert 'id="fatal"' in html
    assert html.count("model file not found") == 1


KILL_WHILE_COLLECTING = """
import os
import signal


def pytest_collectstart(collector):
    os.kill(os.getpid(), signal.SIGTERM)  # the first seconds: before any checkpoint is written
"""


def test_a_run_stopped_in_its_first_seconds_leaves_no_other_runs_pass(pytester, monkeypatch):
    report_dir = pytester.path / "reports"
    report_dir.mkdir()
    (report_dir / "results.json").write_text('{"verdict": "pass", "model": {"spec": "other"}}')
    (report_dir / "index.html").write_text("<div class='verdict pass'>PASS</div>")
    (pytester.path / "killer.py").write_text(KILL_WHILE_COLLECTING)
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    pytester.runpytest_subprocess(
        str(REPO / "audits"), f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml"), "-p", "killer",
        "-p", "no:cacheprovider", "--hc-report-dir", str(report_dir), "--hc-no-cache")
    page = report_dir / "index.html"
    assert not page.exists() or "PASS</div>" not in page.read_text()
    assert (report_dir / "index.previous.html").read_text() == "<div class='verdict pass'>PASS</div>"
    assert (report_dir / "results.previous.json").exists()
