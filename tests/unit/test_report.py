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


def test_sanity_and_stability_figures_are_added_when_their_data_is_there() -> None:
    results = make_results()
    steps = ["predictions", "dense", "last_conv"]
    results["checks"] += [
        {"audit": "sanity", "metric": "ssim", "method": "gradcam", "value": 0.2, "threshold": 0.5,
         "direction": "lower", "passed": True, "status": "passed",
         "details": {"steps": steps, "curve": [0.8, 0.5, 0.2]}},
        {"audit": "stability", "metric": "max_sensitivity", "method": "gradcam", "value": 0.1,
         "threshold": 0.2, "direction": "lower", "passed": True, "status": "passed",
         "details": {"levels": [0.01, 0.05], "values": [0.05, 0.1],
                     "counterexample": {"image": "img-2", "sigma": 0.031}}},
    ]
    arrays = make_arrays()
    arrays["sanity/gradcam"] = np.random.default_rng(1).random((4, 2, SIZE, SIZE))
    arrays["sanity_ids"] = np.array(["img-0", "img-2"])
    html = report.render(results, arrays)
    # 3 gallery rows + randomisation grid + similarity curves + stability plot
    assert img_count(html) == 6
    assert "Counterexample" in html
    assert "0.031" in html


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
        results["not_run"] = [EVIL]


@pytest.mark.parametrize(
    "where", ["class name", "image id", "model spec", "skip reason", "rejected source", "environment"])
def test_user_strings_are_escaped(where: str) -> None:
    results = make_results()
    _set(results, where)
    arrays = make_arrays()
    if where == "image id":
        arrays["ids"] = np.array(["img-0", EVIL, "img-2"])
    html = report.render(results, arrays)
    assert "<script>alert" not in html
    assert ESCAPED in html


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
    assert "1 passed · 1 failed · 1 skipped" in html


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
