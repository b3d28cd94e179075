"""Faithfulness: does removing what a map calls important take the model's decision away, and
does restoring it first bring the decision back?

Deletion and insertion as RISE defines them (Petsiuk et al. 2018): pixels are replaced by a
baseline (a blurred copy of the image by default) in the map's order, most important first,
over the whole range, and the labelled class's probability is followed; insertion restores
them into the baseline in the same order. Each image's area under the curve is compared with
seeded random orders of the same image, paired per image (heatcheck.checks.faithfulness).
Faithfulness is about the model, not the object: the shortcut model's maps on its tag are
faithful, which is why this audit and localisation together tell a Clever Hans model apart.
"""

import pytest
from heatcheck.fixtures.audit_fixtures import input_errors

from heatcheck.checks.faithfulness import (
    KINDS,
    RANDOM,
    RANDOM_ORDERS,
    gate_faithfulness,
    set_causal_curves,
)
from heatcheck.checks.perturbations import draw_seed
from heatcheck.metrics.base import finite_mean

pytestmark = pytest.mark.heatcheck_audit


@pytest.fixture(scope="session")
def causal_run(heatcheck_model, heatcheck_images, heatcheck_maps, heatcheck_settings, heatcheck_results):
    """Deletion and insertion curves of every method's maps and of the random orders, in one
    pass over the images. (Steps and baseline: the settings', when they carry them.)"""
    steps, baseline = heatcheck_settings.faithfulness_steps, heatcheck_settings.faithfulness_baseline
    with input_errors(heatcheck_results):
        return set_causal_curves(
            heatcheck_model,
            heatcheck_images,
            heatcheck_maps.maps,
            seed=heatcheck_settings.seed,
            steps=steps,
            baseline=baseline,
        )


@pytest.mark.parametrize("kind", list(KINDS))
def test_causal_metric(
    kind,
    heatcheck_method,
    causal_run,
    heatcheck_images,
    heatcheck_provider,
    heatcheck_settings,
    heatcheck_gate,
):
    metric = f"{kind}_auc"
    heatcheck_gate.require(heatcheck_provider.unavailable(heatcheck_method), metric)
    run = causal_run
    auc, random_auc = run.auc(heatcheck_method, kind), run.random_auc(kind)
    reach = run.reach(heatcheck_method, kind)
    decision = gate_faithfulness(
        auc,
        random_auc,
        kind,
        heatcheck_settings.thresholds.get(metric, heatcheck_method),
        draw_seed(heatcheck_settings.seed, metric, heatcheck_method),
        reach=reach,
        baseline=run.baseline,
    )
    heatcheck_gate.decide(
        "faithfulness",
        metric,
        heatcheck_method,
        decision,
        direction=KINDS[kind].direction,
        per_image=auc,
        ids=heatcheck_images.ids,
        controls={RANDOM: float(finite_mean(random_auc))},
        details={
            "kind": kind,
            "baseline": run.baseline,
            "random_orders": RANDOM_ORDERS,
            "fractions": run.fractions.tolist(),
            "curve": finite_mean(run.methods[heatcheck_method][kind], axis=0).tolist(),
            "random_curve": finite_mean(run.random[kind].mean(axis=1), axis=0).tolist(),
            "random_auc": float(finite_mean(random_auc)),
            "reach": float(finite_mean(reach)),
            "passes_alone": len(heatcheck_images) * heatcheck_provider.passes_per_map(heatcheck_method),
        },
    )
