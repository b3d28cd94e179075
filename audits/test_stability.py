"""Stability: does a map survive small changes of the input?

Max- and avg-sensitivity as Yeh et al. (2019) define them: the largest and the mean relative
change of the map over a fixed number of copies drawn uniformly in an L∞ ball of a stated
radius. Map SSIM over a label-preserving family of Gaussian noise, brightness and contrast
shifts, counting only copies whose top-1 class is unchanged (relative input stability,
Agarwal et al. 2022, recorded, not gated: its element-wise relative changes explode where
pixels or map values are near zero). Each is read against the method's map of another image
on the same images (heatcheck.checks.stability). Then hypothesis searches the declared budget for the
smallest perturbation that breaks each map and shrinks it.
"""

import numpy as np
import pytest
from heatcheck.fixtures.audit_fixtures import require
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from heatcheck.checks.perturbations import draw_seed
from heatcheck.checks.stability import (
    BALL_RADIUS,
    SENSITIVITY_SAMPLES,
    UNRELATED,
    explain_perturbed,
    gate_stability,
    linf_ball_set,
    perturb,
    read_against_unrelated,
    score,
    search_counterexample,
)
from heatcheck.metrics.base import finite_mean

pytestmark = pytest.mark.heatcheck_audit

SENSITIVITIES = ("max_sensitivity", "avg_sensitivity")  # Yeh et al., on the L∞ ball
LABEL_PRESERVING = ("map_ssim",)


@pytest.fixture(scope="session")
def stability_classes(stability_images, labelled_images, predictions):
    """The model's top-1 class of each sampled image, from label consistency's forward pass."""
    row = {image_id: i for i, image_id in enumerate(labelled_images.ids)}
    return predictions.argmax(axis=1)[[row[i] for i in stability_images.ids]]


def _runnable(map_provider, settings):
    return tuple(m for m in settings.methods if map_provider.unavailable(m) is None)


@pytest.fixture(scope="session")
def ball_set(map_provider, stability_images, stability_classes, settings):
    pset = linf_ball_set(map_provider, stability_images, settings.seed, classes=stability_classes)
    explain_perturbed(map_provider, pset, _runnable(map_provider, settings))
    return pset


@pytest.fixture(scope="session")
def perturbed_set(map_provider, stability_images, stability_classes, settings):
    pset = perturb(map_provider, stability_images, seed=settings.seed, classes=stability_classes)
    explain_perturbed(map_provider, pset, _runnable(map_provider, settings))
    return pset


def _gate(metric, method, pset, settings, gate, map_provider, details):
    reading = read_against_unrelated(pset, method, metric)
    require(None if np.isfinite(reading.raw).any() else "every perturbed copy changed the model's decision: "
            "nothing to compare", gate, "stability", metric, method)
    decision = gate_stability(reading.normalised, metric, settings.thresholds.get(metric, method),
                              draw_seed(settings.seed, metric, method))
    similarity = metric == "map_ssim"  # 1 = unmoved; the sensitivities: 0 = unmoved
    gate.decide("stability", metric, method, decision, direction="higher" if similarity else "lower",
                per_image=reading.normalised, ids=pset.images.ids,
                controls={UNRELATED: 0.0 if similarity else 1.0},
                details={**reading.details(), **details, "passes_alone": pset.copies.shape[0]
                         * (1 + pset.copies.shape[1]) * map_provider.passes_per_map(method)})


@pytest.mark.parametrize("metric", SENSITIVITIES)
def test_sensitivity(metric, method, ball_set, map_provider, settings, gate):
    require(map_provider.unavailable(method), gate, "stability", metric, method)
    _gate(metric, method, ball_set, settings, gate, map_provider, {
        "perturbation": "uniform in the L∞ ball", "radius": BALL_RADIUS, "samples": SENSITIVITY_SAMPLES,
        "decision_changed_share": round(ball_set.changed_share, 4)})


@pytest.mark.parametrize("metric", LABEL_PRESERVING)
def test_label_preserving(metric, method, perturbed_set, map_provider, settings, gate):
    require(map_provider.unavailable(method), gate, "stability", metric, method)
    ris = score(perturbed_set, method, "relative_input_stability")
    _gate(metric, method, perturbed_set, settings, gate, map_provider, {
        "perturbation": "label-preserving family", "levels": perturbed_set.levels,
        "values": [float(finite_mean(score(perturbed_set, method, metric, {level})))
                   for level in perturbed_set.levels],
        "discarded_share": round(perturbed_set.discarded_share, 4),
        "relative_input_stability": float(finite_mean(ris))})


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
