"""Localisation: does each method's map point at the labelled object?

Per heatcheck_method: the pointing game (Zhang et al. 2016, 15 px tolerance at 224²), the energy-based
pointing game / relevance mass (Wang et al. 2020), and relevance rank accuracy (Arras et al.
2022). Each score is chance-corrected per image, (s − c) / (1 − c), and read against negative
controls scored on the same images and masks (a random map, a centre prior, the edge map, the
method's maps shuffled across images): a check passes when the heatcheck_method beats the strongest
control by the margin with a bootstrap interval, fails when it is confidently at chance or
below (its maps avoid the object) or no better than weak controls, and is inconclusive when
the set cannot tell (heatcheck.checks.decision).
"""

import zlib

import numpy as np
import pytest
from heatcheck.fixtures.audit_fixtures import input_errors

from heatcheck.checks.decision import decide
from heatcheck.checks.localisation import METRICS, fraction_summary, score_localisation, strong_control_remedy
from heatcheck.metrics.base import finite_mean
from heatcheck.metrics.pointing import default_pointing_tolerance

pytestmark = pytest.mark.heatcheck_audit


@pytest.fixture(scope="session")
def localisation_run(heatcheck_maps, heatcheck_images, heatcheck_settings, heatcheck_results):
    """Every method's and control's scores, in one more pass over the images (for the edges)."""
    methods = tuple(heatcheck_maps.maps)
    shape = heatcheck_maps.masks.shape[1:]
    tolerance = heatcheck_settings.pointing_tolerance
    if tolerance is None:
        tolerance = default_pointing_tolerance(*shape) if len(shape) == 2 else 0
    with input_errors(heatcheck_results):
        run = score_localisation(
            heatcheck_maps, heatcheck_images, methods, seed=heatcheck_settings.seed, tolerance=tolerance
        )
    heatcheck_results.images["mask_fraction"] = fraction_summary(run.fractions)
    return run


def _audited(run, heatcheck_settings):
    """Which images the localisation checks use: all, or those under --hc-max-mask-fraction."""
    if heatcheck_settings.max_mask_fraction is None:
        return np.ones(len(run.ids), bool)
    return run.fractions < heatcheck_settings.max_mask_fraction


@pytest.mark.parametrize("metric", METRICS)
def test_localisation(
    metric, heatcheck_method, localisation_run, heatcheck_provider, heatcheck_settings, heatcheck_gate
):
    heatcheck_gate.require(heatcheck_provider.unavailable(heatcheck_method), metric)
    run = localisation_run
    keep = _audited(run, heatcheck_settings)
    ids = [i for i, k in zip(run.ids, keep, strict=True) if k]
    scores = run.corrected(metric, heatcheck_method)[keep]
    controls = {name: v[keep] for name, v in run.controls(metric, heatcheck_method).items()}
    decision = decide(
        scores,
        controls,
        margin=heatcheck_settings.thresholds.get(metric, heatcheck_method),
        seed=[heatcheck_settings.seed, zlib.crc32(f"{metric}/{heatcheck_method}".encode())],
        weak_control=heatcheck_settings.weak_control,
        min_images=heatcheck_settings.min_images,
        strong_control_remedy=strong_control_remedy(run.fractions[keep] if keep.any() else run.fractions),
    )
    left_out = {i: round(float(f), 4) for i, f, k in zip(run.ids, run.fractions, keep, strict=True) if not k}
    heatcheck_gate.decide(
        "localisation",
        metric,
        heatcheck_method,
        decision,
        direction="higher",
        per_image=scores,
        ids=ids,
        controls={name: float(finite_mean(v)) for name, v in controls.items()},
        details={
            "raw": float(finite_mean(run.raw[metric][heatcheck_method][keep])),
            "raw_per_image": dict(zip(ids, run.raw[metric][heatcheck_method][keep].tolist(), strict=True)),
            "chance_per_image": dict(zip(ids, run.chance[metric][keep].tolist(), strict=True)),
            "chance": float(finite_mean(run.chance[metric][keep])),
            "controls_raw": {c: float(finite_mean(v[keep])) for c, v in run.control_raw[metric].items()},
            "tolerance_px": run.tolerance if metric == "pointing_game" else None,
            "left_out": left_out,
            "max_mask_fraction": heatcheck_settings.max_mask_fraction,
            "passes_alone": len(run.ids) * heatcheck_provider.passes_per_map(heatcheck_method),
        },
    )
