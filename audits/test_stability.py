"""Stability: does a map survive small changes of the input that keep the model's decision?

Gaussian and L∞-uniform noise, brightness and contrast shifts (heatcheck.perturbations) at
several levels; only copies whose top-1 class is unchanged count. Per method: mean map SSIM,
max- and avg-sensitivity (Yeh et al. 2019), relative input stability (Agarwal et al. 2022,
recorded, not gated: its element-wise relative changes explode where pixels or map values
are near zero). Then hypothesis searches the declared budget for the smallest perturbation
that breaks each map and shrinks it.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from fixtures.audit_fixtures import require
from heatcheck.metrics.base import finite_mean
from heatcheck.perturbations import DEFAULT_PERTURBATIONS
from heatcheck.stability import METRICS, explain_perturbed, perturb, score, search_counterexample

pytestmark = pytest.mark.heatcheck_audit

GATED = ("map_ssim", "max_sensitivity", "avg_sensitivity")


@pytest.fixture(scope="session")
def stability_classes(stability_images, labelled_images, predictions):
    """The model's top-1 class of each sampled image, from label consistency's forward pass."""
    row = {image_id: i for i, image_id in enumerate(labelled_images.ids)}
    return predictions.argmax(axis=1)[[row[i] for i in stability_images.ids]]


@pytest.fixture(scope="session")
def perturbed_set(map_provider, stability_images, stability_classes, settings):
    pset = perturb(map_provider, stability_images, list(DEFAULT_PERTURBATIONS),
                   settings.profile.stability_copies, settings.seed, classes=stability_classes)
    methods = tuple(m for m in settings.methods if map_provider.unavailable(m) is None)
    explain_perturbed(map_provider, pset, methods)
    return pset


def _per_level(pset, method, metric):
    return [float(finite_mean(score(pset, method, metric, {p.name}))) for p in pset.perturbations]


@pytest.mark.parametrize("metric", GATED)
def test_stability(metric, method, perturbed_set, map_provider, gate):
    require(map_provider.unavailable(method), gate, "stability", metric, method)
    scores = score(perturbed_set, method, metric)
    value = float(finite_mean(scores))
    require(None if np.isfinite(value) else "every perturbed copy changed the model's decision: nothing to "
            "compare", gate, "stability", metric, method)
    ris = score(perturbed_set, method, "relative_input_stability") if metric == "map_ssim" else None
    details = {"levels": [p.name for p in perturbed_set.perturbations],
               "values": _per_level(perturbed_set, method, metric),
               "discarded_share": round(perturbed_set.discarded_share, 4),
               "passes_alone": perturbed_set.copies.shape[0] * (1 + perturbed_set.copies.shape[1])
               * map_provider.passes_per_map(method)}
    if ris is not None:
        details["relative_input_stability"] = float(finite_mean(ris))
    gate.check("stability", metric, method, value,
               direction=METRICS[metric].direction, per_image=scores, ids=perturbed_set.images.ids,
               details=details)


def test_no_small_perturbation_breaks_the_map(method, map_provider, stability_images, stability_classes,
                                              settings, gate):
    """Hypothesis looks, within the budget, for a label-preserving perturbation after which
    the map's SSIM to the original falls below the threshold, and shrinks what it finds."""
    metric = "map_ssim_property"
    require(map_provider.unavailable(method), gate, "stability", metric, method)
    threshold = settings.thresholds.get(metric, method)
    examples = settings.profile.hypothesis_examples * (10 if settings.stability_search == "deep" else 1)
    search = hypothesis_settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                                 suppress_health_check=list(HealthCheck), print_blob=False)
    result = search_counterexample(map_provider, stability_images, method, threshold,
                                   settings.stability_max_sigma, settings.stability_max_brightness, search,
                                   classes=stability_classes)
    found = result.counterexample
    details = {
        "budget": {"max_sigma": settings.stability_max_sigma,
                   "max_brightness": settings.stability_max_brightness, "max_examples": examples},
        "examples_kept": result.examples,
        "passes_alone": (len(stability_images) + result.examples) * map_provider.passes_per_map(method),
        "counterexample": None if found is None else {**found.__dict__, "text": found.describe(method)},
    }
    if found is not None:
        details["message"] = found.describe(method)
    # The value is the worst SSIM seen; with a counterexample, the shrunk one's.
    value = found.similarity if found else result.worst_similarity
    gate.check("stability", metric, method, value, direction="higher", details=details)
