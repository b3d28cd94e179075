"""The verdict rests on what ran: caveats, inconclusive checks, whole-run errors, and the
report's plain-words summaries (heatcheck.report.coverage, .results and .summaries)."""

from __future__ import annotations

import copy

import pytest
from test_report import make_results  # tests/unit is on sys.path (rootdir conftest, prepend mode)

from heatcheck import report
from heatcheck.report import schema
from heatcheck.report.coverage import caveats, family_of, scope
from heatcheck.report.results import Check, ResultStore
from heatcheck.report.summaries import family_summaries

ALL = ["labels", "localisation", "sanity", "stability", "faithfulness"]


def _check(audit: str, status: str, method: str | None = "gradcam", reason: str | None = None) -> Check:
    return Check(audit=audit, metric="m", method=method, value=0.5, threshold=0.1, direction="higher",
                 passed=status == "passed", status=status, reason=reason)


def test_family_names_come_from_the_audit_modules() -> None:
    assert family_of("test_sanity.py") == "sanity"
    assert family_of("audits/test_localisation.py") == "localisation"
    assert family_of("check_my_model.py") == "check_my_model"


def test_a_full_run_on_enough_images_has_no_caveat() -> None:
    statuses = [(f, "passed") for f in ALL]
    assert caveats(ALL, statuses, {"count": 64, "rejected": []}) == []


def test_labels_alone_is_not_a_plain_pass() -> None:
    found = caveats(["labels"], [("labels", "passed")], {"count": 64})
    assert found[0] == "labels only; no map audit ran"
    assert any("not selected: localisation, sanity, stability, faithfulness" in c for c in found)


def test_map_audits_that_were_all_skipped_are_named() -> None:
    statuses = [("labels", "passed")] + [(f, "skipped") for f in ALL[1:]]
    assert caveats(ALL, statuses, {"count": 64})[0] == "labels only; no map audit ran"
    partial = [("labels", "passed"), ("localisation", "passed"), ("sanity", "skipped")]
    assert "sanity: every check was skipped" in caveats(ALL[:3], partial, {"count": 64})


def test_rejected_rows_and_few_images_are_caveats() -> None:
    found = caveats(ALL, [(f, "passed") for f in ALL],
                    {"count": 3, "rejected": [{"id": "a"}] * 12, "audited": 3})
    assert "12 of 15 rows rejected" in found
    assert "only 3 image(s) audited" in found
    assert scope({"count": 3, "audited": 3}) == "on 3 images"


def test_caveats_fail_the_gate_only_when_asked() -> None:
    store = ResultStore(checks=[_check("labels", "passed")], caveats=["labels only; no map audit ran"])
    assert store.verdict() == "pass"
    store.fail_on_caveats = True
    assert store.verdict() == "fail"


def test_inconclusive_passes_the_gate_unless_strict() -> None:
    store = ResultStore(checks=[_check("localisation", "passed"), _check("localisation", "inconclusive")])
    assert store.verdict() == "pass"
    assert store.summary()["inconclusive"] == 1
    store.fail_inconclusive = True
    assert store.verdict() == "fail"


def test_a_whole_run_error_is_a_fail_not_an_incomplete_run() -> None:
    store = ResultStore(not_run=["a", "b"], fatal="nope.keras: model file not found")
    assert store.verdict() == "fail"
    assert store.to_json()["fatal"] == "nope.keras: model file not found"


def test_report_leads_with_the_whole_run_error_once() -> None:
    results = {**make_results(), "checks": [], "fatal": "nope.keras: model file not found",
               "not_run": [f"audits/test_x.py::t{i}" for i in range(61)], "status": "incomplete"}
    html = report.render(results)
    assert html.count("nope.keras: model file not found") == 1
    assert 'id="fatal"' in html
    assert "audits/test_x.py::t60" not in html


def test_report_shows_caveats_and_scope_beside_the_verdict() -> None:
    results = {**make_results(), "caveats": ["12 of 15 rows rejected"]}
    results["images"] = {**results["images"], "audited": 3}
    html = report.render(results)
    assert '<p class="scope" id="scope">on 3 images — 12 of 15 rows rejected</p>' in html


