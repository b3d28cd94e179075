"""The sanity gate (heatcheck.checks.sanity): similarities read against their chance level, three outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from heatcheck.checks.sanity import MEASURES, curve_area, gate_similarity, read_against_chance
from heatcheck.metrics.similarity import chance_normalised, similarity_to_other_images

SEED = [0, 1]


def test_normalisation_maps_unchanged_to_one_and_chance_to_zero() -> None:
    np.testing.assert_allclose(chance_normalised(np.array([1.0, 0.4, 0.1]), 0.4), [1.0, 0.0, -0.5])


def test_no_room_above_chance_gives_nan_and_an_inconclusive_gate_that_says_why() -> None:
    values = chance_normalised(np.ones(8), 1.0)
    assert np.isnan(values).all()
    decision = gate_similarity(values, 0.3, SEED)
    assert decision.outcome == "inconclusive"
    assert "cannot tell" in (decision.reason or "")


def test_an_explainer_that_ignores_the_model_fails() -> None:
    decision = gate_similarity(np.ones(8), 0.3, SEED)
    assert decision.outcome == "failed"
    assert decision.effect == 0.0
    assert "depend too little on the model" in (decision.reason or "")


def test_maps_as_different_as_other_images_maps_pass() -> None:
    values = np.random.default_rng(0).normal(0.0, 0.1, 8)
    decision = gate_similarity(values, 0.3, SEED)
    assert decision.outcome == "passed"
    assert decision.score == pytest.approx(-values.mean())  # oriented: higher = better


def test_a_spread_around_the_threshold_on_few_images_is_inconclusive() -> None:
    values = np.array([0.0, 1.4, 0.2, 1.2, 0.5, 0.9, 0.1, 1.3])  # mean 0.7 = 1 - margin
    decision = gate_similarity(values, 0.3, SEED)
    assert decision.outcome == "inconclusive"
    assert "--hc-sanity-images" in (decision.reason or "")


def test_a_method_that_only_changes_at_the_last_layer_is_seen_by_the_area() -> None:
    # Eight steps; the maps stay as they were until the last (lowest) block is re-initialised.
    steps = [np.full(8, 1.0)] * 7 + [np.full(8, 0.2)]
    chance = np.full(8, 0.2)
    final = read_against_chance(steps, chance, area=False, seed=SEED)
    area = read_against_chance(steps, chance, area=True, seed=SEED)
    assert gate_similarity(final.values, 0.3, SEED).outcome == "passed"
    assert gate_similarity(area.values, 0.2, SEED).outcome == "failed"
    np.testing.assert_allclose(area.values, curve_area(area_steps := [
        chance_normalised(s, 0.2) for s in steps]))
    assert area.normalised_curve == pytest.approx([float(s.mean()) for s in area_steps])


def test_reading_records_what_the_report_draws() -> None:
    steps = [np.array([0.5, 0.7]), np.array([0.2, 0.4])]
    reading = read_against_chance(steps, np.array([0.1, 0.3]), area=False, seed=SEED)
    details = reading.details()
    assert details["chance"] == pytest.approx(0.2)
    assert details["curve"] == pytest.approx([0.6, 0.3])
    assert details["normalised_curve"] == pytest.approx([0.5, 0.125])
    assert len(details["chance_interval"]) == 2


@pytest.mark.parametrize("measure", list(MEASURES))
def test_unrelated_heavy_tailed_maps_at_224_pass_on_every_measure(measure: str) -> None:
    """No method fails because of a measure's range or cell size: maps with nothing in common
    with the originals (independent heavy-tailed maps at 224x224, what a randomised model's
    |gradients| look like) are read as unrelated, whatever the raw similarity."""
    fn = MEASURES[measure]
    rng = np.random.default_rng(1)
    original, randomised = rng.lognormal(0.0, 1.5, (2, 12, 224, 224))
    reading = read_against_chance([fn(original, randomised)], similarity_to_other_images(fn, original),
                                  area=False, seed=SEED)
    assert abs(float(np.mean(reading.values))) < 0.1
    assert gate_similarity(reading.values, 0.3, SEED).outcome == "passed"
