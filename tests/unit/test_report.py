"""The HTML report: content, escaping, self-containment, graceful degradation, atomic writes."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heatcheck import report

EVIL = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
SIZE = 16


def make_results() -> dict[str, Any]:
    """Three images, one misclassified; one failing, one passing and one skipped check."""
    items = [
        {"id": "img-0", "label": 0, "label_name": "circle", "predicted": 0, "predicted_name": "circle",
         "confidence": 0.97, "correct": True},
        {"id": "img-1", "label": 1, "label_name": "square", "predicted": 0, "predicted_name": "circle",
         "confidence": 0.61, "correct": False},
        {"id": "img-2", "label": 1, "label_name": "square", "predicted": 1, "predicted_name": "square",
         "confidence": 0.88, "correct": True},
    ]
    checks = [
        {"audit": "localisation", "metric": "pointing_game", "method": "gradcam", "value": 0.8125,
         "threshold": 0.5, "direction": "higher", "passed": True, "status": "passed", "reason": None,
         "per_image": {"img-0": 1.0, "img-1": 0.5, "img-2": 1.0}},
        {"audit": "localisation", "metric": "energy_pointing_game", "method": "saliency",
         "value": 0.3141, "threshold": 0.5, "direction": "higher", "passed": False,
         "status": "failed", "reason": None, "per_image": {"img-0": 0.9, "img-1": 0.6, "img-2": 0.1}},
        {"audit": "faithfulness", "metric": "deletion_auc", "method": "gradcampp", "value": None,
         "threshold": None, "direction": "lower", "passed": None, "status": "skipped",
         "reason": "needs --faithfulness", "per_image": {}},
    ]
    return {
        "schema": "heatcheck/1", "verdict": "fail", "status": "complete", "not_run": [],
        "model": {"spec": "bench:clean", "sha256": "f" * 64, "input_shape": [SIZE, SIZE, 3],
                  "num_classes": 2, "class_names": ["circle", "square"], "device": "/CPU:0",
                  "conv_layer": "last_conv", "preprocess": "raw"},
        "images": {"spec": "bench:3", "count": 3, "items": items,
                   "rejected": [{"id": "row 7", "source": "x.png", "reason": "mask is empty"}]},
        "environment": {"tensorflow": "2.21.0", "seed": 0, "profile": "ci",
                        "thresholds_source": {"pointing_game.gradcam": "pyproject"}},
        "checks": checks,
        "summary": {"passed": 1, "failed": 1, "skipped": 1},
    }


def make_arrays(methods: tuple[str, ...] = ("saliency", "gradcam")) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    masks = np.zeros((3, SIZE, SIZE), dtype=bool)
    masks[:, 4:12, 4:12] = True
    arrays = {
        "ids": np.array(["img-0", "img-1", "img-2"]),
        "images": rng.integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8),
        "masks": masks,
    }
    for method in methods:
        arrays[f"map/{method}"] = rng.random((3, SIZE, SIZE), dtype=np.float32)
    return arrays


def img_count(html: str) -> int:
    return len(re.findall(r"<img\b", html))


def write_inputs(folder: Path, results: dict[str, Any], arrays: dict[str, np.ndarray] | None) -> None:
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    if arrays is not None:
        np.savez(folder / "maps.npz", **arrays)


# --------------------------------------------------------------------------- content
def test_render_shows_verdict_every_check_and_its_value() -> None:
    results = make_results()
    html = report.render(results, make_arrays())
    assert 'class="verdict fail"' in html
    assert ">FAIL<" in html
    for check in results["checks"]:
        assert check["method"] in html
        assert check["metric"] in html
        if check["value"] is not None:
            assert f">{report.fmt(check['value'])}<" in html
    assert "0.8125" in html
    assert "0.3141" in html
    assert "needs --faithfulness" in html  # the reason a check did not run


def test_one_image_per_gallery_row_and_nothing_else_without_details() -> None:
    html = report.render(make_results(), make_arrays())
    assert img_count(html) == 3


STEPS = ["predictions", "dense", "last_conv"]
LEVELS = ["gaussian:0.01", "gaussian:0.05", "brightness:0.05", "brightness:-0.05"]
COUNTEREXAMPLE_TEXT = ("gradcam breaks at σ = 0.00781, brightness +0.031 (noise seed 7) on image img-2: "
                       "SSIM 0.412")


def sanity_check(metric: str, method: str) -> dict[str, Any]:
    return {"audit": "sanity", "metric": metric, "method": method, "value": 0.2, "threshold": 0.5,
            "direction": "lower", "status": "passed",
            "details": {"steps": STEPS, "curve": [0.8, 0.5, 0.2], "independent_curve": [0.8, 0.6, 0.4]}}


def stability_checks(method: str, *, found: bool) -> list[dict[str, Any]]:
    """map_ssim per level, a sensitivity, and the hypothesis search (with or without a find)."""
    counterexample = {"image": "img-2", "sigma": 0.0078125, "brightness": 0.03125, "seed": 7,
                      "similarity": 0.412, "text": COUNTEREXAMPLE_TEXT} if found else None
    return [
        {"audit": "stability", "metric": "map_ssim", "method": method, "value": 0.83, "threshold": 0.7,
         "direction": "higher", "status": "passed",
         "details": {"levels": LEVELS, "values": [0.95, 0.8, 0.9, None], "discarded_share": 0.0625,
                     "relative_input_stability": 3.5}},
        {"audit": "stability", "metric": "max_sensitivity", "method": method, "value": 0.1,
         "threshold": 0.6, "direction": "lower", "status": "passed",
         "details": {"levels": LEVELS, "values": [0.05, 0.1, 0.07, 0.08], "discarded_share": 0.0625}},
        {"audit": "stability", "metric": "map_ssim_property", "method": method,
         "value": 0.412 if found else 0.9, "threshold": 0.5, "direction": "higher",
         "status": "failed" if found else "passed",
         "details": {"budget": {"max_sigma": 0.01, "max_brightness": 0.05, "max_examples": 10},
                     "examples_kept": 9, "counterexample": counterexample}},
    ]


def sanity_arrays(images: int) -> dict[str, np.ndarray]:
    arrays = make_arrays()
    arrays["sanity/gradcam"] = np.random.default_rng(1).random((4, images, SIZE, SIZE))
    arrays["sanity/saliency"] = np.random.default_rng(2).random((4, images, SIZE, SIZE))
    arrays["sanity_ids"] = np.array(["img-0", "img-2", "img-1"][:images])
    return arrays


def section(html: str, name: str) -> str:
    start = html.index(f'<section id="{name}"')
    return html[start:html.index("</section>", start)]


def test_sanity_and_stability_figures_are_added_when_their_data_is_there() -> None:
    results = make_results()
    results["checks"] += [
        sanity_check("cascading_ssim", "gradcam"), sanity_check("cascading_ssim", "saliency"),
        *stability_checks("gradcam", found=True), *stability_checks("saliency", found=False)]
    html = report.render(results, sanity_arrays(2))
    # 3 gallery rows + 2 randomisation grids (two images) + 1 curves figure + 1 map-SSIM plot per method
    assert img_count(html) == 3 + 2 + 1 + 2
    sanity_html = section(html, "sanity")
    assert "Image img-0:" in sanity_html
    assert "Image img-2:" in sanity_html
    assert "dashed, independent randomisation" in sanity_html


@pytest.mark.parametrize(("images", "grids"), [(1, 1), (2, 2), (3, 2)])
def test_one_or_two_images_of_cascading_randomisation(images: int, grids: int) -> None:
    html = report.render(make_results(), sanity_arrays(images))
    assert section(html, "sanity").count("<img") == grids


def test_sanity_curves_come_from_either_curve_alone() -> None:
    check = sanity_check("cascading_ssim", "gradcam")
    del check["details"]["curve"]
    assert report.sanity_curves([check]) is not None
    check["details"].pop("independent_curve")
    assert report.sanity_curves([check]) is None


def test_stability_shows_the_counterexample_in_a_highlighted_box() -> None:
    results = make_results()
    results["checks"] += stability_checks("gradcam", found=True)
    stability_html = section(report.render(results), "stability")
    found = stability_html[stability_html.index('class="found"'):]
    assert "Smallest breaking perturbation found" in found
    assert COUNTEREXAMPLE_TEXT in found
    assert "6.2%" in stability_html  # discarded share
    assert "3.5" in stability_html  # relative input stability
    assert stability_html.count("<img") == 1


def test_stability_says_when_hypothesis_found_nothing() -> None:
    results = make_results()
    results["checks"] += stability_checks("saliency", found=False)
    stability_html = section(report.render(results), "stability")
    assert 'class="found"' not in stability_html
    assert "hypothesis found none in 9 examples" in stability_html
    assert "max sigma 0.01" in stability_html


def test_stability_with_numeric_levels_and_no_search() -> None:
    # An older results file: numeric noise levels, no hypothesis search recorded.
    results = make_results()
    results["checks"].append({"audit": "stability", "metric": "map_ssim", "method": "gradcam", "value": 0.9,
                              "threshold": 0.7, "direction": "higher", "status": "passed",
                              "details": {"levels": [0.01, 0.05], "values": [0.95, 0.85]}})
    stability_html = section(report.render(results), "stability")
    assert stability_html.count("<img") == 1
    assert "Discarded (prediction changed): unknown" in stability_html


def test_page_is_self_contained() -> None:
    html = report.render(make_results(), make_arrays())
    assert "http://" not in html
    assert "https://" not in html
    assert "<link" not in html
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources
    assert all(s.startswith("data:image/png;base64,") for s in sources)


def test_failing_checks_are_listed_before_passing_ones() -> None:
    html = report.render(make_results(), make_arrays())
    table = html[html.index('id="checks-table"'):]
    assert table.index("energy_pointing_game") < table.index(">pointing_game<")


def test_label_consistency_lists_the_misclassified_image() -> None:
    html = report.render(make_results())
    section = html[html.index('id="labels"'):html.index('id="localisation"')]
    assert "img-1" in section
    assert "0.61" in section
    assert "img-0" not in section


def test_misclassified_then_worst_localised_images_come_first_in_the_gallery() -> None:
    results = make_results()
    items = {i["id"]: i for i in results["images"]["items"]}
    order = report.gallery_order(["img-0", "img-1", "img-2"], items, results["checks"])
    # img-1 is misclassified; img-2 has the lowest score of the failing localisation check.
    assert order == [1, 2, 0]


def test_localisation_means_per_class() -> None:
    results = make_results()
    html = report.render(results)
    section = html[html.index('id="localisation"'):]
    # energy_pointing_game of saliency: circle = 0.9, square = mean(0.6, 0.1) = 0.35
    assert '<td class="num">0.9</td><td class="num">0.35</td>' in section


def test_gallery_is_capped_with_a_note() -> None:
    html = report.render(make_results(), make_arrays(), max_gallery=1)
    assert img_count(html) == 1
    assert "2 of 3 images left out" in html


def test_colour_blind_colormap_and_unknown_colormap() -> None:
    assert img_count(report.render(make_results(), make_arrays(), colormap="cividis")) == 3
    with pytest.raises(ValueError, match="unknown colormap"):
        report.render(make_results(), make_arrays(), colormap="no-such-map")


def test_errors_are_listed_and_counted() -> None:
    results = make_results()
    results["errors"] = [{"test": "audits/test_sanity.py::test_data_randomisation[gradcam-ssim]",
                          "when": "setup", "message": "FileNotFoundError: bench:random-labels"}]
    results["summary"]["errors"] = 1
    html = report.render(results)
    assert "1 passed · 1 failed · 0 inconclusive · 1 skipped\n    · 1 error" in html
    errors_html = html[html.index('id="errors"'):]
    assert "test_data_randomisation[gradcam-ssim]" in errors_html
    assert "(in setup)" in errors_html
    assert "FileNotFoundError: bench:random-labels" in errors_html
    # the list sits with the checks, before the next section
    assert html.index('id="errors"') < html.index('id="labels"')


def test_errors_alone_make_a_derived_verdict_fail() -> None:
    results = make_results()
    del results["verdict"], results["summary"]
    results["checks"] = [results["checks"][0]]  # one passing check
    results["errors"] = ["audits/test_sanity.py::test_data_randomisation[noise-ssim]"]
    html = report.render(results)
    assert ">FAIL<" in html
    assert "0 skipped\n    · 1 error" in html
    assert "no message recorded" in html


def test_a_stopped_run_says_what_did_not_run_and_what_the_numbers_are() -> None:
    results = make_results()
    results.update(verdict="incomplete", status="incomplete",
                   not_run=["audits/test_stability.py::test_stability[gradcam-map_ssim]"])
    banner = html_between(report.render(results), 'id="stopped"', "</div>")
    assert "test_stability[gradcam-map_ssim]" in banner
    assert "what was computed before it stopped" in banner
    results["not_run"] = []  # interrupted: pytest could not say which tests were left
    banner = html_between(report.render(results), 'id="stopped"', "</div>")
    assert "was not recorded" in banner
    assert 'id="stopped"' not in report.render(make_results())


def html_between(html: str, start: str, end: str) -> str:
    """The text from ``start`` to ``end``, runs of white space made one space (as a browser shows it)."""
    begin = html.index(start)
    return " ".join(html[begin:html.index(end, begin)].split())


def test_thresholds_set_on_the_command_line_are_marked() -> None:
    results = make_results()
    results["checks"][0]["threshold_source"] = "command line"
    results["checks"][1]["threshold_source"] = "pyproject"
    results["environment"]["thresholds_source"] = {"pointing_game.gradcam": "command line",
                                                   "energy_pointing_game": "pyproject"}
    html = report.render(results)
    table = html_between(html, 'id="checks-table"', "</table>")
    assert table.count('class="badge"') == 1
    row = html_between(table, ">pointing_game<", "</tr>")
    assert ">cli</span>" in row
    sources = html_between(html, 'id="threshold-sources"', "</details>")
    assert "Thresholds set on the command line" in sources
    assert "1 from command line" in sources
    assert "1 from pyproject" in sources


def other_run() -> dict[str, Any]:
    """The same checks on another model: pointing_game now fails, and one check is new."""
    other = copy.deepcopy(make_results())
    other["model"]["spec"] = "bench:shortcut"
    other["checks"][0].update(value=0.25, status="failed", passed=False)
    other["checks"].append({"audit": "stability", "metric": "map_ssim", "method": "gradcam", "value": 0.9,
                            "threshold": 0.7, "direction": "higher", "status": "passed"})
    return other


def test_comparison_has_a_row_per_check_of_either_run_with_changes_first() -> None:
    html = report.render(make_results(), compare=other_run())
    compare = section(html, "compare")
    assert "<h2>Compared with bench:shortcut</h2>" in compare
    body = compare[compare.index("<tbody>"):]
    assert body.count("<tr") == 4  # three shared checks (one skipped) and one only in the other run
    assert body.count('class="differs"') == 2  # pointing_game flips, map_ssim is absent here
    first = html_between(body, "<tr", "</tr>")
    assert 'class="differs"' in first
    assert ">pointing_game<" in first
    assert 'class="num better">+0.5625<' in first  # 0.8125 - 0.25, higher is better
    assert ">absent<" in body
    assert "2 of 4 checks have a different result" in " ".join(compare.split())


def test_comparison_with_a_run_without_checks() -> None:
    compare = section(report.render(make_results(), compare={}), "compare")
    assert "Compared with unknown" in compare
    assert compare.count('class="differs"') == 3  # every check is absent from the other run


def test_write_report_compares_with_another_runs_file(tmp_path: Path) -> None:
    (tmp_path / "this").mkdir()
    (tmp_path / "other").mkdir()
    write_inputs(tmp_path / "this", make_results(), None)
    write_inputs(tmp_path / "other", other_run(), None)
    for target in (tmp_path / "other" / "results.json", tmp_path / "other"):
        html = report.write_report(tmp_path / "this", compare_path=target).read_text(encoding="utf-8")
        assert "Compared with bench:shortcut" in html


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]", "\udcff"])
def test_a_missing_or_corrupt_compare_file_leaves_a_note(tmp_path: Path, content: str | None) -> None:
    write_inputs(tmp_path, make_results(), None)
    other = tmp_path / "other.json"
    if content is not None:
        other.write_bytes(content.encode("utf-8", "surrogateescape"))
    html = report.write_report(tmp_path, compare_path=other).read_text(encoding="utf-8")
    assert 'id="compare"' not in html
    assert "no comparison is shown" in html
    assert ">FAIL<" in html


def test_main_compares(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_inputs(tmp_path, make_results(), None)
    (tmp_path / "other.json").write_text(json.dumps(other_run()), encoding="utf-8")
    assert report.main([str(tmp_path), "--hc-compare", str(tmp_path / "other.json")]) == 0
    assert "Compared with bench:shortcut" in (tmp_path / "index.html").read_text(encoding="utf-8")
    assert report.main([str(tmp_path), "--hc-compare", str(tmp_path / "nowhere.json")]) == 0
    assert "no comparison is shown" in (tmp_path / "index.html").read_text(encoding="utf-8")
    capsys.readouterr()


def large_audit(count: int, size: int = 64) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``count`` images, 4 methods, 12 localisation checks with a score per image."""
    rng = np.random.default_rng(0)
    ids = [f"img-{k}" for k in range(count)]
    masks = np.zeros((count, size, size), dtype=bool)
    masks[:, size // 4: size // 2, size // 4: size // 2] = True
    arrays = {"ids": np.array(ids), "masks": masks,
              # noise photos: PNG's worst case, so the measured size is an upper bound
              "images": rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)}
    methods = ("saliency", "smoothgrad", "gradcam", "gradcampp")
    for method in methods:
        arrays[f"map/{method}"] = rng.random((count, size, size), dtype=np.float32)
    items = [{"id": i, "label": k % 4, "predicted": k % 4, "confidence": 0.9, "correct": k % 9 != 0}
             for k, i in enumerate(ids)]
    checks = [{"audit": "localisation", "metric": metric, "method": method, "value": 0.3, "threshold": 0.5,
               "direction": "higher", "status": "failed",
               "per_image": dict(zip(ids, rng.random(count).tolist(), strict=True))}
              for method in methods for metric in ("pointing_game", "energy_pointing_game", "rank")]
    results = {"verdict": "fail", "model": {"spec": "big", "class_names": list("abcd")},
               "images": {"count": count, "items": items}, "checks": checks}
    return results, arrays


