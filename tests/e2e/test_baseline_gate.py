"""The model-validation gate the way users run it: accept bench:clean with --hc-save-baseline, then
gate runs against it with --hc-baseline (issue 15's acceptance tests)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AUDITS = ("audits/test_labels.py", "audits/test_localisation.py")
# Three methods keep these subprocess runs short; SmoothGrad adds 20 passes per map.
METHODS = ("--hc-methods", "saliency,gradcam,gradcampp")

pytestmark = pytest.mark.slow


def audit(folder: Path, *args: str, audits: tuple[str, ...] = AUDITS,
          pyproject: Path = REPO / "pyproject.toml") -> tuple[int, str, dict | None]:
    """`pytest <audits>` on bench:16 with the cache off, in a subprocess; (code, output, results)."""
    report_dir = folder / "reports"
    command = [sys.executable, "-m", "pytest", *(str(REPO / a) for a in audits), f"--rootdir={REPO}",
               "-c", str(pyproject), "-p", "no:cacheprovider", "--hc-no-cache",
               "--hc-report-dir", str(report_dir), "--hc-images", "bench:16", *METHODS, *args]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600, check=False)
    results_file = report_dir / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else None
    return done.returncode, done.stdout + done.stderr, results


def regressions(results: dict) -> dict[tuple[str, str | None], dict]:
    return {(c["metric"], c["method"]): c for c in results["checks"] if c["audit"] == "regression"}


@pytest.fixture(scope="module")
def accepted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """bench:clean's run, saved as the accepted baseline."""
    folder = tmp_path_factory.mktemp("accepted")
    code, output, results = audit(folder, "--hc-save-baseline", str(folder / "baseline"))
    assert code == 0, output
    assert f"heatcheck baseline: saved to {folder / 'baseline' / 'results.json'} (verdict PASS)" in output
    return folder / "baseline", results


def test_the_clean_model_against_its_own_baseline_exits_0(accepted, tmp_path):
    baseline, first = accepted
    code, output, second = audit(tmp_path, "--hc-baseline", str(baseline))
    assert code == 0, output
    compared = regressions(second)
    # every check of the accepted run compared, none spuriously changed: the same numbers twice
    assert len(compared) == len(first["checks"]) == 10
    assert {c["status"] for c in compared.values()} == {"passed"}
    assert all(c["value"] == 0.0 and c["interval"] == [0.0, 0.0] for c in compared.values())
    assert [c["per_image"] for c in first["checks"]] == [
        c["per_image"] for c in second["checks"] if c["audit"] != "regression"]
    assert "10 checks compared, 0 regressed, 0 inconclusive, 10 within tolerance" in output
    assert second["baseline"]["model"] == "bench:clean"
    assert all(len(item["content_hash"]) == 32 for item in second["images"]["items"])


def test_the_shortcut_model_against_the_clean_baseline_exits_1_naming_the_regressions(accepted, tmp_path):
    baseline, _ = accepted
    code, output, results = audit(tmp_path, "--hc-baseline", str(baseline), "--hc-model", "bench:shortcut")
    assert code == 1
    compared = regressions(results)
    for method in ("gradcam", "gradcampp"):
        for metric in ("pointing_game", "energy_pointing_game", "relevance_rank_accuracy"):
            check = compared[(f"localisation/{metric}", method)]
            assert check["status"] == "failed"
            assert check["interval"][1] < check["threshold"]
            worst = check["details"]["worst"]
            assert worst[0]["id"].startswith("bench-")
            assert worst[0]["new"] < worst[0]["baseline"]
            assert check["reason"].startswith(
                f"regression: localisation/{metric} {method} {check['details']['baseline']:.3g} → "
                f"{check['details']['new']:.3g} (tolerance ")
            assert f"; worst: {worst[0]['id']} " in check["reason"]
            assert check["reason"].endswith("newly failing (was passed)")
            assert f"regression::localisation/{metric}[{method}]" in output  # pytest's FAILED line
    # the shortcut model is right on the tagged images: label consistency did not regress
    assert compared[("labels/top_1_agreement", None)]["status"] == "passed"
    assert "regression: localisation/energy_pointing_game gradcam" in output
    newly = next(line for line in output.splitlines()
                 if line.startswith("heatcheck baseline: newly failing: "))
    assert "localisation/pointing_game gradcam (was passed)" in newly
    html = (tmp_path / "reports" / "index.html").read_text()
    assert '<section id="regression">' in html
    assert '<figcaption class="change">vs baseline: ' in html


