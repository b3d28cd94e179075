"""heatcheck in someone else's repository: the plugin loads through its entry point, leaves
other plugins' options, fixtures and tests alone, and a user's own audit (the README's
example) lands in the verdict, results.json and the report."""

import json

import pytest

pytestmark = pytest.mark.slow

# The README's "Your own audit" example, word for word.
CUSTOM_AUDIT = '''
import pytest
from heatcheck.metrics.pointing import energy_pointing_game

pytestmark = pytest.mark.heatcheck_audit  # in the verdict, results.json and the report


def test_energy_on_the_object(heatcheck_maps, heatcheck_method, heatcheck_gate):
    scores = heatcheck_maps.per_image(heatcheck_method, energy_pointing_game)
    heatcheck_gate.check("energy_on_object", float(scores.mean()), threshold=0.1,
                         per_image=scores, ids=heatcheck_maps.ids)
'''

# Tests that know nothing of heatcheck, with the names it used to take: a `settings` fixture
# (pytest-django's), a `method` parameter, pytest-playwright's `--output` option.
UNRELATED = '''
import pytest


@pytest.fixture
def settings():
    return {"DEBUG": True}


def test_their_settings_fixture_is_theirs(settings):
    assert settings == {"DEBUG": True}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_their_method_parameter_is_theirs(method):
    assert method in ("GET", "POST")


def test_playwright_output_option_is_theirs(pytestconfig):
    assert pytestconfig.getoption("output") == "playwright-out"
'''


def test_unrelated_tests_run_unchanged_and_the_custom_audit_lands_in_the_verdict(pytester):
    pytester.makepyfile(test_my_audit=CUSTOM_AUDIT, test_unrelated=UNRELATED)
    report_dir = pytester.path / "reports"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--output", "playwright-out", "--hc-images", "bench:8",
        "--hc-methods", "gradcam", "--hc-no-cache", "--hc-report-dir", str(report_dir))
    result.assert_outcomes(passed=5)  # 4 unrelated + the custom audit for gradcam
    results = json.loads((report_dir / "results.json").read_text())
    check = next(c for c in results["checks"] if c["metric"] == "energy_on_object")
    assert (check["audit"], check["method"], check["status"]) == ("my_audit", "gradcam", "passed")
    assert check["threshold"] == 0.1
    assert check["threshold_source"] == "test"
    assert len(check["per_image"]) == 8
    assert results["verdict"] == "pass"
    assert not any("test_unrelated" in c["details"].get("test", "") for c in results["checks"])
    assert "energy_on_object" in (report_dir / "index.html").read_text()


def test_a_session_without_audits_writes_no_report(pytester):
    pytester.makepyfile(test_unrelated=UNRELATED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--output", "playwright-out")
    result.assert_outcomes(passed=4)
    assert not (pytester.path / "reports").exists()
    assert "heatcheck verdict" not in result.stdout.str()