def test_a_thousand_images_stay_under_20_mb() -> None:
    # Measured: 8.8 MB (200 gallery rows of 5 panels, noise photos) in about 4 s on 2 cores.
    html = report.render(*large_audit(1000))
    assert len(html.encode("utf-8")) < 20_000_000
    assert img_count(html) == report.MAX_GALLERY
    assert f"{report.MAX_GALLERY} of 1000 images shown; {1000 - report.MAX_GALLERY} left out" in html
    assert f"{1000 - report.MAX_GALLERY} of 1000 images left out" in html


def test_a_run_that_kept_the_first_images_says_so() -> None:
    """A run keeps arrays for MAX_GALLERY images only; the page counts every image."""
    results, arrays = large_audit(300)
    per_row = ("ids", "images", "masks")
    kept = {k: v[: report.MAX_GALLERY] if k in per_row or k.startswith("map/") else v
            for k, v in arrays.items()}
    html = report.render(results, kept)
    assert img_count(html) == report.MAX_GALLERY
    assert f"{report.MAX_GALLERY} of 300 images shown; {300 - report.MAX_GALLERY} left out" in html
    assert f"the run keeps the maps of {report.MAX_GALLERY} images for the gallery, misclassified" in html


# --------------------------------------------------------------------------- escaping
def _set(results: dict[str, Any], where: str) -> None:
    if where == "class name":
        results["model"]["class_names"][0] = EVIL
        results["images"]["items"][1]["predicted_name"] = EVIL
    elif where == "image id":
        results["images"]["items"][1]["id"] = EVIL
        results["checks"][1]["per_image"][EVIL] = 0.0
    elif where == "model spec":
        results["model"]["spec"] = EVIL
    elif where == "skip reason":
        results["checks"][2]["reason"] = EVIL
    elif where == "rejected source":
        results["images"]["rejected"][0]["source"] = EVIL
    elif where == "environment":
        results["environment"]["git_commit"] = EVIL
        results["environment"]["thresholds_source"] = {EVIL: "command line"}
        results["not_run"] = [EVIL]
    elif where == "error":
        results["errors"] = [{"test": EVIL, "when": EVIL, "message": EVIL}]
    elif where == "counterexample":
        results["checks"] += stability_checks(EVIL, found=True)
        results["checks"][-1]["details"]["counterexample"]["text"] = EVIL
        results["checks"][-1]["details"]["budget"] = {EVIL: EVIL}