def test_a_baseline_of_other_settings_is_refused_with_one_line_before_tensorflow(accepted, tmp_path):
    baseline, _ = accepted
    code, output, results = audit(tmp_path, "--hc-baseline", str(baseline), "--hc-top-k", "2")
    assert code == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in output.splitlines() if "heatcheck:" in line]
    assert lines == [f"ERROR: heatcheck: --hc-baseline {baseline / 'results.json'}: other settings: "
                     f"top_k 1 (baseline) vs 2 (this run)"]
    assert results is None  # refused in pytest_configure: nothing ran, nothing was written


def test_a_baseline_of_another_image_set_is_refused_with_one_line(accepted, tmp_path):
    baseline, _ = accepted
    code, output, results = audit(tmp_path, "--hc-baseline", str(baseline), "--hc-images", "bench:12")
    assert code == 1
    line = (f"--hc-baseline {baseline / 'results.json'}: another image set: 4 image(s) only in the baseline "
            f"(first: bench-12)")
    assert f"heatcheck: input error: {line}" in output
    assert results["fatal"] == line
    assert not [c for c in results["checks"] if c["status"] != "skipped"]


def test_an_unreadable_or_foreign_baseline_is_a_usage_error(tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({"schema": "other/2", "checks": []}))
    for given, says in ((tmp_path / "missing.json", "file not found"),
                        (tmp_path / "other.json", "schema 'other/2', this heatcheck reads 'heatcheck/1'")):
        code, output, results = audit(tmp_path, "--hc-baseline", str(given))
        assert code == pytest.ExitCode.USAGE_ERROR
        assert f"ERROR: heatcheck: --hc-baseline {given}: {says}" in output
        assert results is None


def test_a_tolerance_for_a_metric_no_audit_records_is_refused_with_one_line(accepted, tmp_path):
    """The shipped defaults give every gated metric a tolerance (a project's table only
    overrides them), so a table can no longer miss one; a stale key is still refused."""
    baseline, _ = accepted
    text = (REPO / "pyproject.toml").read_text()
    stale = "[tool.heatcheck.tolerances.deletion_auc_over_random]\ndefault = 0.16\n"
    config = tmp_path / "pyproject.toml"
    config.write_text(text.replace("[tool.pytest.ini_options]", stale + "\n[tool.pytest.ini_options]"))
    code, output, results = audit(tmp_path, "--hc-baseline", str(baseline), pyproject=config)
    assert code == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in output.splitlines() if "heatcheck:" in line]
    assert len(lines) == 1
    assert lines[0].startswith("ERROR: heatcheck: --hc-baseline: [tool.heatcheck.tolerances]")
    assert "deletion_auc_over_random, which no audit records" in lines[0]
    assert results is None


def test_a_baseline_of_metrics_no_audit_records_any_more_is_refused_with_one_line(accepted, tmp_path):
    _, first = accepted
    older = json.loads(json.dumps(first))  # as the audits before the calibrated gates wrote it
    retired = {**older["checks"][-1], "audit": "faithfulness", "metric": "deletion_auc_over_random"}
    older["checks"].append(retired)
    (tmp_path / "old.json").write_text(json.dumps(older))
    code, output, results = audit(tmp_path, "--hc-baseline", str(tmp_path / "old.json"))
    assert code == pytest.ExitCode.USAGE_ERROR
    assert (f"ERROR: heatcheck: --hc-baseline {tmp_path / 'old.json'}: records "
            f"deletion_auc_over_random, which "
            f"this heatcheck's audits do not (an older heatcheck?): accept a run of this one") in output
    assert results is None


def test_a_baseline_from_an_older_heatcheck_is_accepted(accepted, tmp_path):
    _, first = accepted
    older = json.loads(json.dumps(first))  # written before audit settings and content hashes
    del older["environment"]["audit_settings"]
    for item in older["images"]["items"]:
        del item["content_hash"]
    (tmp_path / "old.json").write_text(json.dumps(older))
    code, output, results = audit(tmp_path, "--hc-baseline", str(tmp_path / "old.json"))
    assert code == 0, output
    assert len(regressions(results)) == 10
    assert "heatcheck baseline: note: the baseline records no audit settings" in output
    assert "images were matched by id and label only" in output


def test_only_the_audits_selected_are_compared(accepted, tmp_path):
    baseline, _ = accepted
    code, output, results = audit(tmp_path, "--hc-baseline", str(baseline), audits=("audits/test_labels.py",))
    assert code == 0, output
    assert list(regressions(results)) == [("labels/top_1_agreement", None)]
