"""The model-validation gate's pure parts (heatcheck.checks.baseline): loading and refusing baselines,
the paired comparison with its three outcomes, the regression line, content hashes."""

import json
from pathlib import Path

import numpy as np
import pytest

from heatcheck.checks.baseline import (
    Baseline,
    BaselineError,
    as_check,
    audit_settings,
    check_settings,
    compare_check,
    image_set_difference,
    image_set_notes,
    load_baseline,
    regression_message,
    save_baseline,
    tolerance_key,
    tolerance_table_problems,
    unknown_metrics,
)
from heatcheck.data.content_hash import content_hash, content_hashes
from heatcheck.report.schema import SCHEMA
from heatcheck.settings import PROFILES, Settings, SettingsError, build_thresholds, read_defaults

KEY = ("localisation", "energy_pointing_game", "gradcam")


def check(values, *, metric="energy_pointing_game", method="gradcam", audit="localisation",
          direction="higher", status="passed", value=None, details=None):
    """A results.json check with per-image values ``values`` (a list: ids img-0, img-1, ...)."""
    per_image = {f"img-{i}": v for i, v in enumerate(values)}
    finite = [v for v in values if v is not None]
    mean = float(np.mean(finite)) if finite else None
    return {"audit": audit, "metric": metric, "method": method, "direction": direction, "status": status,
            "value": mean if value is None else value, "per_image": per_image, "details": details or {}}


def compare(base, new, tolerance=0.05, min_images=5):
    return compare_check(base, new, tolerance=tolerance, seed=0, min_images=min_images)


def results(**extra):
    base = {"schema": SCHEMA, "verdict": "pass", "status": "complete", "checks": [], "not_run": [],
            "model": {"spec": "bench:clean"}, "environment": {"seed": 0, "profile": "ci",
                                                              "audit_settings": audit_settings(Settings())},
            "images": {"items": [{"id": "a", "label": 0, "content_hash": "h1"},
                                 {"id": "b", "label": 1, "content_hash": "h2"}]}}
    return {**base, **extra}