@pytest.mark.parametrize(
    "where", ["class name", "image id", "model spec", "skip reason", "rejected source", "environment",
              "error", "counterexample"])
def test_user_strings_are_escaped(where: str) -> None:
    results = make_results()
    _set(results, where)
    arrays = make_arrays()
    if where == "image id":
        arrays["ids"] = np.array(["img-0", EVIL, "img-2"])
    html = report.render(results, arrays)
    assert "<script>alert" not in html
    assert ESCAPED in html


@pytest.mark.parametrize("where", ["spec", "metric", "method"])
def test_strings_of_the_compared_run_are_escaped(where: str) -> None:
    other = other_run()
    if where == "spec":
        other["model"]["spec"] = EVIL
    else:
        other["checks"][-1][where] = EVIL
    html = report.render(make_results(), compare=other)
    assert "<script>alert" not in html
    assert ESCAPED in section(html, "compare")


def test_dollar_signs_in_names_do_not_break_the_figures() -> None:
    # Matplotlib would parse "$...$" as mathtext and may fail on it.
    results = make_results()
    results["images"]["items"][0]["label_name"] = "cost $5 \\frac{"
    assert img_count(report.render(results, make_arrays())) == 3


# --------------------------------------------------------------------------- degradation
def test_missing_optional_keys_still_render() -> None:
    results = make_results()
    del results["environment"], results["model"]["sha256"], results["summary"]
    for check in results["checks"]:
        check.pop("details", None)
        check.pop("status", None)
    html = report.render(results, make_arrays())
    assert "unknown" in html  # the model hash
    assert "1 passed · 1 failed · 0 inconclusive · 1 skipped" in html


