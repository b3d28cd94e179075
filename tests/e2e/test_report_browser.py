"""The HTML report opened in a real browser (headless Chromium driven by playwright).

What a string search of the HTML cannot see: that every figure decodes, that the page's script
runs without errors, that nothing is fetched from outside the page, and what a reader sees.
Skips, saying why, when Chromium (`make browser` installs it) or playwright (`.[dev]`) is missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heatcheck import report

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# Nothing may be downloaded or phoned home from the test machine; no GPU in CI containers.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = "report.png"

pytestmark = pytest.mark.slow

# Runs in the page: every <img> that did not decode, and the (audit, metric, method) of every row
# of the checks table and of the table of checks that did not run.
BROKEN_IMAGES_JS = ("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                    ".map(i => i.alt)")
CHECK_ROWS_JS = """() => Array.from(
  document.querySelectorAll('#checks-table tbody tr, #skipped-table tbody tr'))
  .map(r => Array.from(r.cells).slice(0, 3).map(c => c.textContent.trim()))"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: `make browser` installs Debian's chromium")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_report(browser: Any, report_dir: Path) -> tuple[Any, list[str]]:
    """The loaded page, and every problem seen while loading it: console errors, uncaught
    exceptions, requests for anything outside the page (a report must be self-contained)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"console: {message.text}")
            if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("request", lambda request: problems.append(f"request: {request.url}")
            if not request.url.startswith(("data:", "file:")) else None)
    page.goto((report_dir / "index.html").as_uri(), wait_until="load")
    return page, problems


def check_report_in_browser(browser: Any, report_dir: Path) -> Any:
    """Open ``report_dir/index.html``: no errors, every image decoded, the verdict and every
    check of results.json on the page; leaves a full-page screenshot next to it."""
    results = json.loads((report_dir / "results.json").read_text(encoding="utf-8"))
    page, problems = open_report(browser, report_dir)
    assert page.evaluate(BROKEN_IMAGES_JS) == []
    assert page.locator("img").count() > 0
    assert page.inner_text(".verdict") == report.verdict(results).upper()
    rows = {tuple(row) for row in page.evaluate(CHECK_ROWS_JS)}
    expected = {(c["audit"], c["metric"], report.fmt(c.get("method"))) for c in results["checks"]}
    assert expected <= rows, f"checks missing from the page: {sorted(expected - rows)}"
    body = page.inner_text("body")
    assert all(f"{c['metric']}" in body and report.fmt(c.get("method")) in body for c in results["checks"])
    # The page as a reader first sees it (failing checks first), before the sort click below.
    page.screenshot(path=str(report_dir / SCREENSHOT), full_page=True)
    # The table sorts on a click (the page's only script), still without errors.
    page.click("#checks-table th:nth-child(4)")
    assert page.get_attribute("#checks-table th:nth-child(4)", "aria-sort") == "ascending"
    assert problems == []
    return page


# --------------------------------------------------------------------------- synthetic run
def synthetic_run() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A stopped run with every section filled: an error, a command-line threshold, sanity
    curves and grids of two images, stability with a counterexample."""
    rng = np.random.default_rng(0)
    ids = ["img-0", "img-1", "img-2"]
    masks = np.zeros((3, 32, 32), dtype=bool)
    masks[:, 8:20, 8:20] = True
    arrays = {"ids": np.array(ids), "masks": masks,
              "images": rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8),
              "map/gradcam": rng.random((3, 32, 32), dtype=np.float32),
              "sanity/gradcam": rng.random((4, 2, 32, 32)), "sanity_ids": np.array(ids[:2])}
    steps = ["predictions", "dense", "last_conv"]
    checks = [
        {"audit": "localisation", "metric": "pointing_game", "method": "gradcam", "value": 0.4,
         "threshold": 0.6, "threshold_source": "command line", "direction": "higher", "status": "failed",
         "per_image": dict(zip(ids, [1.0, 0.0, 0.0], strict=True))},
        {"audit": "labels", "metric": "top_1_agreement", "method": None, "value": 1.0, "threshold": 0.9,
         "direction": "higher", "status": "passed"},
        {"audit": "sanity", "metric": "cascading_ssim", "method": "gradcam", "value": 0.2, "threshold": 0.6,
         "direction": "lower", "status": "passed",
         "details": {"steps": steps, "curve": [0.7, 0.4, 0.2], "independent_curve": [0.7, 0.5, 0.6]}},
        {"audit": "stability", "metric": "map_ssim", "method": "gradcam", "value": 0.8, "threshold": 0.7,
         "direction": "higher", "status": "passed",
         "details": {"levels": ["gaussian:0.01", "gaussian:0.05", "brightness:0.05"],
                     "values": [0.95, 0.7, 0.9], "discarded_share": 0.05}},
        {"audit": "stability", "metric": "map_ssim_property", "method": "gradcam", "value": 0.3,
         "threshold": 0.5, "direction": "higher", "status": "failed",
         "details": {"budget": {"max_sigma": 0.01}, "examples_kept": 4, "counterexample": {
             "image": "img-1", "sigma": 0.01, "brightness": 0.0, "seed": 3, "similarity": 0.3,
             "text": "gradcam breaks at σ = 0.01 on image img-1: SSIM 0.300"}}},
        {"audit": "faithfulness", "metric": "deletion_auc", "method": "gradcam", "value": None,
         "threshold": None, "direction": "lower", "status": "skipped", "reason": "not in this profile"},
    ]
    results = {
        "schema": "heatcheck/1", "verdict": "incomplete", "status": "incomplete",
        "not_run": ["audits/test_sanity.py::test_data_randomisation[gradcam-ssim]"],
        "errors": [{"test": "audits/test_stability.py::test_stability[gradcam-avg_sensitivity]",
                    "when": "call", "message": "ValueError: no perturbed copy kept"}],
        "model": {"spec": "synthetic", "class_names": ["a", "b"]},
        "images": {"spec": "synthetic:3", "count": 3,
                   "items": [{"id": i, "label": 0, "predicted": 0, "correct": True} for i in ids]},
        "environment": {"seed": 0, "thresholds_source": {"pointing_game.gradcam": "command line"}},
        "checks": checks,
    }
    return results, arrays


