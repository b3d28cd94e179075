"""Model randomisation: oracles with known answers, and the user's model left untouched."""

import numpy as np
import pytest
from heatcheck.fixtures.audit_fixtures import BENCH_MODELS
from heatcheck.fixtures.bench import make_bench

from heatcheck import data, models
from heatcheck.checks import randomisation
from heatcheck.checks.sanity import MEASURES, model_randomisation
from heatcheck.explain.provider import MapProvider
from heatcheck.settings import METHODS, PROFILES, Settings

ALL = (*METHODS, "edges")


@pytest.fixture(scope="module")
def provider():
    audit_model = models.load(BENCH_MODELS / "clean.keras", "bench:clean")
    return MapProvider(audit_model, Settings(methods=ALL, profile=PROFILES["smoke"]))


@pytest.fixture(scope="module")
def images():
    x, y, m, ids = make_bench(3, seed=4)
    return data.from_arrays("bench:3", x, y, m, ids)


def test_steps_go_from_the_logits_down_by_block(provider):
    steps = randomisation.layer_groups(provider.audit_model.logits_model)
    assert [s.name for s in steps] == ["predictions", "last_conv", "block3", "block2", "block1"]
    assert "block1_bn2" in steps[-1].layers


def test_randomisation_that_changes_nothing_gives_similarity_one(provider, images, monkeypatch):
    monkeypatch.setattr(randomisation, "_initial_values", lambda layer, seed: layer.get_weights())
    run = model_randomisation(provider, images, ALL, seed=0)
    for method in ALL:
        for measure in MEASURES:
            for step in run.similarity(method, measure) + run.similarity(method, measure, "independent"):
                np.testing.assert_allclose(step, 1.0, atol=1e-6, err_msg=f"{method} {measure}")


def test_explainer_that_ignores_the_model_stays_identical(provider, images):
    run = model_randomisation(provider, images, ("edges", "gradcam"), seed=0)
    for measure in MEASURES:
        assert all(np.allclose(s, 1.0) for s in run.similarity("edges", measure))
    # …while a real method does change once the logits layer is re-initialised
    assert run.similarity("gradcam", "spearman_abs")[-1].mean() < 0.5


def test_randomisation_never_touches_the_audited_models(provider, images):
    before = [w.copy() for w in provider.audit_model.model.get_weights()]
    before_logits = [w.copy() for w in provider.audit_model.logits_model.get_weights()]
    model_randomisation(provider, images, ("saliency",), seed=0)
    for a, b in zip(before, provider.audit_model.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(before_logits, provider.audit_model.logits_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_reinitialised_weights_are_seeded_and_differ_from_the_trained_ones(provider):
    model = provider.audit_model.logits_model
    a = randomisation.ModelRandomiser(model, seed=1).weights({"predictions"})["predictions"][0]
    b = randomisation.ModelRandomiser(model, seed=1).weights({"predictions"})["predictions"][0]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, model.get_layer("predictions").get_weights()[0])


def test_edges_read_against_chance_stay_unchanged_and_fail(provider, images):
    from heatcheck.checks.sanity import gate_similarity, read_against_chance

    run = model_randomisation(provider, images, ("edges",), seed=0, kinds=("cascading",))
    for measure in MEASURES:
        chance = run.chance("edges", measure)
        assert np.all(chance < 0.9)  # different images' edge maps differ…
        reading = read_against_chance(run.similarity("edges", measure), chance, area=True, seed=[0])
        np.testing.assert_allclose(reading.values, 1.0)  # …but each image's never changes
        assert gate_similarity(reading.values, 0.2, [0], remedy="").outcome != "passed"
