"""The compiled engine gives tf-keras-vis's maps (normalised, max abs difference ≤ 1e-4)."""

import keras
import numpy as np
import pytest

from fixtures.audit_fixtures import BENCH_MODELS
from fixtures.bench import make_bench
from heatcheck import models
from heatcheck.explain.compiled import CompiledEngine
from heatcheck.explain.reference import ReferenceEngine
from heatcheck.settings import METHODS

TOLERANCE = 1e-4


def _compare(audit_model, x, labels, samples=20):
    compiled = CompiledEngine(audit_model.logits_model, audit_model.conv_layer, audit_model.device)
    reference = ReferenceEngine(audit_model.logits_model, audit_model.conv_layer)
    mine = compiled.explain_many(METHODS, x, labels, normalise=True, smooth_samples=samples, seed=7)
    for method in METHODS:
        theirs = reference.explain(method, x, labels, normalise=True, smooth_samples=samples, seed=7)
        assert mine[method].shape == theirs.shape
        assert np.abs(mine[method] - theirs).max() <= TOLERANCE, method


def test_bench_model_maps_match_tf_keras_vis():
    audit_model = models.load(BENCH_MODELS / "clean.keras", "bench:clean")
    images, labels, _, _ = make_bench(8, seed=11)
    _compare(audit_model, images.astype(np.float32), labels)


@pytest.mark.slow
def test_keras_applications_maps_match_tf_keras_vis():
    keras.utils.set_random_seed(0)
    net = keras.applications.VGG16(weights=None, input_shape=(64, 64, 3), classes=10)
    audit_model = models.wrap(net, "vgg16", models.weights_sha256(net))
    x = np.random.default_rng(0).uniform(-100, 100, (3, 64, 64, 3)).astype(np.float32)
    _compare(audit_model, x, np.array([1, 4, 9]), samples=5)


def test_wrapping_never_mutates_the_users_model():
    audit_model = models.load(BENCH_MODELS / "clean.keras", "bench:clean")
    assert audit_model.model.layers[-1].activation.__name__ == "softmax"
    assert audit_model.logits_model.layers[-1].activation.__name__ == "linear"
    x = make_bench(2, seed=1)[0].astype(np.float32)
    probs = np.asarray(audit_model.model(x))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