def test_synthetic_report_in_a_browser(browser: Any, tmp_path: Path) -> None:
    results, arrays = synthetic_run()
    (tmp_path / "results.json").write_text(json.dumps(results), encoding="utf-8")
    np.savez(tmp_path / "maps.npz", **arrays)
    other = {**results, "model": {"spec": "other"}, "checks": results["checks"][1:]}
    (tmp_path / "other.json").write_text(json.dumps(other), encoding="utf-8")
    report.write_report(tmp_path, compare_path=tmp_path / "other.json")
    page = check_report_in_browser(browser, tmp_path)
    assert page.inner_text(".verdict") == "INCOMPLETE"  # a test did not run: never PASS
    assert page.is_visible("#stopped")
    assert "test_data_randomisation[gradcam-ssim]" in page.inner_text("#stopped")
    assert "no perturbed copy kept" in page.inner_text("#errors")
    assert page.is_visible("#checks-table .badge")
    assert "gradcam breaks at σ = 0.01" in page.inner_text("#stability .found")
    assert page.locator("#sanity img").count() == 3  # two images' grids and the curves
    assert page.locator("#compare tr.differs").count() == 1  # pointing_game: absent in the other run
    assert (tmp_path / SCREENSHOT).stat().st_size > 0


# --------------------------------------------------------------------------- real audit
def _listing(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} if folder.is_dir() else {}


def test_real_bench_audit_report_in_a_browser(browser: Any, pytester: pytest.Pytester) -> None:
    report_dir = pytester.path / "reports"
    users_reports = _listing(REPO / "reports")
    result = pytester.runpytest_subprocess(
        str(REPO / "audits"), f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml"),
        "-p", "no:cacheprovider", "--hc-report-dir", str(report_dir), "--hc-images", "bench:12",
        "--hc-profile", "smoke", "--hc-cache-dir", str(pytester.path / "map-cache"))
    # 0 or 1: on 12 images a check of the clean model may come out failed by chance; a failing
    # run's page is as much a page. Any other
    # code (usage error, internal error, interrupted) means the audit itself broke.
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()[-3000:]
    page = check_report_in_browser(browser, report_dir)
    assert page.inner_text(".verdict") == ("PASS" if result.ret == pytest.ExitCode.OK else "FAIL")
    assert page.locator("#sanity img").count() >= 2
    assert page.locator("#stability .card").count() >= 1
    # The screenshot stays in the test's temporary folder (pytest keeps the last three runs'):
    # a test never writes into the user's reports/.
    assert (report_dir / SCREENSHOT).stat().st_size > 0
    assert _listing(REPO / "reports") == users_reports
