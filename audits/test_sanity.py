"""Sanity: do the maps depend on the model (Adebayo et al. 2018)?

Cascading randomisation re-initialises the model's weights from the logits down, step by
step; a method whose maps stay similar explains the image, not the model. The data
randomisation test compares with a model trained on permuted labels. The edge-detector
control ignores the model and must fail.
"""

import numpy as np
import pytest

from fixtures.audit_fixtures import random_label_spec, require
from heatcheck.metrics.similarity import normalise_for_comparison
from heatcheck.sanity import MEASURES, data_randomisation, model_randomisation

pytestmark = pytest.mark.heatcheck_audit


@pytest.fixture(scope="session")
def randomisation_run(map_provider, sanity_images, settings, result_store):
    methods = tuple(m for m in settings.methods if map_provider.unavailable(m) is None)
    run = model_randomisation(map_provider, sanity_images, methods, settings.seed, settings.sanity_grouping)
    for m in methods:  # the cascading figure: maps per step, each scaled to its max |value|
        stack = [run.original[m], *run.cascading[m]]
        result_store.arrays[f"sanity/{m}"] = np.stack([normalise_for_comparison(s) for s in stack])
    result_store.arrays["sanity_ids"] = np.array(run.ids)
    return run


@pytest.mark.parametrize("measure", list(MEASURES))
def test_cascading_randomisation(measure, method, randomisation_run, map_provider, gate):
    metric = f"cascading_{measure}"
    require(map_provider.unavailable(method), gate, "sanity", metric, method)
    curve = randomisation_run.similarity(method, measure)
    independent = randomisation_run.similarity(method, measure, "independent")
    final = curve[-1]
    gate.check("sanity", metric, method, float(final.mean()), direction="lower",
               per_image=final, ids=randomisation_run.ids,
               details={"steps": randomisation_run.steps, "curve": [float(c.mean()) for c in curve],
                        "independent_curve": [float(c.mean()) for c in independent],
                        # the original maps plus one set per cascading and per independent step
                        "passes_alone": (1 + 2 * len(curve)) * len(final)
                        * map_provider.passes_per_map(method)})


@pytest.fixture(scope="session")
def data_randomisation_run(map_provider, random_label_provider, sanity_images, settings):
    """Similarities to the random-label model's maps, all methods at once; None without one."""
    if random_label_provider is None:
        return None
    methods = tuple(m for m in settings.methods if map_provider.unavailable(m) is None)
    return data_randomisation(map_provider, random_label_provider, sanity_images, methods)


@pytest.mark.parametrize("measure", list(MEASURES))
def test_data_randomisation(measure, method, map_provider, data_randomisation_run, sanity_images,
                            settings, gate):
    metric = f"data_randomisation_{measure}"
    require(map_provider.unavailable(method), gate, "sanity", metric, method)
    missing = "no model trained on permuted labels: pass --random-label-model PATH"
    require(None if data_randomisation_run else missing, gate, "sanity", metric, method)
    scores = data_randomisation_run[method][measure]
    gate.check("sanity", metric, method, float(scores.mean()), direction="lower", per_image=scores,
               ids=sanity_images.ids, details={
                   "random_label_model": random_label_spec(settings),
                   "passes_alone": 2 * len(sanity_images) * map_provider.passes_per_map(method)})