def write(tmp_path, data, name="results.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


# --------------------------------------------------------------------------- comparing
def test_identical_runs_pass_with_a_zero_interval():
    base = check(list(np.linspace(0.2, 0.8, 16)))
    r = compare(base, base)
    assert r.outcome == "passed"
    assert r.change == 0.0
    assert (r.interval.low, r.interval.high) == (0.0, 0.0)
    assert r.status_change is None


def test_every_image_worse_than_the_tolerance_is_a_regression_naming_the_worst_images():
    values = list(np.linspace(0.4, 0.8, 16))
    drops = np.linspace(0.2, 0.5, 16)  # img-15 drops most, then img-14, img-13
    base = check(values)
    new = check(list(np.array(values) - drops), status="failed")
    r = compare(base, new)
    assert r.outcome == "failed"
    assert r.change == pytest.approx(-drops.mean())
    assert r.interval.high < -0.05
    assert [w[0] for w in r.worst(3)] == ["img-15", "img-14", "img-13"]
    line = regression_message(KEY, r)
    assert line.startswith(f"regression: localisation/energy_pointing_game gradcam {base['value']:.3g} → "
                           f"{new['value']:.3g} (tolerance 0.05; worse by {drops.mean():.3g} [")
    assert "; worst: img-15 0.8 → 0.3, img-14" in line
    assert ", …" in line
    assert line.endswith("; newly failing (was passed)")


def test_a_drop_within_the_tolerance_passes():
    values = np.linspace(0.4, 0.8, 16)
    r = compare(check(list(values)), check(list(values - 0.02)))
    assert r.outcome == "passed"
    assert r.change == pytest.approx(-0.02)


def test_lower_is_better_metrics_are_worse_when_they_grow():
    values = np.linspace(0.1, 0.3, 16)
    base = check(list(values), metric="max_sensitivity", direction="lower")
    grew = compare(base, check(list(values + 0.4), metric="max_sensitivity", direction="lower"), 0.1)
    shrank = compare(base, check(list(values - 0.4), metric="max_sensitivity", direction="lower"), 0.1)
    assert grew.outcome == "failed"
    assert grew.change == pytest.approx(-0.4)
    assert shrank.outcome == "passed"
    assert shrank.change == pytest.approx(0.4)
    assert "better by 0.4" in regression_message(KEY, shrank)


def test_an_interval_across_the_tolerance_is_inconclusive():
    rng = np.random.default_rng(0)
    values = rng.uniform(0.3, 0.7, 12)
    noisy = values - 0.05 + rng.normal(0, 0.2, 12)  # mean drop near the tolerance, wide spread
    r = compare(check(list(values)), check(list(noisy)))
    assert r.interval.low < -0.05 < r.interval.high
    assert r.outcome == "inconclusive"
    assert "straddles the tolerance -0.05 with 12 images" in r.reason


def test_too_few_images_in_both_runs_is_inconclusive():
    r = compare(check([0.5, 0.5, 0.5]), check([0.1, 0.1, 0.1]))
    assert r.outcome == "inconclusive"
    assert "only 3 image(s) scored in both runs, need at least 5" in r.reason


def test_only_images_scored_in_both_runs_are_paired():
    base = check([0.5] * 8 + [None, 0.9])
    new = check([0.5] * 8 + [0.0])  # img-9 missing in the new run, img-8 missing in the baseline
    r = compare(base, new)
    assert sorted(r.pairs) == [f"img-{i}" for i in range(8)]
    assert r.outcome == "passed"


def test_a_check_that_no_longer_runs_is_a_regression():
    base = check([0.5] * 8)
    skipped = {**check([]), "status": "skipped", "value": None, "reason": "no conv layer"}
    for new in (skipped, None):
        r = compare(base, new)
        assert r.outcome == "failed"
        assert "ran in the baseline (0.5), not in this run" in r.reason
    assert "no conv layer" in compare(base, skipped).reason
    assert compare(base, None).status_change == "newly not recorded (was passed)"


def test_checks_without_per_image_values_compare_value_to_value():
    base = {**check([]), "metric": "map_ssim_property", "value": 0.8}
    assert compare(base, {**base, "value": 0.78}, 0.1).outcome == "passed"
    worse = compare(base, {**base, "value": 0.6}, 0.1)
    assert worse.outcome == "failed"
    assert worse.interval is None
    assert "(tolerance 0.1; worse by 0.2)" in regression_message(KEY, worse)


def test_deletion_aucs_are_compared_image_by_image_as_recorded():
    # The value is the mean per-image AUC (the random orders' AUC is the control, not a scale):
    # a run whose random orders got harder to beat is not, by that alone, better or worse.
    aucs = np.linspace(0.2, 0.4, 8)
    base = check(list(aucs), metric="deletion_auc", direction="lower", details={"random_auc": 0.5})
    same = compare(base, check(list(aucs), metric="deletion_auc", direction="lower",
                               details={"random_auc": 1.0}))
    assert (same.outcome, same.change) == ("passed", 0.0)
    faster = compare(base, check(list(aucs - 0.1), metric="deletion_auc", direction="lower"))
    assert faster.change == pytest.approx(0.1)  # the decision left sooner: better
    assert faster.pairs["img-0"] == pytest.approx((0.2, 0.1))


def test_the_comparison_repeats_exactly():
    rng = np.random.default_rng(1)
    base, new = check(list(rng.uniform(size=20))), check(list(rng.uniform(size=20)))
    assert compare(base, new).interval == compare(base, new).interval


@pytest.mark.parametrize(("before", "after", "note"), [
    ("passed", "failed", "newly failing (was passed)"),
    ("inconclusive", "failed", "newly failing (was inconclusive)"),
    ("passed", "inconclusive", "newly inconclusive (was passed)"),
    ("failed", "failed", None),
    ("failed", "passed", None),
    ("inconclusive", "passed", None),
])
def test_outcomes_that_got_worse_are_named(before, after, note):
    values = [0.5] * 8
    assert compare(check(values, status=before), check(values, status=after)).status_change == note


def test_a_regression_is_recorded_as_a_check_of_its_own():
    values = np.linspace(0.4, 0.8, 10)
    r = compare(check(list(values)), check(list(values - 0.3)))
    c = as_check(KEY, r, test_id="regression::x", tolerance_source="pyproject").to_json()
    json.dumps(c, allow_nan=False)
    assert (c["audit"], c["metric"], c["method"]) == ("regression", "localisation/energy_pointing_game",
                                                      "gradcam")
    assert c["status"] == "failed"
    assert c["threshold"] == -0.05
    assert c["value"] == pytest.approx(-0.3)
    assert c["per_image"]["img-0"] == pytest.approx(-0.3)
    assert c["reason"].startswith("regression: localisation/energy_pointing_game gradcam")
    assert c["details"]["baseline"] == pytest.approx(0.6)
    assert c["details"]["worst"][0]["id"] in c["per_image"]


# --------------------------------------------------------------------------- tolerances
def test_label_consistency_uses_the_label_agreement_tolerance():
    assert tolerance_key({"audit": "labels", "metric": "top_2_agreement"}) == "label_agreement"
    assert tolerance_key({"audit": "localisation", "metric": "pointing_game"}) == "pointing_game"


def test_every_metric_with_a_threshold_needs_a_default_tolerance_and_no_other_has_one():
    thresholds = build_thresholds({"pointing_game": 0.1, "deletion_auc": 0.05, "insertion_auc": 0.05,
                                   "map_ssim_property": {"default": 0.5, "saliency": 0.3}}, [])
    tolerances = build_thresholds({"pointing_game": {"default": 0.1, "saliency": 0.2},
                                   "map_ssim_property": {"saliency": 0.4},
                                   "deletion_auc_over_random": 0.16}, [], kind="tolerance")
    assert tolerance_table_problems(thresholds, tolerances) == [
        "no tolerance for deletion_auc, insertion_auc", "no default tolerance for map_ssim_property",
        "a tolerance for deletion_auc_over_random, which no audit records (no threshold)"]
    complete = build_thresholds({"pointing_game": 0.1, "deletion_auc": 0.1, "insertion_auc": 0.1,
                                 "map_ssim_property": {"default": 0.1}}, [], kind="tolerance")
    assert tolerance_table_problems(thresholds, complete) == []


def test_the_committed_tolerances_cover_every_gated_metric():
    table = read_defaults()
    thresholds = build_thresholds(table["thresholds"], [])
    tolerances = build_thresholds(table["tolerances"], [], kind="tolerance")
    assert tolerance_table_problems(thresholds, tolerances) == []
    assert len(tolerances.values) == 19  # labels 1, localisation 3, sanity 9, stability 4, faithfulness 2


def test_a_baseline_of_metrics_no_audit_records_is_named():
    baseline = Baseline(Path(__file__), results(checks=[
        check([0.5], metric="pointing_game"), check([0.5], audit="labels", metric="top_1_agreement"),
        check([0.5], metric="deletion_auc_over_random", audit="faithfulness"),
        {**check([]), "status": "skipped", "value": None, "metric": "retired"}]))
    thresholds = build_thresholds({"pointing_game": 0.1, "label_agreement": 0.9}, [])
    assert unknown_metrics(baseline, thresholds) == ["deletion_auc_over_random"]  # skipped: not compared


def test_tolerance_overrides_say_tolerance():
    tolerances = build_thresholds({"pointing_game": {"default": 0.1}}, ["pointing_game.gradcam=0.2"],
                                  kind="tolerance")
    assert tolerances.get("pointing_game", "gradcam") == 0.2
    assert tolerances.source_of("pointing_game", "gradcam") == "command line"
    with pytest.raises(SettingsError, match="--hc-tolerance 'nope=1'"):
        build_thresholds({}, ["nope=1"], kind="tolerance")
    with pytest.raises(SettingsError, match=r"no tolerance for 'x' in \[tool.heatcheck.tolerances\]"):
        tolerances.get("x")


# --------------------------------------------------------------------------- loading
def test_a_results_file_or_its_folder_is_a_baseline(tmp_path):
    path = write(tmp_path, results())
    assert load_baseline(path).path == path
    assert load_baseline(tmp_path).path == path


@pytest.mark.parametrize(("content", "message"), [
    (None, "file not found"),
    ("{not json", "cannot read it as results.json (JSONDecodeError"),
    ("[1, 2]", "not a results.json (a JSON list)"),
    ({"schema": "heatcheck/0", "checks": []}, "schema 'heatcheck/0', this heatcheck reads 'heatcheck/1'"),
    ({"checks": []}, "schema None"),
    ({"schema": SCHEMA, "fatal": "model file not found", "checks": []},
     "that run stopped (model file not found)"),
    ({"schema": SCHEMA, "status": "incomplete", "not_run": ["a", "b"], "checks": []},
     "that run is incomplete (2 test(s) did not run)"),
    ({"schema": SCHEMA, "verdict": "pass"}, "has no checks"),
])
def test_unusable_baselines_are_refused_with_one_line(tmp_path, content, message):
    path = tmp_path / "results.json"
    if content is not None:
        write(tmp_path, content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(BaselineError, match=None) as info:
        load_baseline(path)
    assert message in str(info.value)
    assert str(info.value).startswith(f"--hc-baseline {path}")
    assert "\n" not in str(info.value)


def test_a_folder_without_results_is_refused(tmp_path):
    with pytest.raises(BaselineError, match="no results.json in this folder"):
        load_baseline(tmp_path)


def test_other_settings_are_refused_naming_each_difference(tmp_path):
    baseline = load_baseline(write(tmp_path, results()))
    assert check_settings(baseline, audit_settings(Settings())).notes == ()
    other = audit_settings(Settings(seed=1, profile=PROFILES["smoke"]))
    with pytest.raises(BaselineError) as info:
        check_settings(baseline, other)
    line = str(info.value)
    assert ("other settings: seed 0 (baseline) vs 1 (this run); profile ci (baseline) vs smoke (this run)"
            in line)
    assert "sanity_images 8 (baseline) vs 5 (this run)" in line
    assert "\n" not in line


def test_a_different_model_is_not_a_different_audit(tmp_path):
    baseline = load_baseline(write(tmp_path, results()))
    assert check_settings(baseline, audit_settings(Settings(model="bench:shortcut", layer="x",
                                                            engine="tf-keras-vis"))).notes == ()


def test_an_older_baseline_without_audit_settings_is_checked_on_seed_and_profile(tmp_path):
    old = results(environment={"seed": 0, "profile": "ci"})
    baseline = check_settings(load_baseline(write(tmp_path, old)), audit_settings(Settings()))
    assert "only the seed and profile were checked" in baseline.notes[0]
    with pytest.raises(BaselineError, match="seed 0 .baseline. vs 3 .this run."):
        check_settings(baseline, audit_settings(Settings(seed=3)))


def test_the_image_set_must_be_the_same(tmp_path):
    baseline = load_baseline(write(tmp_path, results()))
    same = [{"id": "a", "label": 0, "content_hash": "h1"}, {"id": "b", "label": 1, "content_hash": "h2"}]
    assert image_set_difference(baseline, same) is None
    assert image_set_notes(baseline) == []
    changed = [{**same[0], "content_hash": "other"}, same[1], {"id": "c", "label": 0, "content_hash": "h3"}]
    assert image_set_difference(baseline, changed) == (
        "another image set: 1 image(s) with other pixels, mask or label (first: a); "
        "1 image(s) only in this run (first: c)")
    relabelled = [same[0], {**same[1], "label": 2}]
    assert "other pixels, mask or label (first: b)" in image_set_difference(baseline, relabelled)
    assert image_set_difference(baseline, same[:1]) == (
        "another image set: 1 image(s) only in the baseline (first: b)")


def test_an_older_baseline_without_hashes_is_matched_by_id_and_label(tmp_path):
    old = results(images={"items": [{"id": "a", "label": 0}, {"id": "b", "label": 1}]})
    baseline = load_baseline(write(tmp_path, old))
    assert image_set_difference(baseline, [{"id": "a", "label": 0, "content_hash": "x"},
                                           {"id": "b", "label": 1, "content_hash": "y"}]) is None
    assert "matched by id and label only" in image_set_notes(baseline)[0]


def test_saving_copies_the_results_to_a_file_or_folder(tmp_path):
    source = write(tmp_path, results())
    assert save_baseline(source, tmp_path / "accepted.json").read_bytes() == source.read_bytes()
    folder = tmp_path / "baseline"
    folder.mkdir()
    assert save_baseline(source, folder) == folder / "results.json"
    assert save_baseline(source, tmp_path / "new-folder") == tmp_path / "new-folder" / "results.json"


# --------------------------------------------------------------------------- content hashes
def test_content_hashes_change_with_any_pixel_or_mask_bit():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    reference = content_hash(image, mask)
    assert content_hash(image.copy(), mask.copy()) == reference
    one_pixel = image.copy()
    one_pixel[7, 7, 2] ^= 1
    moved = np.roll(mask, 1, axis=0)
    assert len({reference, content_hash(one_pixel, mask), content_hash(image, moved),
                content_hash(image.reshape(4, 16, 3), mask.reshape(4, 16)),
                content_hash(image.astype(np.float32), mask)}) == 5
    assert content_hashes(np.stack([image, one_pixel]), np.stack([mask, mask])) == [
        reference, content_hash(one_pixel, mask)]
