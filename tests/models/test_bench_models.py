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


@pytest.mark.parametrize("tag", ["label", "none", "random"])
@pytest.mark.parametrize(("name", "layout"), CLEAN)
def test_clean_model_is_accurate_whatever_the_tag(bench_model, name, layout, tag):
    assert _accuracy(bench_model(name), tag, layout) >= 0.95


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