def test_inconclusive_checks_have_their_own_colour_and_count() -> None:
    results = copy.deepcopy(make_results())
    results["checks"].append({
        "audit": "localisation", "metric": "pointing_game", "method": "saliency", "value": 0.4,
        "threshold": 0.1, "direction": "higher", "passed": False, "status": "inconclusive",
        "reason": "the centre control already scores 0.90 above chance", "per_image": {"img-0": 0.4},
        "effect": 0.02, "interval": [-0.1, 0.15], "control": "centre",
        "controls": {"random": 0.0, "centre": 0.9}, "details": {"raw": 0.8, "chance": 0.6}})
    results["summary"] = {}
    html = report.render(results)
    assert '<td class="result inconclusive"' in html
    assert "0 failed · 1 inconclusive" not in html  # one failed check too
    assert "1 failed · 1 inconclusive" in html
    assert "the centre control already scores 0.90 above chance" in html


def test_family_summaries_say_why_in_plain_words() -> None:
    checks = [{"audit": "localisation", "status": "failed", "method": "gradcam"},
              {"audit": "localisation", "status": "passed", "method": "saliency"},
              {"audit": "sanity", "status": "inconclusive", "reason": "only 3 scored image(s)"},
              {"audit": "labels", "status": "passed"},
              {"audit": "faithfulness", "status": "skipped", "reason": "no conv layer"}]
    rows = {r["family"]: r for r in family_summaries(schema.read_results({"checks": checks})["checks"])}
    assert list(rows) == ["labels", "localisation", "sanity", "faithfulness"]
    assert rows["localisation"]["status"] == "failed"
    assert "avoid the labelled object" in rows["localisation"]["sentence"]
    assert rows["localisation"]["sentence"].startswith("gradcam: the maps avoid")
    assert rows["sanity"]["sentence"] == "This image set cannot tell: only 3 scored image(s)."
    assert rows["faithfulness"]["sentence"] == "Nothing ran: no conv layer."
    assert rows["labels"]["ran"] == 1


def test_a_skipped_check_claims_no_direction() -> None:
    from heatcheck.plugin.gate import Gate
    from heatcheck.settings import Settings

    store = ResultStore()
    Gate(store, Settings(), "t").skip("sanity", "data_randomisation_ssim", "gradcam", "no partner model")
    assert store.checks[0].to_json()["direction"] is None


def test_the_gate_records_why_a_check_cannot_run_for_its_own_audit_and_method() -> None:
    from heatcheck.plugin.gate import Gate
    from heatcheck.settings import Settings

    store = ResultStore()
    gate = Gate(store, Settings(), "t", audit="stability", method="gradcam")
    gate.require(None, "map_ssim")  # nothing in the way: the check goes on
    assert store.checks == []
    with pytest.raises(pytest.skip.Exception, match="no conv layer"):
        gate.require("no conv layer", "map_ssim")
    check = store.checks[0]
    assert (check.audit, check.metric, check.method, check.status, check.reason) == (
        "stability", "map_ssim", "gradcam", "skipped", "no conv layer")


def test_a_replayed_audit_gets_a_gate_bound_to_its_audit_and_method(tmp_path) -> None:
    """`heatcheck merge` calls the audit's own function; its gate knows the test's audit and method."""
    from heatcheck.plugin.replay import replay
    from heatcheck.report.partial import AuditItem
    from heatcheck.settings import Settings

    module = tmp_path / "test_mine.py"
    module.write_text("def test_mine(metric, heatcheck_gate):\n"
                      "    heatcheck_gate.check(metric, 0.9, threshold=0.5)\n", encoding="utf-8")
    item = AuditItem(nodeid="test_mine.py::test_mine[gradcam-x]", path=str(module),
                     function="test_mine", params={"metric": "x"}, family="mine", metric="x",
                     method="gradcam")
    store = ResultStore()
    replay(item, str(tmp_path), {}, store, Settings())
    recorded = [(c.audit, c.metric, c.method, c.status) for c in store.checks]
    assert recorded == [("mine", "x", "gradcam", "passed")]