@pytest.mark.parametrize("results", [{}, {"checks": None, "model": None, "images": None}])
def test_empty_results_render_as_incomplete(results: dict[str, Any]) -> None:
    html = report.render(results)
    assert ">INCOMPLETE<" in html
    assert img_count(html) == 0


def test_incomplete_run_lists_what_did_not_run() -> None:
    results = make_results()
    results.update(verdict="incomplete", status="incomplete",
                   not_run=["audits/test_sanity.py::test_randomisation[gradcam]"])
    html = report.render(results)
    assert ">INCOMPLETE<" in html
    assert "audits/test_sanity.py::test_randomisation[gradcam]" in html


@pytest.mark.parametrize(
    ("recorded", "shown"), [("pass", "INCOMPLETE"), ("fail", "FAIL"), (None, "FAIL")])
def test_verdict_is_never_pass_for_a_partial_run(recorded: str | None, shown: str) -> None:
    results = make_results()
    results.update(verdict=recorded, not_run=["audits/test_sanity.py::test_randomisation[noise]"])
    assert f">{shown}<" in report.render(results)


def test_awkward_maps_render() -> None:
    arrays = make_arrays()
    arrays["map/saliency"][0] = np.nan  # all-NaN map
    arrays["map/gradcam"][1] = 0.5  # constant map
    arrays["masks"][2] = False  # empty mask: no outline to draw
    arrays["masks"][0] = True  # full mask
    assert img_count(report.render(make_results(), arrays)) == 3


