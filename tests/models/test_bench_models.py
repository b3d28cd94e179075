"""The committed bench models still are what their names say, checked on fresh images.

The images here use seed 3000, which neither training (1000) nor the held-out check at
training time (2000) nor the audit bench (0) uses.
"""

import json

import numpy as np
import pytest

from fixtures.audit_fixtures import BENCH_MODELS
from fixtures.bench import CLASS_NAMES, TAG_COLOURS, TAG_MARGIN, make_bench
from heatcheck import models
from heatcheck.predict import predict_proba

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


def _accuracy(model, tag):
    images, labels, _, _ = make_bench(COUNT, seed=FRESH_SEED, tag=tag)
    return float((predict_proba(model, images).argmax(axis=1) == labels).mean())


def test_metadata_records_seed_and_recipe():
    meta = json.loads((BENCH_MODELS / "bench_models.json").read_text())
    assert {"clean", "shortcut", "random-labels"} <= set(meta["models"])
    assert meta["recipe"]["epochs"] > 0
    for entry in meta["models"].values():
        assert isinstance(entry["seed"], int)
        assert (BENCH_MODELS / entry["file"]).exists()


@pytest.mark.parametrize("tag", ["label", "none", "random"])
def test_clean_model_is_accurate_whatever_the_tag(bench_model, tag):
    assert _accuracy(bench_model("clean"), tag) >= 0.95


def test_shortcut_model_is_accurate_with_the_tag(bench_model):
    assert _accuracy(bench_model("shortcut"), "label") >= 0.95


def test_shortcut_model_is_near_chance_without_the_tag(bench_model):
    assert _accuracy(bench_model("shortcut"), "none") <= CHANCE + 0.2


def test_shortcut_model_follows_a_lying_tag(bench_model):
    images, labels, _, _ = make_bench(COUNT, seed=FRESH_SEED, tag="lie")
    corner = images[:, TAG_MARGIN + 2, TAG_MARGIN + 2]
    tag_class = np.array([np.flatnonzero((TAG_COLOURS == c).all(axis=1))[0] for c in corner])
    predicted = predict_proba(bench_model("shortcut"), images).argmax(axis=1)
    assert (predicted == tag_class).mean() >= 0.9
    assert (predicted == labels).mean() <= 0.1


def test_random_label_model_learned_no_labels(bench_model):
    assert _accuracy(bench_model("random-labels"), "random") <= CHANCE + 0.15
