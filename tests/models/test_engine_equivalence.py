"""The compiled engine gives tf-keras-vis's maps: normalised (max abs difference ≤ 1e-4) and
unnormalised (the same, relative to each map's peak), Grad-CAM++ included; large logits
overflow neither engine."""

import keras
import numpy as np
import pytest
from heatcheck.fixtures.audit_fixtures import BENCH_MODELS
from heatcheck.fixtures.bench import make_bench

from heatcheck import models
from heatcheck.explain.compiled import CompiledEngine
from heatcheck.explain.postprocess import normalise_per_image
from heatcheck.explain.reference import ReferenceEngine
from heatcheck.settings import METHODS

TOLERANCE = 1e-4


def _peak(maps):
    return np.abs(maps).max(axis=(1, 2), keepdims=True)


def _compare(audit_model, x, labels, samples=20):
    compiled = CompiledEngine(audit_model.logits_model, audit_model.conv_layer, audit_model.device)
    reference = ReferenceEngine(audit_model.logits_model, audit_model.conv_layer)
    mine = compiled.explain_many(METHODS, x, labels, normalise=False, smooth_samples=samples, seed=7)
    for method in METHODS:
        theirs = reference.explain(method, x, labels, normalise=False, smooth_samples=samples, seed=7)
        assert mine[method].shape == theirs.shape
        # Unnormalised: the same scale in both engines (Grad-CAM++ without tf-keras-vis's exp(score)).
        assert (np.abs(mine[method] - theirs) <= TOLERANCE * _peak(theirs)).all(), method
        difference = normalise_per_image(mine[method]) - normalise_per_image(theirs)
        assert np.abs(difference).max() <= TOLERANCE, method


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


def _with_logits_shifted(logits_model, shift):
    """A copy of ``logits_model`` whose every logit is ``shift`` higher: no gradient changes."""
    copy = keras.models.clone_model(logits_model)
    copy.set_weights(logits_model.get_weights())
    last = copy.layers[-1]
    kernel, bias = last.get_weights()
    last.set_weights([kernel, bias + shift])
    return copy


def test_large_logits_change_no_gradcampp_map_in_either_engine():
    from tf_keras_vis.utils.scores import CategoricalScore

    audit_model = models.load(BENCH_MODELS / "clean.keras", "bench:clean")
    images, labels, _, _ = make_bench(4, seed=12)
    x = images.astype(np.float32)
    shifted = _with_logits_shifted(audit_model.logits_model, 200.0)  # exp(200) overflows float32
    before = ReferenceEngine(audit_model.logits_model, audit_model.conv_layer)
    after = ReferenceEngine(shifted, audit_model.conv_layer)
    # tf-keras-vis's own score would give NaN maps here, which is what the engine avoids:
    raw = after.gradcampp(CategoricalScore([int(v) for v in labels]), x,
                          penultimate_layer=audit_model.conv_layer, seek_penultimate_conv_layer=False,
                          normalize_cam=False)
    assert not np.isfinite(raw).all()
    expected = before.explain("gradcampp", x, labels, normalise=False)
    for engine in (after, CompiledEngine(shifted, audit_model.conv_layer, audit_model.device)):
        maps = engine.explain("gradcampp", x, labels, normalise=False)
        assert np.isfinite(maps).all(), engine.name
        assert (np.abs(maps - expected) <= TOLERANCE * _peak(expected)).all(), engine.name


def test_wrapping_never_mutates_the_users_model():
    audit_model = models.load(BENCH_MODELS / "clean.keras", "bench:clean")
    assert audit_model.model.layers[-1].activation.__name__ == "softmax"
    assert audit_model.logits_model.layers[-1].activation.__name__ == "linear"
    x = make_bench(2, seed=1)[0].astype(np.float32)
    probs = np.asarray(audit_model.model(x))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
