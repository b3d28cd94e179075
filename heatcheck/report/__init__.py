"""Build the self-contained HTML report (``index.html``) from results.json-shaped data.

The report reads plain data only (the results dict and, optionally, the arrays of
``maps.npz``), never live models or pytest objects, so ``python -m heatcheck.report reports/``
rebuilds a page from files alone. Anything may be missing from an older or partial run:
each section then shows "unknown" or a note instead of failing.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from heatcheck.explain import methods as registry
from heatcheck.report import baseline_section, coverage, figures, schema
from heatcheck.report.schema import CheckRecord, Results
from heatcheck.report.schema import mapping as _mapping
from heatcheck.report.schema import number as _number
from heatcheck.report.schema import sequence as _sequence
from heatcheck.report.summaries import family_summaries

TEMPLATE = "report.html.j2"
# The order in which methods appear in the gallery (controls last: they show what failing is).
VERDICT_CSS = {"pass": "pass", "fail": "fail", "incomplete": "incomplete"}
UNKNOWN = "unknown"
WORST_SHOWN = 5
CLASS_NAMES_SHOWN = 20
# results.json's name for a threshold set with `--hc-threshold metric[.method]=value` (settings.py).
CLI_SOURCE = "command line"
# Sanity grids drawn: the issue asks for "one or two images"; more would dwarf the curves.
SANITY_IMAGES = 2
# Gallery rows drawn by default; the rest are counted on the page, never silently dropped. A row
# is 80 px panels whatever the image size, so the page is bounded by this cap, not by the data
# set. Measured with 1,000 synthetic 64 x 64 images, 4 methods and per-image scores for 12 checks
# (test_a_thousand_images_stay_under_20_mb): 8.8 MB for the whole page with noise photos (PNG's
# worst case), 3.6 s; bench photos make about 25 KB per row (5 MB for 200 rows).
MAX_GALLERY = 200

Row = tuple[str, str]


# --------------------------------------------------------------------------- small helpers
def fmt(value: Any) -> str:
    """Text for one value in the page: 4 significant digits for floats, "—" for None."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return "NaN" if math.isnan(value) else f"{float(value):.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _mean(values: Iterable[Any]) -> float | None:
    numbers = [n for n in (_number(v) for v in values) if n is not None]
    return sum(numbers) / len(numbers) if numbers else None


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def errors(results: Results) -> list[dict[str, str]]:
    """Tests that errored (setup, a crash in the call, teardown), with the recorded message."""
    return [{key: fmt(value) for key, value in error.items()} for error in results["errors"]]


def verdict(results: Mapping[str, Any]) -> str:
    """The verdict of results.json-shaped ``results`` as the page shows it (heatcheck.report.schema:
    the recorded one, "incomplete" for a recorded pass with tests that did not run, or one
    derived from the checks when an older run has none)."""
    return schema.read_results(results)["verdict"]


def _model_rows(model: Mapping[str, Any]) -> list[Row]:
    names = _sequence(model.get("class_names"))
    shown = fmt(names[:CLASS_NAMES_SHOWN]) + (f" … ({len(names)} in all)"
                                               if len(names) > CLASS_NAMES_SHOWN else "")
    shape = model.get("input_shape")
    rows = [
        ("spec", fmt(model.get("spec", UNKNOWN))),
        ("sha256", fmt(model.get("sha256") or UNKNOWN)),
        ("input shape", " × ".join(map(str, shape)) if isinstance(shape, list) else UNKNOWN),
        ("classes", fmt(model.get("num_classes", UNKNOWN))),
        ("class names", shown if names else UNKNOWN),
    ]
    rows += [(key.replace("_", " "), fmt(model.get(key, UNKNOWN)))
             for key in ("device", "conv_layer", "preprocess")]
    known = {"spec", "sha256", "input_shape", "num_classes", "class_names", "device",
             "conv_layer", "preprocess"}
    return rows + [(key, fmt(value)) for key, value in model.items() if key not in known]


def _image_set(images: Mapping[str, Any]) -> dict[str, Any]:
    rejected = []
    for entry in _sequence(images.get("rejected")):
        # Older runs may have recorded a bare reason string per rejected row.
        row = entry if isinstance(entry, Mapping) else {"reason": entry}
        rejected.append({key: fmt(row.get(key, UNKNOWN)) for key in ("id", "source", "reason")})
    rows = [("spec", fmt(images.get("spec", UNKNOWN))), ("count", fmt(images.get("count", UNKNOWN))),
            ("rejected", str(len(rejected)))]
    fractions = _mapping(images.get("mask_fraction"))
    histogram = _mapping(fractions.get("histogram"))
    edges, counts = _sequence(histogram.get("bin_edges")), _sequence(histogram.get("counts"))
    bins = [(f"{fmt(lo)}–{fmt(hi)}", fmt(n)) for lo, hi, n in zip(edges, edges[1:], counts, strict=False)]
    if fractions:
        spread = f"min {fmt(fractions.get('min'))}, max {fmt(fractions.get('max'))}"
        rows.append(("mask fraction", f"median {fmt(fractions.get('median'))} ({spread})"))
    return {"rows": rows, "rejected": rejected, "fraction_bins": bins}


def _environment(environment: Mapping[str, Any]) -> dict[str, Any]:
    """Environment rows, and where each threshold came from (command-line ones apart: they
    are the ones a reader must know about, since pyproject is what the repository says)."""
    sources = sorted((str(key), fmt(value)) for key, value in
                     _mapping(environment.get("thresholds_source")).items())
    return {
        "rows": [(key, fmt(value)) for key, value in environment.items()
                 if key != "thresholds_source"],
        "thresholds": sources,
        "cli_thresholds": [(key, source) for key, source in sources if source == CLI_SOURCE],
        "threshold_counts": ", ".join(f"{count} from {source}" for source, count in
                                      Counter(source for _, source in sources).most_common()),
    }


# --------------------------------------------------------------------------- checks
def _calibration(check: CheckRecord) -> dict[str, Any]:
    """A calibrated check's comparison with its controls, as the page shows it (empty for others)."""
    interval = _sequence(check["interval"])
    if len(interval) != 2:
        return {"calibrated": False}
    details = _mapping(check["details"])
    controls = _mapping(check["controls"])
    return {"calibrated": True, "effect": fmt(check["effect"]),
            "interval": f"[{fmt(interval[0])}, {fmt(interval[1])}]", "control": fmt(check["control"]),
            "controls": [(fmt(name), fmt(value)) for name, value in controls.items()],
            "raw": fmt(details.get("raw")), "chance": fmt(details.get("chance")),
            "images_scored": fmt(details.get("images_scored")),
            "left_out": len(_mapping(details.get("left_out")))}


def _check_row(check: CheckRecord) -> dict[str, Any]:
    value, threshold = check["value"], check["threshold"]
    return {**_calibration(check),
        "audit": fmt(check["audit"]), "metric": fmt(check["metric"]),
        "method": fmt(check["method"]),
        "value": fmt(value), "value_key": _sort_key(value),
        "threshold": fmt(threshold), "threshold_key": _sort_key(threshold),
        "direction": fmt(check["direction"]), "status": check["status"],
        "reason": fmt(check["reason"] or "no reason recorded"),
        "threshold_source": fmt(check["threshold_source"] or UNKNOWN),
        "cli": check["threshold_source"] == CLI_SOURCE,
    }


def _sort_key(value: Any) -> str:
    number = _number(value)
    return "" if number is None else repr(number)


def check_tables(checks: Sequence[CheckRecord]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(checks that ran, failing first, then inconclusive, then passed; checks that were skipped)."""
    rows = [_check_row(c) for c in checks]
    ran = [r for status in ("failed", "inconclusive", "passed") for r in rows if r["status"] == status]
    return ran, [r for r in rows if r["status"] == "skipped"]


def label_mismatches(items: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Images whose label disagrees with the model's prediction, most confident first (a
    confident disagreement is the likeliest sign of a wrong label)."""
    wrong = [i for i in items if i.get("correct") is False or (
        "correct" not in i and "predicted" in i and i.get("label") != i.get("predicted"))]
    wrong.sort(key=lambda i: -(_number(i.get("confidence")) or 0.0))
    return [{"id": fmt(i.get("id", UNKNOWN)),
             "label": fmt(i.get("label_name", i.get("label", UNKNOWN))),
             "predicted": fmt(i.get("predicted_name", i.get("predicted", UNKNOWN))),
             "confidence": fmt(i.get("confidence"))} for i in wrong]


# --------------------------------------------------------------------------- localisation
def class_of(item: Mapping[str, Any], class_names: Sequence[Any]) -> str:
    """The class name of an image record: its label_name, else the model's name for its label."""
    if item.get("label_name") is not None:
        return str(item["label_name"])
    label = item.get("label")
    if isinstance(label, int) and 0 <= label < len(class_names):
        return str(class_names[label])
    return UNKNOWN if label is None else str(label)


def _worst(per_image: Mapping[str, Any], direction: Any) -> list[Row]:
    scored = [(key, n) for key, n in ((k, _number(v)) for k, v in per_image.items()) if n is not None]
    scored.sort(key=lambda pair: pair[1], reverse=direction == "lower")
    return [(str(key), fmt(value)) for key, value in scored[:WORST_SHOWN]]


def localisation(checks: Sequence[CheckRecord], classes_by_id: Mapping[str, str],
                 class_order: Sequence[str]) -> list[dict[str, Any]]:
    """Per metric, one row per method: value, per-class means of per_image and worst images."""
    tables: dict[str, dict[str, Any]] = {}
    for check in checks:
        if check["audit"] != "localisation" or check["status"] == "skipped":
            continue
        per_image = _mapping(check["per_image"])
        by_class: dict[str, list[Any]] = {}
        for image_id, score in per_image.items():
            by_class.setdefault(classes_by_id.get(str(image_id), UNKNOWN), []).append(score)
        table = tables.setdefault(fmt(check["metric"]), {"rows": [], "classes": set()})
        table["classes"].update(by_class)
        table["rows"].append({"row": _check_row(check),
                              "by_class": {c: _mean(v) for c, v in by_class.items()},
                              "worst": _worst(per_image, check["direction"])})
    return [_localisation_table(metric, table, class_order) for metric, table in tables.items()]


def _localisation_table(metric: str, table: dict[str, Any], class_order: Sequence[str]) -> dict[str, Any]:
    present = table["classes"]
    classes = [c for c in class_order if c in present] + sorted(present - set(class_order))
    rows = [{**r["row"], "class_means": [fmt(r["by_class"].get(c)) for c in classes], "worst": r["worst"]}
            for r in table["rows"]]
    return {"metric": metric, "classes": classes, "rows": rows}


# --------------------------------------------------------------------------- arrays
def ids_of(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Image ids as str, whether saved as unicode or bytes."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(arrays["ids"]).tolist()]


def method_keys(arrays: Mapping[str, np.ndarray], prefix: str) -> list[str]:
    """Methods with a ``prefix/<method>`` array, in registry order, then any others by name."""
    return registry.in_order(key[len(prefix) + 1:] for key in arrays if key.startswith(prefix + "/"))


def validate_arrays(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray] | None, list[str]]:
    """The arrays the gallery can use, and notes on what had to be dropped and why."""
    missing = [k for k in ("ids", "images", "masks") if k not in arrays]
    if missing:
        return None, [f"The maps file has no {', '.join(missing)}: the report has no galleries."]
    ids, images, masks = (np.asarray(arrays[k]) for k in ("ids", "images", "masks"))
    if ids.ndim != 1 or images.ndim not in (3, 4) or masks.ndim != 3 or not (
            len(ids) == len(images) == len(masks)) or images.shape[1:3] != masks.shape[1:]:
        return None, [f"The maps file's ids {ids.shape}, images {images.shape} and masks "
                      f"{masks.shape} do not fit together: the report has no galleries."]
    usable: dict[str, np.ndarray] = {"ids": ids, "images": images, "masks": masks}
    notes = []
    for method in method_keys(arrays, "map"):
        maps = np.asarray(arrays[f"map/{method}"])
        if maps.shape == masks.shape:
            usable[f"map/{method}"] = maps
        else:
            notes.append(f"Maps of {method} have shape {maps.shape}, not {masks.shape}: left out.")
    for method in method_keys(arrays, "sanity"):
        maps = np.asarray(arrays[f"sanity/{method}"])
        if maps.ndim == 4 and maps.shape[0] >= 1 and maps.shape[1] >= 1:
            usable[f"sanity/{method}"] = maps
    if "sanity_ids" in arrays:
        usable["sanity_ids"] = np.asarray(arrays["sanity_ids"])
    return usable, notes


# --------------------------------------------------------------------------- gallery
def gallery_order(ids: Sequence[str], items_by_id: Mapping[str, Mapping[str, Any]],
                  checks: Sequence[CheckRecord]) -> list[int]:
    """Indices of ``ids``, failing images first: wrong predictions, then, against a baseline,
    the images that got worst over the regressed checks; otherwise the lowest mean per-image
    score over failed localisation checks ("lower is better" metrics negated)."""
    failed = [c for c in checks if c["audit"] == "localisation" and c["status"] == "failed"]
    changes = baseline_section.image_changes(checks)

    def badness(image_id: str) -> float:
        if changes:
            return changes[image_id][0] if image_id in changes else math.inf
        scores = []
        for check in failed:
            score = _number(_mapping(check["per_image"]).get(image_id))
            if score is not None:
                scores.append(-score if check["direction"] == "lower" else score)
        return sum(scores) / len(scores) if scores else math.inf

    def key(index: int) -> tuple[bool, float, int]:
        item = items_by_id.get(ids[index], {})
        return item.get("correct") is not False, badness(ids[index]), index

    return sorted(range(len(ids)), key=key)


def _caption(image_id: str, item: Mapping[str, Any]) -> str:
    label = item.get("label_name", item.get("label", "?"))
    predicted = item.get("predicted_name", item.get("predicted", "?"))
    confidence = _number(item.get("confidence"))
    shown = f" ({confidence:.2f})" if confidence is not None else ""
    mark = "  ✗" if item.get("correct") is False else ""
    return f"{image_id} · label: {label} · predicted: {predicted}{shown}{mark}"


def gallery(arrays: Mapping[str, np.ndarray], items_by_id: Mapping[str, Mapping[str, Any]],
            checks: Sequence[CheckRecord], *, colormap: str, max_gallery: int) -> dict[str, Any]:
    """One PNG row per image of the arrays (a run keeps MAX_GALLERY images, misclassified ones
    first), failing images first, at most ``max_gallery`` rows."""
    ids = ids_of(arrays)
    methods = method_keys(arrays, "map")
    order = gallery_order(ids, items_by_id, checks)
    changes = baseline_section.image_changes(checks)
    rows = []
    for index in order[:max(0, max_gallery)]:
        item = items_by_id.get(ids[index], {})
        caption = _caption(ids[index], item)
        png = figures.gallery_row(arrays["images"][index], arrays["masks"][index],
                                  [(m, arrays[f"map/{m}"][index]) for m in methods],
                                  caption, colormap=colormap)
        # Against a baseline: what got worse on this image, under the row (too long for the PNG's title).
        change = changes[ids[index]][1] if ids[index] in changes else ""
        rows.append({"src": _data_uri(png), "caption": f"{caption} · {change}" if change else caption,
                     "wrong": item.get("correct") is False, "change": change})
    # A run keeps the arrays of its first MAX_GALLERY images only; the items list every image.
    total = max(len(ids), len(items_by_id))
    return {"rows": rows, "methods": methods, "total": total, "left_out": total - len(rows), "kept": len(ids)}


# --------------------------------------------------------------------------- sanity, stability
def _details(check: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(check["details"])


def _numbers(values: Any) -> list[float] | None:
    """The list as floats (NaN for gaps), or None when it is not a list of numbers at all."""
    items = _sequence(values)
    numbers = [_number(v) for v in items]
    if not items or all(n is None for n in numbers):
        return None
    return [math.nan if n is None else n for n in numbers]


def _label(check: CheckRecord) -> str:
    return f"{check['method']} · {check['metric']}"


def step_labels(checks: Sequence[CheckRecord], method: str, count: int) -> list[str]:
    """Titles of the ``count`` columns of a randomisation grid: "original", then the layers."""
    for check in checks:
        steps = _sequence(check["details"].get("steps"))
        if check["method"] == method and len(steps) == count - 1:
            return ["original", *map(str, steps)]
    return ["original", *(f"step {k}" for k in range(1, count))]


def sanity(checks: Sequence[CheckRecord], arrays: Mapping[str, np.ndarray] | None,
           colormap: str) -> dict[str, Any]:
    """Cascading randomisation grids (the first SANITY_IMAGES of ``sanity_ids``) and the
    similarity curves, cascading solid and independent dashed."""
    checks = [c for c in checks if c["audit"] == "sanity"]
    return {"grids": sanity_grids(checks, arrays, colormap), "curves": sanity_curves(checks)}


def sanity_grids(checks: Sequence[CheckRecord], arrays: Mapping[str, np.ndarray] | None,
                 colormap: str) -> list[dict[str, str]]:
    """One figure per shown image: a row per method, a column per randomisation step."""
    methods = method_keys(arrays, "sanity") if arrays else []
    if not arrays or not methods:
        return []
    stacks = [(m, arrays[f"sanity/{m}"]) for m in methods]
    steps = max(len(maps) for _, maps in stacks)
    stacks = [(m, maps) for m, maps in stacks if len(maps) == steps]
    labels = step_labels(checks, stacks[0][0], steps)
    sanity_ids = [v.decode() if isinstance(v, bytes) else str(v)
                  for v in np.asarray(arrays.get("sanity_ids", np.array([]))).tolist()]
    photos = {image_id: index for index, image_id in enumerate(ids_of(arrays))}
    grids = []
    for k in range(min(SANITY_IMAGES, min(maps.shape[1] for _, maps in stacks))):
        image_id = sanity_ids[k] if k < len(sanity_ids) else UNKNOWN
        photo = arrays["images"][photos[image_id]] if image_id in photos else None
        png = figures.sanity_grid([(m, maps[:, k]) for m, maps in stacks], labels, colormap=colormap,
                                  photo=photo, heading=f"image {image_id}")
        grids.append({"src": _data_uri(png), "image": image_id})
    return grids


def sanity_curves(checks: Sequence[CheckRecord]) -> str | None:
    """One panel per similarity measure, one colour per method: each step's similarity to the
    original maps on the chance-normalised scale (1 = unchanged, 0 = as alike as the method's
    maps of different images, the chance band), the cascading curve solid and the independent
    one dashed. Runs recorded before normalisation show their raw curves."""
    panels: dict[str, list[figures.Series]] = {}
    ticks: dict[str, list[str] | None] = {}
    normalised = False
    for check in checks:
        details = check["details"]
        metric = fmt(check["metric"])
        if not metric.startswith("cascading_") or metric.endswith("_area"):
            continue  # data randomisation has no steps; an _area check repeats its step's curves
        method = fmt(check["method"])
        for key, dashed in (("curve", False), ("independent_curve", True)):
            curve = _numbers(details.get(f"normalised_{key}")) or _numbers(details.get(key))
            normalised = normalised or bool(_numbers(details.get(f"normalised_{key}")))
            if not curve:
                continue
            panels.setdefault(metric, []).append(figures.Series(
                f"{method} ({'independent' if dashed else 'cascading'})", list(range(len(curve))), curve,
                dashed=dashed, colour_of=method))
            steps = [str(step) for step in _sequence(details.get("steps"))]
            if len(steps) == len(curve) and len(steps) >= len(ticks.get(metric) or []):
                ticks[metric] = steps
    if not panels:
        return None
    png = figures.line_panels(
        [(metric, lines, _fitting_ticks(ticks.get(metric), lines)) for metric, lines in panels.items()],
        xlabel="randomised layer",
        ylabel="similarity to original, chance-normalised" if normalised else "similarity to original",
        styles=("cascading", "independent"),
        references=[(1.0, "unchanged"), (0.0, "chance: maps of other images")] if normalised else [])
    return _data_uri(png)


def faithfulness_curves(checks: Sequence[CheckRecord]) -> str | None:
    """Deletion and insertion (RISE): the mean probability of the label as pixels are removed
    (or restored) in each method's order, one panel per kind, the random orders dashed."""
    panels: dict[str, list[figures.Series]] = {}
    for check in checks:
        if check["audit"] != "faithfulness":
            continue
        details = check["details"]
        kind = fmt(details.get("kind", "deletion"))
        fractions = _numbers(details.get("fractions"))
        lines = panels.setdefault(kind, [])
        for key in ("curve", "random_curve"):
            curve = _numbers(details.get(key))
            if not curve or not fractions or len(curve) != len(fractions):
                continue
            if key == "curve":
                lines.append(figures.Series(fmt(check["method"]), fractions, curve))
            elif not any(line.label == "random order" for line in lines):
                lines.append(figures.Series("random order", fractions, curve, dashed=True))
    panels = {kind: lines for kind, lines in panels.items() if lines}
    if not panels:
        return None
    png = figures.line_panels([(kind, lines, None) for kind, lines in panels.items()],
                              xlabel="share of pixels removed (deletion) or restored (insertion)",
                              ylabel="probability of the label")
    return _data_uri(png)


def _fitting_ticks(ticks: list[str] | None, lines: Sequence[figures.Series]) -> list[str] | None:
    # Step names only where they label every point; otherwise plain step numbers.
    return ticks if ticks and len(ticks) == max(len(line.x) for line in lines) else None


def stability(checks: Sequence[CheckRecord]) -> list[dict[str, Any]]:
    """Per method: its stability checks, a plot of map SSIM against the perturbation level,
    the share of perturbed copies discarded, and what the hypothesis search found."""
    by_method: dict[str, list[CheckRecord]] = {}
    for check in checks:
        if check["audit"] == "stability" and check["status"] != "skipped":
            by_method.setdefault(fmt(check["method"]), []).append(check)
    return [_stability_card(method, by_method[method]) for method in registry.in_order(by_method)]


def _stability_card(method: str, checks: Sequence[CheckRecord]) -> dict[str, Any]:
    curves = [c for c in checks if _numbers(c["details"].get("values"))]
    # map_ssim is the plot the issue asks for; an older run may only have had other curves.
    plotted = next((c for c in curves if c["metric"] == "map_ssim"), curves[0] if curves else None)
    discarded = _first_number(checks, "discarded_share")
    stability_of_input = _first_number(checks, "relative_input_stability")
    return {
        "method": method, "rows": [_check_row(c) for c in checks],
        "plot": _level_plot(plotted) if plotted else None,
        "plot_metric": fmt(plotted.get("metric", UNKNOWN)) if plotted else None,
        "discarded": None if discarded is None else f"{discarded:.1%}",
        "relative_input_stability": None if stability_of_input is None else fmt(stability_of_input),
        "search": _search(checks),
    }


def _first_number(checks: Sequence[CheckRecord], key: str) -> float | None:
    numbers = (_number(c["details"].get(key)) for c in checks)
    return next((n for n in numbers if n is not None), None)


def _level_plot(check: CheckRecord) -> str | None:
    """Value per perturbation level; levels "kind:amount" get one line per kind, in order."""
    details = check["details"]
    levels, values = _sequence(details.get("levels")), _numbers(details.get("values"))
    if not values or len(levels) != len(values):
        return None
    metric = fmt(check["metric"])
    amounts = [_number(level) for level in levels]
    ticks: list[str] | None = None
    if all(a is not None for a in amounts):
        series = [figures.Series(metric, [a for a in amounts if a is not None], values)]
    else:
        kinds: dict[str, list[int]] = {}
        for index, level in enumerate(levels):
            kinds.setdefault(str(level).split(":")[0], []).append(index)
        series = [figures.Series(kind, at, [values[i] for i in at]) for kind, at in kinds.items()]
        ticks = [str(level) for level in levels]
    # The chance level: what the method's map of another image scores (the gate's threshold is
    # a margin over it, on another scale, so it is not drawn here).
    unrelated = _number(details.get("unrelated"))
    references = [(unrelated, "maps of other images")] if unrelated is not None else []
    # SSIM is at most 1: one fixed range from 0 (or below) to 1 lets the methods' plots compare.
    lowest = min([0.0, *(v for v in values if not math.isnan(v)), *(y for y, _ in references)])
    png = figures.line_plot(series, xlabel="perturbation", ylabel=metric, xticklabels=ticks,
                            references=references, size=(5.2, 2.7),
                            ylim=(lowest - 0.02, 1.02) if metric == "map_ssim" else None)
    return _data_uri(png)


def _search(checks: Sequence[CheckRecord]) -> dict[str, Any] | None:
    """What the hypothesis search found: the shrunk counterexample, or how many it tried."""
    for check in checks:
        details = check["details"]
        if "counterexample" not in details and "examples_kept" not in details:
            continue
        example = _mapping(details.get("counterexample"))
        budget = ", ".join(f"{key.replace('_', ' ')} {fmt(value)}"
                           for key, value in _mapping(details.get("budget")).items())
        if example:
            text = example.get("text") or fmt({k: v for k, v in example.items() if k != "text"})
            return {"found": True, "text": fmt(text), "budget": budget}
        return {"found": False, "budget": budget,
                "text": f"hypothesis found none in {fmt(details.get('examples_kept', UNKNOWN))} examples"}
    return None


# --------------------------------------------------------------------------- comparison
CheckKey = tuple[str, str, str]


def _keyed(checks: Sequence[CheckRecord]) -> dict[CheckKey, CheckRecord]:
    keyed: dict[CheckKey, CheckRecord] = {}
    for check in checks:
        key = (fmt(check["audit"]), fmt(check["metric"]), fmt(check["method"]))
        keyed.setdefault(key, check)
    return keyed


def _delta(mine: CheckRecord | None, theirs: CheckRecord | None) -> tuple[str, str]:
    """(this value minus the other's, "better"/"worse"/"" by the check's direction)."""
    a = mine["value"] if mine else None
    b = theirs["value"] if theirs else None
    if a is None or b is None:
        return "", ""
    difference = a - b
    if difference == 0:
        return "0", ""
    direction = (mine["direction"] if mine else None) or (theirs["direction"] if theirs else None)
    if direction is None:
        return f"{difference:+.4g}", ""
    return f"{difference:+.4g}", "better" if (difference > 0) == (direction == "higher") else "worse"


def comparison(results: Results, other: Results) -> dict[str, Any]:
    """One row per (audit, metric, method) present in either run, verdict changes first."""
    mine, theirs = _keyed(results["checks"]), _keyed(other["checks"])
    rows = []
    for key in [*mine, *(k for k in theirs if k not in mine)]:
        a, b = mine.get(key), theirs.get(key)
        status, other_status = (a["status"] if a else "absent"), (b["status"] if b else "absent")
        delta, change = _delta(a, b)
        rows.append({"audit": key[0], "metric": key[1], "method": key[2],
                     "value": fmt(a["value"]) if a else "—", "status": status,
                     "other_value": fmt(b["value"]) if b else "—", "other_status": other_status,
                     "delta": delta, "change": change, "differs": status != other_status})
    rows.sort(key=lambda row: not row["differs"])  # stable: each group keeps the run's order
    model, environment = other["model"], other["environment"]
    return {"spec": fmt(model.get("spec", UNKNOWN)), "verdict": other["verdict"].upper(),
            "started": fmt(environment.get("started_utc", UNKNOWN)), "rows": rows,
            "changed": sum(row["differs"] for row in rows)}


# --------------------------------------------------------------------------- page
def _environment_of_template() -> jinja2.Environment:
    # autoescape on for everything: every string in the page may come from the user.
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("heatcheck.report", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["method_label"] = lambda name: registry.label(str(name))
    return environment


def _items(images: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [i for i in _sequence(images.get("items")) if isinstance(i, Mapping)]


def _galleries(results: Results, arrays: Mapping[str, np.ndarray] | None,
               colormap: str, max_gallery: int) -> tuple[dict[str, Any], list[str]]:
    """The gallery and sanity sections, which need the arrays, plus notes on unusable ones."""
    checks = results["checks"]
    usable, notes = validate_arrays(arrays) if arrays is not None else (None, [])
    items_by_id = {str(i.get("id")): i for i in _items(results["images"])}
    sections: dict[str, Any] = {"sanity": sanity(checks, usable, colormap), "gallery": None}
    if usable is not None:
        sections["gallery"] = gallery(usable, items_by_id, checks, colormap=colormap,
                                      max_gallery=max_gallery)
    return sections, notes


def render(results: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None, *,
           colormap: str = "jet", max_gallery: int = MAX_GALLERY, notes: Sequence[str] = (),
           compare: Mapping[str, Any] | None = None) -> str:
    """The HTML page for ``results`` (results.json-shaped) and optional ``arrays`` (maps.npz).

    Args:
        colormap: any matplotlib colormap; "cividis" is colour-blind safe.
        max_gallery: most gallery rows drawn; a note says how many were left out.
        notes: extra warnings to show at the top (e.g. an unreadable maps file).
        compare: another run's results (e.g. the clean model's, beside a shortcut model's):
            adds a section with both runs' value and verdict for every check.
    """
    figures.colormap_named(colormap)  # fail early on a typo, before any drawing
    document = schema.read_results(results)
    model, images, checks = document["model"], document["images"], document["checks"]
    class_names = [str(c) for c in _sequence(model.get("class_names"))]
    items = _items(images)
    ran, skipped = check_tables(checks)
    drawn, array_notes = _galleries(document, arrays, colormap, max_gallery)
    outcome = document["verdict"]
    not_run = [fmt(n) for n in document["not_run"]]
    fatal = document["fatal"]
    return _environment_of_template().get_template(TEMPLATE).render(
        verdict=outcome.upper(), verdict_css=VERDICT_CSS.get(outcome, "unknown"),
        stopped=document["status"] == "incomplete", counts=document["summary"], fatal=fatal,
        not_run=not_run,
        errors=[e for e in errors(document) if e["message"] != fatal],  # the fatal one leads the page
        caveats=[fmt(c) for c in document["caveats"]],
        scope=coverage.scope(images), summaries=family_summaries(checks),
        title=fmt(model.get("spec", UNKNOWN)), schema=fmt(document["schema"]),
        model=_model_rows(model), image_set=_image_set(images),
        environment=_environment(document["environment"]),
        checks=ran, skipped=skipped, mismatches=label_mismatches(items), items_count=len(items),
        localisation=localisation(checks, {str(i.get("id")): class_of(i, class_names) for i in items},
                                  class_names),
        sanity=drawn["sanity"], stability=stability(checks), gallery=drawn["gallery"],
        faithfulness=faithfulness_curves(checks),
        comparison=comparison(document, schema.read_results(compare)) if isinstance(compare, Mapping)
        else None,
        regression=baseline_section.regressions(document),
        notes=[*notes, *array_notes], colormap=colormap)


# --------------------------------------------------------------------------- files
def load_arrays(path: Path) -> tuple[dict[str, np.ndarray] | None, list[str]]:
    """All arrays of a maps.npz, or None and a note when it is missing or unreadable."""
    if not path.exists():
        return None, [f"No {path.name} next to results.json: the report has no galleries."]
    try:
        # We own the file handle: np.load leaks its own when a corrupt archive fails to parse.
        # allow_pickle=False: a maps file is data; never let it run code.
        with path.open("rb") as handle:
            loaded = np.load(handle, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                return None, [f"{path.name} holds one array, not an .npz archive of named arrays: "
                              "the report has no galleries."]
            with loaded:
                return {key: loaded[key] for key in loaded.files}, []
    except Exception as exc:  # any unreadable file (zip, zlib, npy errors) degrades to a note
        return None, [f"{path.name} could not be read ({type(exc).__name__}: {exc}): "
                      "the report has no galleries."]


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and os.replace,
    so a reader (or a crash half-way) never sees a half-written page."""
    # delete=False: the file must outlive the handle to be renamed; on failure we remove it.
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); a report is meant to be read by others.
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def load_compare(path: Path) -> tuple[Results | None, list[str]]:
    """Another run's results.json (or the folder holding one), or None and a note saying why not."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        return schema.load_results(path), []
    except schema.ResultsFileError as exc:
        return None, [f"The run to compare with could not be read ({exc}): no comparison is shown."]


def write_report(report_dir: Path, *, colormap: str = "jet", max_gallery: int = MAX_GALLERY,
                 compare_path: Path | None = None) -> Path:
    """Read ``report_dir/results.json`` (and ``maps.npz`` if present); write ``index.html``.

    Args:
        compare_path: another run's results.json (or its folder) to compare with; a missing or
            corrupt one leaves a note on the page, never an exception.
    """
    report_dir = Path(report_dir)
    results = schema.load_results(report_dir / "results.json")
    arrays, notes = load_arrays(report_dir / "maps.npz")
    other = None
    if compare_path is not None:
        other, compare_notes = load_compare(compare_path)
        notes += compare_notes
    page = render(results, arrays, colormap=colormap, max_gallery=max_gallery, notes=notes, compare=other)
    target = report_dir / "index.html"
    write_text_atomically(target, page)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m heatcheck.report reports/``: rebuild index.html from the files alone."""
    parser = argparse.ArgumentParser(prog="python -m heatcheck.report", description=main.__doc__)
    parser.add_argument("report_dir", nargs="?", default="reports", type=Path,
                        help="folder with results.json (and maps.npz); default: reports")
    parser.add_argument("--hc-colormap", dest="colormap", default="jet",
                        help="e.g. cividis (colour-blind safe)")
    parser.add_argument("--max-gallery", type=int, default=MAX_GALLERY,
                        help=f"most gallery rows (default {MAX_GALLERY})")
    parser.add_argument("--hc-compare", dest="compare", type=Path, default=None, metavar="OTHER/results.json",
                        help="another run to compare with, e.g. the clean model's results.json")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.report_dir, colormap=args.colormap, max_gallery=args.max_gallery,
                            compare_path=args.compare)
    except (OSError, ValueError) as exc:  # missing/invalid results.json, unknown colormap
        print(f"heatcheck.report: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
