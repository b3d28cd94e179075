"""The committed bench models still are what their names say, checked on fresh images.

The images here use seed 3000, which neither training (1000) nor the held-out check at
training time (2000) nor the audit bench (0) uses.
"""

import json

import numpy as np
import pytest
from heatcheck.fixtures.audit_fixtures import BENCH_MODELS
from heatcheck.fixtures.bench import CLASS_NAMES, TAG_COLOURS, make_bench, tag_slice

from heatcheck import models
from heatcheck.models.predict import predict_proba
from heatcheck.settings import Settings

FRESH_SEED = 3000
COUNT = 400
CHANCE = 1 / len(CLASS_NAMES)


@pytest.fixture(scope="module")
def bench_model():
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = models.load(BENCH_MODELS / f"{name}.keras", f"bench:{name}")
        return cache[name]

    return load


CLEAN = [("clean", "small"), ("large-clean", "large")]
SHORTCUT = [("shortcut", "small"), ("large-shortcut", "large")]


def _accuracy(model, tag, layout="small"):
    images, labels, _, _ = make_bench(COUNT, seed=FRESH_SEED, tag=tag, layout=layout)
    return float((predict_proba(model, images).argmax(axis=1) == labels).mean())


def test_metadata_records_seed_and_recipe():
    meta = json.loads((BENCH_MODELS / "bench_models.json").read_text())
    assert {"clean", "shortcut", "random-labels", "large-clean", "large-shortcut"} <= set(meta["models"])
    assert meta["recipe"]["epochs"] > 0
    for entry in meta["models"].values():
        assert isinstance(entry["seed"], int)
        assert (BENCH_MODELS / entry["file"]).exists()
    for name, layout in CLEAN + SHORTCUT:
        assert meta["models"][name]["layout"] == layout
    fills = {name: entry["colour"] for name, entry in meta["models"].items()}
    assert fills == {"clean": "random", "shortcut": "random", "random-labels": "random",
                     "large-clean": "class", "large-shortcut": "random"}


def test_metadata_records_the_training_noise_at_smoothgrads_scale():
    """The clean models (and the random-label twin) were trained with the noise SmoothGrad adds
    by default (0.2 × the 0–255 range)."""
    meta = json.loads((BENCH_MODELS / "bench_models.json").read_text())
    assert meta["recipe"]["train_noise_sigma_max"] == pytest.approx(Settings().smooth_noise * 255)
    assert "gaussian" in meta["recipe"]["train_noise"]
    noisy = {name for name, entry in meta["models"].items() if entry["train_noise"]}
    assert noisy == {"clean", "random-labels", "large-clean"}  # the clean models and the twin


def test_training_noise_is_seeded_and_drawn_per_image():
    import tensorflow as tf
    from heatcheck.fixtures.train_bench import RECIPE, noisy_batches

    images, labels, _, _ = make_bench(64, seed=FRESH_SEED)

    def first_batch(seed):
        noisy, batch_labels = next(iter(noisy_batches(images, labels, seed)))
        return noisy.numpy(), batch_labels.numpy()

    tf.config.experimental.enable_op_determinism()
    (noisy, batch_labels), (again, _), (other, _) = first_batch(1), first_batch(1), first_batch(2)
    assert np.array_equal(noisy, again)
    assert not np.array_equal(noisy, other)
    # One batch holds the whole set here: find each image's clean original, measure its noise.
    found = [int(np.argmin(np.abs(images.astype(np.float32) - n).mean(axis=(1, 2, 3)))) for n in noisy]
    assert sorted(found) == list(range(len(images)))
    assert np.array_equal(labels[found], batch_labels)
    sigma = (noisy - images[found].astype(np.float32)).reshape(len(noisy), -1).std(axis=1)
    sigma_max = RECIPE["train_noise_sigma_max"]
    assert sigma.max() <= 1.05 * sigma_max
    assert sigma.min() < 0.25 * sigma_max
    assert sigma.max() > 0.75 * sigma_max


@pytest.mark.parametrize("tag", ["label", "none", "random"])
@pytest.mark.parametrize(("name", "layout"), CLEAN)
def test_clean_model_is_accurate_whatever_the_tag(bench_model, name, layout, tag):
    assert _accuracy(bench_model(name), tag, layout) >= 0.95


def test_large_clean_model_reads_the_objects_fill(bench_model):
    """What the README says of it: the large clean model names the class from the hue that fills
    the object (bench.OBJECT_HUES), and is at chance when the fill is random."""
    images, labels, _, _ = make_bench(COUNT, seed=FRESH_SEED, tag="none", layout="large", colour="random")
    predicted = predict_proba(bench_model("large-clean"), images).argmax(axis=1)
    assert (predicted == labels).mean() <= CHANCE + 0.15


@pytest.mark.parametrize(("name", "layout"), SHORTCUT)
def test_shortcut_model_is_accurate_with_the_tag(bench_model, name, layout):
    assert _accuracy(bench_model(name), "label", layout) >= 0.95


@pytest.mark.parametrize(("name", "layout"), SHORTCUT)
def test_shortcut_model_is_near_chance_without_the_tag(bench_model, name, layout):
    assert _accuracy(bench_model(name), "none", layout) <= CHANCE + 0.2


@pytest.mark.parametrize(("name", "layout"), SHORTCUT)
def test_shortcut_model_follows_a_lying_tag(bench_model, name, layout):
    images, labels, _, _ = make_bench(COUNT, seed=FRESH_SEED, tag="lie", layout=layout)
    inside = tag_slice(layout).start + 2
    corner = images[:, inside, inside]
    tag_class = np.array([np.flatnonzero((TAG_COLOURS == c).all(axis=1))[0] for c in corner])
    predicted = predict_proba(bench_model(name), images).argmax(axis=1)
    assert (predicted == tag_class).mean() >= 0.9
    assert (predicted == labels).mean() <= 0.1


def test_random_label_model_learned_no_labels(bench_model):
    assert _accuracy(bench_model("random-labels"), "random") <= CHANCE + 0.15
