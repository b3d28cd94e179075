"""Deletion metric oracles: curves with known areas, and a deletion order that favours nothing."""

import numpy as np
import pytest

from heatcheck.metrics.base import direction_of
from heatcheck.metrics.faithfulness import deletion_auc, deletion_order

FRACTIONS = np.array([0.0, 0.1, 0.2, 0.4])


def test_a_decision_that_never_moves_scores_one():
    np.testing.assert_allclose(deletion_auc(np.full((2, 4), 0.7), FRACTIONS), 1.0)


def test_a_decision_gone_at_the_first_step_scores_the_first_half_trapezoid():
    curves = np.array([[0.8, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(deletion_auc(curves, FRACTIONS), 0.5 * 0.1 / 0.4)


def test_zero_starting_probability_is_nan_not_a_score():
    assert np.isnan(deletion_auc(np.zeros((1, 4)), FRACTIONS)[0])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="must be"):
        deletion_auc(np.ones((2, 3)), FRACTIONS)


def test_order_is_most_important_first():
    maps = np.array([[[0.1, 0.9], [0.5, 0.0]]])
    assert deletion_order(maps).tolist() == [[1, 2, 0, 3]]


def test_flat_map_is_deleted_in_random_not_raster_order():
    order = deletion_order(np.zeros((1, 8, 8)), np.random.default_rng(0))[0]
    assert sorted(order.tolist()) == list(range(64))
    assert order[:8].tolist() != list(range(8))


def test_nan_map_is_refused():
    with pytest.raises(ValueError, match="map 0"):
        deletion_order(np.full((1, 2, 2), np.nan))


def test_direction():
    assert direction_of(deletion_auc) == "lower"


def test_finite_mean_ignores_missing_scores_and_never_warns():
    import warnings

    from heatcheck.metrics.base import finite_mean

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert finite_mean(np.array([1.0, np.nan, 3.0])) == 2.0
        assert np.isnan(finite_mean(np.array([np.nan, np.nan])))
        pair = np.array([[1.0, np.nan], [3.0, np.nan]])
        np.testing.assert_allclose(finite_mean(pair, axis=0), [2.0, np.nan])
