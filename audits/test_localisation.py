"""Localisation: does each method's map point at the labelled object?

Per method: the pointing game (Zhang et al. 2016, 15 px tolerance at 224²), the energy-based
pointing game / relevance mass (Wang et al. 2020), and relevance rank accuracy (Arras et al.
2022). Each score is chance-corrected per image, (s − c) / (1 − c), and read against negative
controls scored on the same images and masks (a random map, a centre prior, the edge map, the
method's maps shuffled across images): a check passes when the method beats the strongest
control by the margin with a bootstrap interval, fails when it is confidently at chance or
below (its maps avoid the object) or no better than weak controls, and is inconclusive when
the set cannot tell (heatcheck.checks.decision).
"""

import zlib

import numpy as np
import pytest
from heatcheck.fixtures.audit_fixtures import input_errors, require

from heatcheck.checks.decision import decide
from heatcheck.checks.localisation import METRICS, fraction_summary, score_localisation, strong_control_remedy
from heatcheck.metrics.base import finite_mean
from heatcheck.metrics.pointing import default_pointing_tolerance

pytestmark = pytest.mark.heatcheck_audit


@pytest.fixture(scope="session")
def localisation_run(audit_maps, audit_images, settings, result_store):
    """Every method's and control's scores, in one more pass over the images (for the edges)."""
    methods = tuple(audit_maps.maps)
    shape = audit_maps.masks.shape[1:]
    tolerance = settings.pointing_tolerance
    if tolerance is None:
        tolerance = default_pointing_tolerance(*shape) if len(shape) == 2 else 0
    with input_errors(result_store):
        run = score_localisation(audit_maps, audit_images, methods, seed=settings.seed, tolerance=tolerance)
    result_store.images["mask_fraction"] = fraction_summary(run.fractions)
    return run


def _audited(run, settings):
    """Which images the localisation checks use: all, or those under --hc-max-mask-fraction."""
    if settings.max_mask_fraction is None:
        return np.ones(len(run.ids), bool)
    return run.fractions < settings.max_mask_fraction


@pytest.mark.parametrize("metric", METRICS)
def test_localisation(metric, method, localisation_run, map_provider, settings, gate):
    require(map_provider.unavailable(method), gate, "localisation", metric, method)
    run = localisation_run
    keep = _audited(run, settings)
    ids = [i for i, k in zip(run.ids, keep, strict=True) if k]
    scores = run.corrected(metric, method)[keep]
    controls = {name: v[keep] for name, v in run.controls(metric, method).items()}
    decision = decide(
        scores, controls, margin=settings.thresholds.get(metric, method),
        seed=[settings.seed, zlib.crc32(f"{metric}/{method}".encode())],
        weak_control=settings.weak_control, min_images=settings.min_images,
        strong_control_remedy=strong_control_remedy(run.fractions[keep] if keep.any() else run.fractions))
    left_out = {i: round(float(f), 4) for i, f, k in zip(run.ids, run.fractions, keep, strict=True) if not k}
    gate.decide("localisation", metric, method, decision, direction="higher", per_image=scores, ids=ids,
                controls={name: float(finite_mean(v)) for name, v in controls.items()},
                details={"raw": float(finite_mean(run.raw[metric][method][keep])),
                         "raw_per_image": dict(zip(ids, run.raw[metric][method][keep].tolist(), strict=True)),
                         "chance_per_image": dict(zip(ids, run.chance[metric][keep].tolist(), strict=True)),
                         "chance": float(finite_mean(run.chance[metric][keep])),
                         "controls_raw": {c: float(finite_mean(v[keep]))
                                          for c, v in run.control_raw[metric].items()},
                         "tolerance_px": run.tolerance if metric == "pointing_game" else None,
                         "left_out": left_out, "max_mask_fraction": settings.max_mask_fraction,
                         "passes_alone": len(run.ids) * map_provider.passes_per_map(method)})