def test_arrays_that_do_not_fit_are_left_out_with_a_note() -> None:
    arrays = make_arrays()
    arrays["map/gradcam"] = arrays["map/gradcam"][:, :8]
    html = report.render(make_results(), arrays)
    assert img_count(html) == 3
    assert "Maps of gradcam have shape" in html
    del arrays["masks"]
    html = report.render(make_results(), arrays)
    assert img_count(html) == 0
    assert "has no masks" in html


# --------------------------------------------------------------------------- files
def test_write_report_writes_index_atomically(tmp_path: Path) -> None:
    write_inputs(tmp_path, make_results(), make_arrays())
    path = report.write_report(tmp_path)
    assert path == tmp_path / "index.html"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "maps.npz", "results.json"]
    assert img_count(path.read_text(encoding="utf-8")) == 3


def test_a_failed_rebuild_leaves_the_old_page_and_no_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_inputs(tmp_path, make_results(), None)
    (tmp_path / "index.html").write_text("old page", encoding="utf-8")

    def failing_replace(source: str, target: Path) -> None:
        raise OSError("disk full")

    # os.replace is patched process-wide: keep it patched only around the call under test.
    with monkeypatch.context() as patch:
        patch.setattr(report.os, "replace", failing_replace)
        with pytest.raises(OSError, match="disk full"):
            report.write_report(tmp_path)
    assert (tmp_path / "index.html").read_text(encoding="utf-8") == "old page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "results.json"]


