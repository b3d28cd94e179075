"""The report against a baseline: the baseline's and this run's values side by side, regressed
checks first, and the gallery led by the images that got worst, each with its change."""

import re

import numpy as np

from heatcheck import report
from heatcheck.checks.baseline import as_check, compare_check

SIZE = 16
IDS = ["img-0", "img-1", "img-2", "img-3", "img-4", "img-5"]


def localisation(values, method, status="passed"):
    return {"audit": "localisation", "metric": "energy_pointing_game", "method": method,
            "direction": "higher", "status": status, "value": float(np.mean(values)),
            "per_image": dict(zip(IDS, values, strict=True))}


def regression(base, new):
    key = (base["audit"], base["metric"], base["method"])
    r = compare_check(base, new, tolerance=0.05, seed=0, min_images=5)
    return as_check(key, r, test_id=f"regression::{key}", tolerance_source="pyproject").to_json()


def make_results():
    """gradcam got much worse (img-4 most, then img-1); saliency stayed the same."""
    base_gc = localisation([0.6, 0.7, 0.5, 0.6, 0.9, 0.6], "gradcam")
    new_gc = localisation([0.1, 0.0, 0.2, 0.1, 0.0, 0.3], "gradcam", status="failed")
    same = localisation([0.3] * 6, "saliency")
    checks = [new_gc, same, regression(base_gc, new_gc), regression(same, same)]
    items = [{"id": i, "label": 0, "label_name": "circle", "predicted": 0, "predicted_name": "circle",
              "confidence": 0.9, "correct": True} for i in IDS]
    return {"schema": "heatcheck/1", "verdict": "fail", "status": "complete", "not_run": [],
            "model": {"spec": "bench:shortcut", "class_names": ["circle"]},
            "images": {"spec": "bench:6", "count": 6, "items": items}, "checks": checks,
            "baseline": {"path": "accepted/results.json", "model": "bench:clean", "verdict": "pass",
                         "started_utc": "2025-01-01T00:00:00Z", "notes": ["an older heatcheck file"]}}


def make_arrays():
    rng = np.random.default_rng(0)
    masks = np.zeros((6, SIZE, SIZE), bool)
    masks[:, 4:12, 4:12] = True
    return {"ids": np.array(IDS), "images": rng.integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8),
            "masks": masks, "map/gradcam": rng.random((6, SIZE, SIZE), dtype=np.float32)}


def section(html, name):
    start = html.index(f'<section id="{name}"')
    return html[start:html.index("</section>", start)]


def test_the_baseline_section_shows_both_values_regressions_first():
    html = report.render(make_results())
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section(html, "regression")))
    assert "accepted/results.json" in text
    assert "model bench:clean , verdict PASS" in text
    assert "2 checks compared image by image on the images both runs scored: 1 regressed, 0 inconclusive, " \
           "1 within tolerance" in text
    assert "localisation/energy_pointing_game gradcam: newly failing (was passed)" in text
    assert "an older heatcheck file" in text
    rows = section(html, "regression").split("<tr>")[2:]
    assert "gradcam" in rows[0]
    assert "FAIL" in rows[0]
    assert '<td class="num">0.65</td><td class="num">0.1167</td>' in rows[0]  # baseline, this run
    assert "img-4 0.9 → 0, img-1 0.7 → 0, img-0" in rows[0]  # worst first
    assert "saliency" in rows[1]
    assert "pass" in rows[1]
    assert 'href="#regression"' in html


def test_no_baseline_no_section():
    results = make_results()
    del results["baseline"]
    assert 'id="regression"' not in report.render(results)


def test_the_gallery_leads_with_the_images_that_got_worst():
    results = make_results()
    items = {i["id"]: i for i in results["images"]["items"]}
    order = report.gallery_order(IDS, items, results["checks"])
    assert [IDS[i] for i in order[:2]] == ["img-4", "img-1"]
    html = report.render(results, make_arrays())
    captions = re.findall(r'<figcaption class="change">([^<]*)', html)
    assert captions[0] == "vs baseline: energy_pointing_game gradcam 0.9 → 0"
    assert len(captions) == 6
    assert "the images\n    that got worst against the baseline" in html
