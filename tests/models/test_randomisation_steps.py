"""Cascading randomisation steps of every keras.applications model the README lists: grouped by
the architecture's own blocks, a bounded number of them, every weighted layer in exactly one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from heatcheck.checks import randomisation
from heatcheck.models import applications

# The smallest input each architecture builds with (InceptionV3 needs 75); weights=None, no download.
SIZES = {"vgg16": 32, "vgg19": 32, "resnet50": 32, "mobilenet_v2": 32, "efficientnetb0": 32,
         "inception_v3": 75, "densenet121": 32}
# Steps that must exist: the blocks by their real names (top first).
EXPECTED = {
    "vgg16": ["predictions", "fc2", "fc1", "block5", "block4", "block3", "block2", "block1"],
    "vgg19": ["predictions", "fc2", "fc1", "block5", "block4", "block3", "block2", "block1"],
    "resnet50": ["predictions", "conv5_block3", "conv5_block2", "conv5_block1", "conv4_block6", "conv1"],
    "mobilenet_v2": ["predictions", "Conv_1", "block_16", "block_15", "block_1", "expanded_conv", "Conv1"],
    "efficientnetb0": ["predictions", "top", "block7a", "block6d", "block2b", "block2a", "block1a", "stem"],
    "inception_v3": ["predictions", "mixed10", "mixed9", "mixed1", "mixed0"],
    "densenet121": ["predictions", "conv5", "pool4", "conv4", "pool3", "conv3", "pool2", "conv2", "conv1"],
}


@pytest.fixture(scope="module", params=sorted(SIZES))
def application(request: pytest.FixtureRequest):
    import keras

    name = request.param
    keras.utils.set_random_seed(0)
    model = applications._architecture(applications.APPLICATIONS[name], (SIZES[name], SIZES[name], 3))
    return name, model


def test_steps_follow_the_blocks_and_cover_every_weighted_layer_once(application) -> None:
    name, model = application
    steps = randomisation.layer_groups(model)
    assert 5 <= len(steps) <= randomisation.MAX_STEPS, [s.name for s in steps]
    names = [s.name for s in steps]
    assert [n for n in names if n in EXPECTED[name]] == EXPECTED[name], names
    grouped = [layer for step in steps for layer in step.layers]
    weighted = [layer.name for layer in model.layers if layer.weights]
    assert sorted(grouped) == sorted(weighted)  # each weighted layer in exactly one step
    assert len(set(grouped)) == len(grouped)


def test_per_layer_grouping_is_kept_for_who_asks_for_it(application) -> None:
    _, model = application
    steps = randomisation.layer_groups(model, "layer")
    assert len(steps) == sum(1 for layer in model.layers if layer.weights)


def fake_model(names: list[str]) -> SimpleNamespace:
    return SimpleNamespace(layers=[SimpleNamespace(name=n, weights=[0]) for n in names])


def test_a_model_without_block_names_gets_a_bounded_number_of_steps() -> None:
    layers = [f"conv2d_{i}" for i in range(100)] + ["dense", "predictions"]
    steps = randomisation.layer_groups(fake_model(layers))
    assert len(steps) == randomisation.MAX_STEPS
    assert steps[0].layers[-1] == "predictions"
    assert steps[-1].layers[0] == "conv2d_0"
    assert [layer for step in reversed(steps) for layer in step.layers] == layers  # in order, each once
    assert steps[-1].name == "conv2d_0..conv2d_4"


def test_a_small_model_keeps_one_step_per_layer() -> None:
    steps = randomisation.layer_groups(fake_model(["conv_a", "conv_b", "dense"]))
    assert [s.name for s in steps] == ["dense", "conv_b", "conv_a"]
