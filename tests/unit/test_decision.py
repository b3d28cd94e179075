"""heatcheck.checks.decision: the three outcomes on scores whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from heatcheck.checks.decision import bootstrap_interval, decide

RNG = np.random.default_rng(0)


def _decide(scores, controls, **kw):
    kw = {"margin": 0.1, "seed": 0, "weak_control": 0.25, **kw}
    return decide(np.asarray(scores, float), {k: np.asarray(v, float) for k, v in controls.items()}, **kw)


def test_interval_of_a_constant_is_that_constant() -> None:
    interval = bootstrap_interval(np.full(20, 0.3), seed=1)
    assert interval.low == pytest.approx(0.3)
    assert interval.high == pytest.approx(0.3)


def test_interval_covers_the_mean_and_shrinks_with_more_images() -> None:
    small = bootstrap_interval(RNG.normal(0.5, 0.2, 16), seed=1)
    large = bootstrap_interval(RNG.normal(0.5, 0.2, 1024), seed=1)
    assert small.low < 0.5 < small.high or abs(small.low - 0.5) < 0.15
    assert large.high - large.low < (small.high - small.low) / 4


def test_interval_is_seeded_and_ignores_nan() -> None:
    values = np.r_[RNG.random(30), np.nan]
    assert bootstrap_interval(values, seed=[3, 4]) == bootstrap_interval(values, seed=[3, 4])
    assert np.isfinite(bootstrap_interval(values, seed=0).low)


def test_interval_of_a_very_large_set_is_computed_in_bounded_chunks() -> None:
    interval = bootstrap_interval(np.ones(3_000_000), seed=0, resamples=4)
    assert interval.low == pytest.approx(1.0)


def test_a_map_far_above_weak_controls_passes() -> None:
    d = _decide(np.full(40, 0.9) + RNG.normal(0, 0.05, 40), {"random": RNG.normal(0, 0.05, 40)})
    assert d.outcome == "passed"
    assert d.control == "random"
    assert d.reason is None


def test_a_map_below_chance_fails_even_against_strong_controls() -> None:
    d = _decide(np.full(40, -0.5), {"centre": np.full(40, 0.9)})
    assert d.outcome == "failed"
    assert "below chance" in d.reason


def test_a_map_no_better_than_weak_controls_fails() -> None:
    d = _decide(np.full(40, 0.1) + RNG.normal(0, 0.01, 40), {"centre": np.full(40, 0.15)})
    assert d.outcome == "failed"
    assert "centre" in d.reason


def test_strong_controls_make_the_set_unable_to_tell() -> None:
    d = _decide(np.full(40, 0.9), {"centre": np.full(40, 0.9)}, strong_control_remedy="use tighter masks")
    assert d.outcome == "inconclusive"
    assert "tighter masks" in d.reason
    assert "centre" in d.reason


def test_too_few_images_are_inconclusive() -> None:
    d = _decide([0.9, 0.9, 0.9], {"random": [0.0, 0.0, 0.0]})
    assert d.outcome == "inconclusive"
    assert "only 3" in d.reason


def test_a_wide_interval_around_the_margin_is_inconclusive() -> None:
    scores = np.r_[np.full(4, 0.9), np.full(4, -0.5)]
    d = _decide(scores, {"random": np.zeros(8)})
    assert d.outcome == "inconclusive"
    assert "audit more images" in d.reason


def test_the_strongest_control_is_the_one_compared() -> None:
    d = _decide(np.full(20, 0.8), {"random": np.zeros(20), "edges": np.full(20, 0.2)})
    assert d.control == "edges"
    assert d.effect == pytest.approx(0.6)


def test_lower_is_better_is_oriented() -> None:
    # deletion AUC: the method's curve falls faster (lower) than the random order's
    d = _decide(np.full(20, 0.2), {"random order": np.full(20, 0.6)}, direction="lower",
                chance=np.full(20, 0.6))
    assert d.outcome == "passed"
    assert d.effect == pytest.approx(0.4)
