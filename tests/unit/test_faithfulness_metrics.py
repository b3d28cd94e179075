"""Deletion and insertion (RISE) oracles: curves with known areas, Xplique's perfect-model
oracles through the curve builder, orders that favour nothing, and the paired gate."""

import numpy as np
import pytest

from heatcheck.checks.faithfulness import (
    SetCurves,
    baseline_images,
    causal_curves,
    fractions,
    gate_faithfulness,
    map_orders,
    random_orders,
    ranks_of,
)
from heatcheck.metrics.base import direction_of
from heatcheck.metrics.causal import deletion_auc, deletion_order, insertion_auc

FRACTIONS = np.array([0.0, 0.1, 0.2, 0.4])


def test_a_constant_probability_scores_itself():
    np.testing.assert_allclose(deletion_auc(np.full((2, 4), 0.7), FRACTIONS), 0.7)
    np.testing.assert_allclose(insertion_auc(np.full((2, 4), 0.7), FRACTIONS), 0.7)


def test_a_decision_gone_at_the_first_step_scores_the_first_half_trapezoid():
    curves = np.array([[0.8, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(deletion_auc(curves, FRACTIONS), 0.8 * 0.5 * 0.1 / 0.4)


def test_area_matches_numpy_trapezoid():
    curves = np.random.default_rng(0).random((3, 17))
    f = fractions(16)
    np.testing.assert_allclose(insertion_auc(curves, f), np.trapezoid(curves, f, axis=1), rtol=1e-12)


def test_bad_shapes_and_fractions_are_refused():
    with pytest.raises(ValueError, match="must be"):
        deletion_auc(np.ones((2, 3)), FRACTIONS)
    with pytest.raises(ValueError, match="increase from 0"):
        insertion_auc(np.ones((1, 4)), FRACTIONS[::-1])
    with pytest.raises(ValueError, match="at least 1 step"):
        fractions(0)


def test_directions():
    assert direction_of(deletion_auc) == "lower"
    assert direction_of(insertion_auc) == "higher"


def _two_class(p: np.ndarray) -> np.ndarray:
    return np.stack([p, 1.0 - p], axis=1)


def _curves_of_an_oracle(predict, steps):
    rng = np.random.default_rng(1)
    images = rng.uniform(1.0, 255.0, (5, 16, 16, 1)).astype(np.float32)  # no pixel is 0
    maps = rng.random((5, 16, 16))
    ranks = ranks_of(map_orders(maps, [f"i{k}" for k in range(5)], seed=0))
    return causal_curves(predict, images, np.zeros(5, int), ranks, baseline_images(images, "zeros"), steps)


def test_a_model_that_answers_zero_once_any_pixel_is_deleted_gives_deletion_near_zero():
    # Xplique's test_perfect_deletion: one step per pixel, any order.
    curves = _curves_of_an_oracle(lambda x: _two_class(1.0 - (x == 0).any(axis=(1, 2, 3))), steps=256)
    np.testing.assert_allclose(curves["deletion"][:, 0], 1.0)
    np.testing.assert_allclose(curves["deletion"][:, 1:], 0.0)
    np.testing.assert_allclose(deletion_auc(curves["deletion"], fractions(256)), 0.0, atol=1e-2)


def test_its_mirror_gives_insertion_near_one():
    # Xplique's test_perfect_insertion: the model answers 1 once any pixel is not the baseline.
    def predict(x):
        return _two_class((x != 0).any(axis=(1, 2, 3)).astype(float))

    curves = _curves_of_an_oracle(predict, steps=256)
    np.testing.assert_allclose(insertion_auc(curves["insertion"], fractions(256)), 1.0, atol=1e-2)
    # with the default 16 steps the first trapezoid is all that is lost: exactly 1 − 1/32
    coarse = _curves_of_an_oracle(predict, steps=16)
    np.testing.assert_allclose(insertion_auc(coarse["insertion"], fractions(16)), 1.0 - 1.0 / 32)


def test_a_model_that_reads_one_pixel_rewards_the_map_that_points_at_it():
    images = np.full((1, 8, 8, 1), 200.0, np.float32)

    def predict(x):  # the class's probability is the brightness of pixel (2, 5)
        return _two_class(x[:, 2, 5, 0] / 255.0)

    pointing = np.zeros((1, 8, 8))
    pointing[0, 2, 5] = 1.0
    base, f = baseline_images(images, "zeros"), fractions(8)

    def curves(maps):
        return causal_curves(predict, images, np.zeros(1, int), ranks_of(map_orders(maps, ["a"], 0)), base, 8)

    good, away = curves(pointing), curves(-pointing)
    assert deletion_auc(good["deletion"], f)[0] < deletion_auc(away["deletion"], f)[0]
    assert insertion_auc(good["insertion"], f)[0] > insertion_auc(away["insertion"], f)[0]


def test_endpoints_are_the_untouched_and_the_fully_replaced_image():
    images = np.random.default_rng(2).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)

    def predict(x):
        return _two_class(x.mean(axis=(1, 2, 3)) / 255.0)

    base = baseline_images(images, "mean")
    ranks = ranks_of(random_orders((8, 8), ["a", "b", "c"], seed=0)[:, 0])
    curves = causal_curves(predict, images, np.zeros(3, int), ranks, base, 4)
    np.testing.assert_allclose(curves["deletion"][:, 0], images.mean(axis=(1, 2, 3)) / 255.0, rtol=1e-5)
    np.testing.assert_allclose(curves["insertion"][:, -1], curves["deletion"][:, 0])
    np.testing.assert_allclose(curves["deletion"][:, -1], curves["insertion"][:, 0])
    np.testing.assert_allclose(curves["deletion"][:, -1], base.mean(axis=(1, 2, 3)) / 255.0, rtol=1e-5)


def test_a_single_step_is_just_the_endpoints():
    curves = _curves_of_an_oracle(lambda x: _two_class(1.0 - (x == 0).any(axis=(1, 2, 3))), steps=1)
    np.testing.assert_allclose(curves["deletion"], [[1.0, 0.0]] * 5)
    np.testing.assert_allclose(curves["insertion"], [[0.0, 1.0]] * 5)


def test_baselines():
    images = np.random.default_rng(3).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    assert np.all(baseline_images(images, "zeros") == 0)
    np.testing.assert_allclose(baseline_images(images, "mean")[:, 3, 4], images.mean(axis=(1, 2)), rtol=1e-5)
    blurred = baseline_images(images, "blur")
    assert blurred.std() < images.std()
    with pytest.raises(ValueError, match="unknown faithfulness baseline 'grey'"):
        baseline_images(images, "grey")


def test_random_orders_are_permutations_seeded_by_the_image_not_its_neighbours():
    alone = random_orders((4, 4), ["b"], seed=7)
    together = random_orders((4, 4), ["a", "b"], seed=7)
    np.testing.assert_array_equal(alone[0], together[1])
    assert sorted(together[0, 0].tolist()) == list(range(16))
    assert not np.array_equal(together[0, 0], together[0, 1])


def test_ranks_invert_the_order():
    orders = np.array([[2, 0, 3, 1]])
    np.testing.assert_array_equal(ranks_of(orders), [[1, 3, 0, 2]])


def test_order_is_most_important_first():
    maps = np.array([[[0.1, 0.9], [0.5, 0.0]]])
    assert deletion_order(maps).tolist() == [[1, 2, 0, 3]]


def test_flat_map_is_deleted_in_random_not_raster_order():
    order = map_orders(np.zeros((1, 8, 8)), ["x"], seed=0)[0]
    assert sorted(order.tolist()) == list(range(64))
    assert order[:8].tolist() != list(range(8))


def test_nan_map_is_refused():
    with pytest.raises(ValueError, match="map 0"):
        deletion_order(np.full((1, 2, 2), np.nan))


def test_gate_fails_an_order_no_better_than_random_and_passes_a_clear_win():
    rng = np.random.default_rng(4)
    random_auc = rng.uniform(0.4, 0.6, 64)
    same = random_auc + rng.normal(0.0, 0.02, 64)
    assert gate_faithfulness(same, random_auc, "deletion", 0.05, [0]).outcome == "failed"
    assert gate_faithfulness(random_auc - 0.2, random_auc, "deletion", 0.05, [0]).outcome == "passed"
    assert gate_faithfulness(random_auc + 0.2, random_auc, "insertion", 0.05, [0]).outcome == "passed"
    assert gate_faithfulness(random_auc + 0.2, random_auc, "deletion", 0.05, [0]).outcome == "failed"
    # a win by the margin on average, but spread too widely for 8 images to tell
    wins = 0.05 + np.array([-0.2, 0.2, -0.15, 0.15, -0.1, 0.1, -0.05, 0.05])
    decision = gate_faithfulness(random_auc[:8] - wins, random_auc[:8], "deletion", 0.05, [0])
    assert decision.outcome == "inconclusive"
    assert decision.effect == pytest.approx(0.05)


def test_reach_bounds_every_difference_between_orders():
    """No order's area differs from another's by more than the curves' reach: the reason a check
    whose curves move less than the margin cannot pass."""
    rng = np.random.default_rng(7)
    f = np.linspace(0.0, 1.0, 9)
    for _ in range(20):
        curves = SetCurves(f, {"m": {k: rng.uniform(0, 1, (6, 9)) for k in ("deletion", "insertion")}},
                           {k: rng.uniform(0, 1, (6, 3, 9)) for k in ("deletion", "insertion")}, "blur")
        for kind in ("deletion", "insertion"):
            gap = np.abs(curves.auc("m", kind) - curves.random_auc(kind))
            assert (gap <= curves.reach("m", kind) + 1e-12).all()


def test_flat_curves_are_inconclusive_not_failed():
    """A model that keeps its answer whatever is deleted (the blur baseline keeps what it reads)
    gives curves that differ by rounding only: the set cannot tell, and says what to try."""
    rng = np.random.default_rng(5)
    random_auc = np.full(64, 0.99999)
    rounding = random_auc + rng.normal(0.0, 1e-7, 64)
    reach = np.full(64, 3e-6)
    decision = gate_faithfulness(rounding, random_auc, "deletion", 0.05, [0], reach=reach, baseline="blur")
    assert decision.outcome == "inconclusive"
    assert "--hc-faithfulness-baseline zeros or mean" in decision.reason
    assert "3e-06" in decision.reason
    # Curves that move: the same scores are judged as before.
    moving = gate_faithfulness(rounding, random_auc, "deletion", 0.05, [0], reach=np.full(64, 0.8))
    unbounded = gate_faithfulness(rounding, random_auc, "deletion", 0.05, [0])
    assert moving.outcome == unbounded.outcome == "failed"


def test_finite_mean_ignores_missing_scores_and_never_warns():
    import warnings

    from heatcheck.metrics.base import finite_mean

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert finite_mean(np.array([1.0, np.nan, 3.0])) == 2.0
        assert np.isnan(finite_mean(np.array([np.nan, np.nan])))
        pair = np.array([[1.0, np.nan], [3.0, np.nan]])
        np.testing.assert_allclose(finite_mean(pair, axis=0), [2.0, np.nan])
