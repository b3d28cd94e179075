"""Sanity: do the maps depend on the model (Adebayo et al. 2018)?

Cascading randomisation re-initialises the model's weights from the logits down, step by
step; a heatcheck_method whose maps stay similar explains the image, not the model. The data
randomisation test compares with a model trained on permuted labels. Each similarity is read
against its chance level on these images (the similarity of the method's maps of different
images; heatcheck.checks.sanity): after the last step, and on average over the steps. The
edge-detector control ignores the model and must fail.
"""

import numpy as np
import pytest
from heatcheck.fixtures.audit_fixtures import random_label_spec

from heatcheck.checks.perturbations import draw_seed
from heatcheck.checks.sanity import (
    MEASURES,
    UNCHANGED,
    UNRELATED,
    data_randomisation,
    gate_similarity,
    model_randomisation,
    read_against_chance,
)
from heatcheck.metrics.similarity import normalise_for_comparison

pytestmark = pytest.mark.heatcheck_audit

# Per measure: the similarity after the last step, and its area over the cascade's steps.
CASCADING = [(measure, area) for measure in MEASURES for area in (False, True)]


@pytest.fixture(scope="session")
def randomisation_run(heatcheck_provider, heatcheck_sanity_images, heatcheck_settings, heatcheck_results):
    methods = tuple(m for m in heatcheck_settings.methods if heatcheck_provider.unavailable(m) is None)
    run = model_randomisation(
        heatcheck_provider,
        heatcheck_sanity_images,
        methods,
        heatcheck_settings.seed,
        heatcheck_settings.sanity_grouping,
    )
    for m in methods:  # the cascading figure: maps per step, each scaled to its max |value|
        stack = [run.original[m], *run.cascading[m]]
        heatcheck_results.arrays[f"sanity/{m}"] = np.stack([normalise_for_comparison(s) for s in stack])
    heatcheck_results.arrays["sanity_ids"] = np.array(run.ids)
    return run


def _decide(heatcheck_gate, metric, reading, seed, heatcheck_settings, ids, details):
    """Gate a similarity read against its chance level: the maps must move at least the margin
    of the way from unchanged (1) towards the maps of other images (0)."""
    method = heatcheck_gate.method
    decision = gate_similarity(reading.values, heatcheck_settings.thresholds.get(metric, method), seed)
    heatcheck_gate.decide(
        "sanity", metric, method, decision, direction="lower", per_image=reading.values, ids=ids,
        controls={UNCHANGED: 1.0, UNRELATED: 0.0}, details={**reading.details(), **details},
    )


@pytest.mark.parametrize(
    ("measure", "area"), CASCADING, ids=[f"{m}{'-area' if a else ''}" for m, a in CASCADING]
)
def test_cascading_randomisation(
    measure, area, heatcheck_method, randomisation_run, heatcheck_provider, heatcheck_settings, heatcheck_gate
):
    metric = f"cascading_{measure}" + ("_area" if area else "")
    heatcheck_gate.require(heatcheck_provider.unavailable(heatcheck_method), metric)
    run, seed = randomisation_run, draw_seed(heatcheck_settings.seed, metric, heatcheck_method)
    chance = run.chance(heatcheck_method, measure)
    reading = read_against_chance(run.similarity(heatcheck_method, measure), chance, area=area, seed=seed)
    independent = read_against_chance(
        run.similarity(heatcheck_method, measure, "independent"), chance, area=area, seed=seed
    )
    _decide(
        heatcheck_gate, metric, reading, seed, heatcheck_settings, run.ids,
        {
            "steps": run.steps,
            "gated": "area" if area else "last step",
            "independent_curve": independent.curve,
            "normalised_independent_curve": independent.normalised_curve,
            # the original maps plus one set per cascading and per independent step
            "passes_alone": (1 + 2 * len(run.steps))
            * len(run.ids)
            * heatcheck_provider.passes_per_map(heatcheck_method),
        },
    )


@pytest.fixture(scope="session")
def data_randomisation_run(
    heatcheck_provider, heatcheck_random_label_provider, heatcheck_sanity_images, heatcheck_settings
):
    """Similarities to the random-label model's maps, all methods at once; None without one."""
    if heatcheck_random_label_provider is None:
        return None
    methods = tuple(m for m in heatcheck_settings.methods if heatcheck_provider.unavailable(m) is None)
    return data_randomisation(
        heatcheck_provider, heatcheck_random_label_provider, heatcheck_sanity_images, methods
    )


@pytest.mark.parametrize("measure", list(MEASURES))
def test_data_randomisation(
    measure,
    heatcheck_method,
    heatcheck_provider,
    data_randomisation_run,
    heatcheck_sanity_images,
    heatcheck_settings,
    heatcheck_gate,
):
    metric = f"data_randomisation_{measure}"
    heatcheck_gate.require(heatcheck_provider.unavailable(heatcheck_method), metric)
    missing = "no model trained on permuted labels: pass --hc-random-label-model PATH"
    heatcheck_gate.require(None if data_randomisation_run else missing, metric)
    run, seed = data_randomisation_run, draw_seed(heatcheck_settings.seed, metric, heatcheck_method)
    reading = read_against_chance(
        [run.similarity[heatcheck_method][measure]],
        run.chance[heatcheck_method][measure],
        area=False,
        seed=seed,
    )
    _decide(
        heatcheck_gate, metric, reading, seed, heatcheck_settings, heatcheck_sanity_images.ids,
        {
            "random_label_model": random_label_spec(heatcheck_settings),
            "passes_alone": 2
            * len(heatcheck_sanity_images)
            * heatcheck_provider.passes_per_map(heatcheck_method),
        },
    )