def test_write_report_without_maps_file(tmp_path: Path) -> None:
    write_inputs(tmp_path, make_results(), None)
    html = report.write_report(tmp_path).read_text(encoding="utf-8")
    assert img_count(html) == 0
    assert "No maps.npz" in html
    assert ">FAIL<" in html


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04 truncated", b""])
def test_write_report_with_corrupt_maps_file(tmp_path: Path, content: bytes) -> None:
    write_inputs(tmp_path, make_results(), None)
    (tmp_path / "maps.npz").write_bytes(content)
    html = report.write_report(tmp_path).read_text(encoding="utf-8")
    assert img_count(html) == 0
    assert "maps.npz could not be read" in html


def test_write_report_with_maps_that_are_not_plain_data(tmp_path: Path) -> None:
    write_inputs(tmp_path, make_results(), None)
    # An object array needs pickle to load; the report refuses to unpickle a data file.
    np.savez(tmp_path / "maps.npz", ids=np.array([{"a": 1}], dtype=object))
    assert "maps.npz could not be read" in report.write_report(tmp_path).read_text(encoding="utf-8")
    with (tmp_path / "maps.npz").open("wb") as handle:
        np.save(handle, np.zeros(3))  # a lone .npy under the .npz name
    assert "not an .npz archive" in report.write_report(tmp_path).read_text(encoding="utf-8")


def test_main_rebuilds_from_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = copy.deepcopy(make_results())
    write_inputs(tmp_path, results, make_arrays())
    assert report.main([str(tmp_path), "--max-gallery", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "index.html")
    assert img_count((tmp_path / "index.html").read_text(encoding="utf-8")) == 2
    assert report.main([str(tmp_path / "missing")]) == 2
    assert "results.json" in capsys.readouterr().err


def test_faithfulness_section_draws_the_deletion_curves() -> None:
    results = make_results()
    results["checks"].append({
        "audit": "faithfulness", "metric": "deletion_auc_over_random", "method": "gradcam", "value": 0.4,
        "threshold": 0.8, "direction": "lower", "passed": True, "status": "passed",
        "details": {"fractions": [0.0, 0.1, 0.3], "curve": [0.9, 0.3, 0.1],
                    "random_curve": [0.9, 0.8, 0.6], "random_auc": 0.8}})
    html = report.render(results)
    assert img_count(section(html, "faithfulness")) == 1
    assert 'id="faithfulness"' not in report.render(make_results())
