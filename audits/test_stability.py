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
def stability_classes(heatcheck_stability_images, heatcheck_labelled_images, heatcheck_predictions):
    """The model's top-1 class of each sampled image, from label consistency's forward pass."""
    row = {image_id: i for i, image_id in enumerate(heatcheck_labelled_images.ids)}
    return heatcheck_predictions.argmax(axis=1)[[row[i] for i in heatcheck_stability_images.ids]]


def _runnable(heatcheck_provider, heatcheck_settings):
    return tuple(m for m in heatcheck_settings.methods if heatcheck_provider.unavailable(m) is None)


@pytest.fixture(scope="session")
def ball_set(heatcheck_provider, heatcheck_stability_images, stability_classes, heatcheck_settings):
    pset = linf_ball_set(
        heatcheck_provider, heatcheck_stability_images, heatcheck_settings.seed, classes=stability_classes
    )
    explain_perturbed(heatcheck_provider, pset, _runnable(heatcheck_provider, heatcheck_settings))
    return pset


@pytest.fixture(scope="session")
def perturbed_set(heatcheck_provider, heatcheck_stability_images, stability_classes, heatcheck_settings):
    pset = perturb(
        heatcheck_provider,
        heatcheck_stability_images,
        seed=heatcheck_settings.seed,
        classes=stability_classes,
    )
    explain_perturbed(heatcheck_provider, pset, _runnable(heatcheck_provider, heatcheck_settings))
    return pset


def _gate(metric, heatcheck_method, pset, heatcheck_settings, heatcheck_gate, heatcheck_provider, details):
    reading = read_against_unrelated(pset, heatcheck_method, metric)
    nothing = "every perturbed copy changed the model's decision: nothing to compare"
    heatcheck_gate.require(None if np.isfinite(reading.raw).any() else nothing, metric)
    decision = gate_stability(
        reading.normalised,
        metric,
        heatcheck_settings.thresholds.get(metric, heatcheck_method),
        draw_seed(heatcheck_settings.seed, metric, heatcheck_method),
    )
    similarity = metric == "map_ssim"  # 1 = unmoved; the sensitivities: 0 = unmoved
    heatcheck_gate.decide(
        "stability",
        metric,
        heatcheck_method,
        decision,
        direction="higher" if similarity else "lower",
        per_image=reading.normalised,
        ids=pset.images.ids,
        controls={UNRELATED: 0.0 if similarity else 1.0},
        details={
            **reading.details(),
            **details,
            "passes_alone": pset.copies.shape[0]
            * (1 + pset.copies.shape[1])
            * heatcheck_provider.passes_per_map(heatcheck_method),
        },
    )


@pytest.mark.parametrize("metric", SENSITIVITIES)
def test_sensitivity(
    metric, heatcheck_method, ball_set, heatcheck_provider, heatcheck_settings, heatcheck_gate
):
    heatcheck_gate.require(heatcheck_provider.unavailable(heatcheck_method), metric)
    _gate(
        metric,
        heatcheck_method,
        ball_set,
        heatcheck_settings,
        heatcheck_gate,
        heatcheck_provider,
        {
            "perturbation": "uniform in the L∞ ball",
            "radius": BALL_RADIUS,
            "samples": SENSITIVITY_SAMPLES,
            "decision_changed_share": round(ball_set.changed_share, 4),
        },
    )


@pytest.mark.parametrize("metric", LABEL_PRESERVING)
def test_label_preserving(
    metric, heatcheck_method, perturbed_set, heatcheck_provider, heatcheck_settings, heatcheck_gate
):
    heatcheck_gate.require(heatcheck_provider.unavailable(heatcheck_method), metric)
    ris = score(perturbed_set, heatcheck_method, "relative_input_stability")
    _gate(
        metric,
        heatcheck_method,
        perturbed_set,
        heatcheck_settings,
        heatcheck_gate,
        heatcheck_provider,
        {
            "perturbation": "label-preserving family",
            "levels": perturbed_set.levels,
            "values": [
                float(finite_mean(score(perturbed_set, heatcheck_method, metric, {level})))
                for level in perturbed_set.levels
            ],
            "discarded_share": round(perturbed_set.discarded_share, 4),
            "relative_input_stability": float(finite_mean(ris)),
        },
    )


def test_no_small_perturbation_breaks_the_map(
    heatcheck_method,
    heatcheck_provider,
    heatcheck_stability_images,
    stability_classes,
    heatcheck_settings,
    heatcheck_gate,
):
    """Hypothesis looks, within the budget, for a label-preserving perturbation after which
    the map's SSIM to the original falls below the threshold, and shrinks what it finds."""
    metric = "map_ssim_property"
    heatcheck_gate.require(heatcheck_provider.unavailable(heatcheck_method), metric)
    threshold = heatcheck_settings.thresholds.get(metric, heatcheck_method)
    examples = heatcheck_settings.profile.hypothesis_examples * (
        10 if heatcheck_settings.stability_search == "deep" else 1
    )
    search = hypothesis_settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    result = search_counterexample(
        heatcheck_provider,
        heatcheck_stability_images,
        heatcheck_method,
        threshold,
        heatcheck_settings.stability_max_sigma,
        heatcheck_settings.stability_max_brightness,
        search,
        classes=stability_classes,
    )
    found = result.counterexample
    details = {
        "budget": {
            "max_sigma": heatcheck_settings.stability_max_sigma,
            "max_brightness": heatcheck_settings.stability_max_brightness,
            "max_examples": examples,
        },
        "examples_kept": result.examples,
        "passes_alone": (len(heatcheck_stability_images) + result.examples)
        * heatcheck_provider.passes_per_map(heatcheck_method),
        "counterexample": None
        if found is None
        else {**found.__dict__, "text": found.describe(heatcheck_method)},
    }
    if found is not None:
        details["message"] = found.describe(heatcheck_method)
    # The value is the worst SSIM seen; with a counterexample, the shrunk one's.
    value = found.similarity if found else result.worst_similarity
    heatcheck_gate.record("stability", metric, heatcheck_method, value, direction="higher", details=details)
