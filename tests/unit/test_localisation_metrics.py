"""Localisation metrics against oracles whose answer is known exactly, plus properties."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from heatcheck.metrics.base import direction_of
from heatcheck.metrics.pointing import (
    chance_corrected,
    default_pointing_tolerance,
    energy_pointing_game,
    mask_fraction,
    pointing_chance,
    pointing_game,
    pointing_region,
    relevance_rank_accuracy,
    validate_maps_and_masks,
)

METRICS = [pointing_game, energy_pointing_game, relevance_rank_accuracy]
REPEATABLE = settings(derandomize=True, database=None, deadline=None, max_examples=50)


def square_masks(n: int = 2, size: int = 8, top: int = 2, side: int = 3) -> np.ndarray:
    """``n`` identical masks: a ``side``-pixel square at (``top``, ``top``) in a size×size image."""
    masks = np.zeros((n, size, size), dtype=bool)
    masks[:, top : top + side, top : top + side] = True
    return masks


@pytest.mark.parametrize("score", METRICS)
def test_returns_one_float64_score_per_image(score: Callable[..., np.ndarray]) -> None:
    masks = square_masks(n=3)
    scores = score(np.random.default_rng(0).random(masks.shape), masks)
    assert scores.shape == (3,)
    assert scores.dtype == np.float64


@pytest.mark.parametrize("score", METRICS)
def test_map_with_all_positive_mass_inside_the_mask_scores_one(score: Callable[..., np.ndarray]) -> None:
    masks = square_masks()
    maps = np.where(masks, 1.0 + np.arange(masks[0].size).reshape(masks.shape[1:]), 0.0)
    maps[1][~masks[1]] = -5.0  # negative evidence outside is not mass
    np.testing.assert_array_equal(score(maps, masks), [1.0, 1.0])


@pytest.mark.parametrize("score", METRICS)
def test_map_with_all_positive_mass_outside_the_mask_scores_zero(score: Callable[..., np.ndarray]) -> None:
    masks = square_masks()
    maps = np.where(masks, 0.0, 1.0 + np.arange(masks[0].size).reshape(masks.shape[1:]))
    maps[1][masks[1]] = -5.0
    np.testing.assert_array_equal(score(maps, masks), [0.0, 0.0])


@pytest.mark.parametrize("score", METRICS)
@pytest.mark.parametrize("value", [0.7, 0.0, -2.0])
def test_constant_map_scores_the_mask_fraction(score: Callable[..., np.ndarray], value: float) -> None:
    masks = square_masks()
    masks[1, 0, :] = True  # a second mask size, so the per-image fraction matters
    maps = np.full(masks.shape, value)
    np.testing.assert_allclose(score(maps, masks), mask_fraction(masks), rtol=1e-12)
    np.testing.assert_allclose(mask_fraction(masks), [9 / 64, 17 / 64])


@pytest.mark.parametrize("score", METRICS)
def test_full_image_mask_scores_one(score: Callable[..., np.ndarray]) -> None:
    masks = np.ones((2, 5, 5), dtype=bool)
    maps = np.stack([np.random.default_rng(1).normal(size=(5, 5)), -np.ones((5, 5))])
    np.testing.assert_array_equal(score(maps, masks), [1.0, 1.0])


def test_pointing_game_ties_at_the_maximum_count_the_share_inside() -> None:
    masks = square_masks(n=2)
    maps = np.zeros(masks.shape)
    maps[0, 3, 3] = maps[0, 7, 7] = 1.0  # one tied peak in, one out
    maps[1, 2, 2] = maps[1, 3, 3] = maps[1, 0, 0] = maps[1, 7, 0] = 1.0  # two in, two out
    np.testing.assert_array_equal(pointing_game(maps, masks), [0.5, 0.5])


def test_pointing_game_tolerance_forgives_a_near_miss() -> None:
    masks = square_masks(n=1)
    maps = np.zeros(masks.shape)
    maps[0, 3, 5] = 1.0  # one pixel right of the mask's edge at column 4
    assert pointing_game(maps, masks, tolerance=0)[0] == 0.0
    assert pointing_game(maps, masks, tolerance=2)[0] == 1.0


def test_pointing_game_tolerance_raises_chance_to_the_dilated_fraction() -> None:
    masks = square_masks(n=1)
    # Distance < 2 reaches the 8 neighbours (√2 < 2) but not two steps away: a 3×3 square
    # grows to 5×5, 25 pixels.
    np.testing.assert_allclose(pointing_game(np.ones(masks.shape), masks, tolerance=2), [25 / 64])
    np.testing.assert_allclose(pointing_chance(masks, 2), [25 / 64])


def test_pointing_game_distance_is_strict() -> None:
    """TorchRay's rule: a hit is a distance strictly below the tolerance, so 1 px is the mask."""
    masks = square_masks(n=1)
    maps = np.zeros(masks.shape)
    maps[0, 3, 5] = 1.0  # exactly 1 px from the mask
    assert pointing_game(maps, masks, tolerance=1)[0] == 0.0
    np.testing.assert_array_equal(pointing_region(masks, 1), masks)


@pytest.mark.parametrize("tolerance", [1, 2, 3, 5, 15])
def test_pointing_game_tolerance_is_dilation_by_an_open_disk(tolerance: int) -> None:
    masks = np.random.default_rng(tolerance).random((3, 40, 40)) > 0.99
    masks[:, 20, 20] = True
    y, x = np.mgrid[-tolerance:tolerance + 1, -tolerance:tolerance + 1]
    footprint = x**2 + y**2 < tolerance**2
    dilated = np.stack([ndimage.binary_dilation(mask, structure=footprint) for mask in masks])
    chance = pointing_game(np.zeros(masks.shape), masks, tolerance=tolerance)
    np.testing.assert_array_equal(chance, mask_fraction(dilated))


@pytest.mark.parametrize(("size", "expected"), [((224, 224), 15), ((64, 64), 4), ((240, 320), 16),
                                                ((448, 448), 30), ((8, 8), 1)])
def test_default_tolerance_is_15_px_at_224_scaled(size: tuple[int, int], expected: int) -> None:
    assert default_pointing_tolerance(*size) == expected


def test_pointing_game_rejects_negative_tolerance() -> None:
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        pointing_game(np.ones((1, 4, 4)), np.ones((1, 4, 4), dtype=bool), tolerance=-1)


def test_relevance_rank_accuracy_splits_ties_at_the_cut() -> None:
    # K = 2: the 3 is inside and counts fully; one place is left for three tied 1s, one inside.
    maps = np.array([[[3.0, 1.0, 1.0, 1.0]]])
    masks = np.array([[[True, True, False, False]]])
    np.testing.assert_allclose(relevance_rank_accuracy(maps, masks), [(1 + 1 / 3) / 2])


def test_energy_pointing_game_is_the_positive_mass_share() -> None:
    masks = np.array([[[True, False, False, False]]])
    maps = np.array([[[3.0, 1.0, -10.0, 0.0]]])
    np.testing.assert_allclose(energy_pointing_game(maps, masks), [0.75])


def test_energy_pointing_game_does_not_overflow_on_huge_maps() -> None:
    masks = square_masks(n=1)
    maps = np.where(masks, 1e308, 0.0)
    maps[0, 0, 0] = 1e308
    np.testing.assert_allclose(energy_pointing_game(maps, masks), [0.9])


@pytest.mark.parametrize("score", METRICS)
def test_empty_mask_is_an_error_naming_the_image(score: Callable[..., np.ndarray]) -> None:
    masks = square_masks(n=3)
    masks[2] = False
    with pytest.raises(ValueError, match=r"^mask 2 is empty: no object pixels$"):
        score(np.ones(masks.shape), masks)


@pytest.mark.parametrize(("bad", "word"), [(np.nan, "NaN"), (np.inf, "Inf"), (-np.inf, "Inf")])
def test_non_finite_map_is_an_error_naming_the_image(bad: float, word: str) -> None:
    masks = square_masks(n=4)
    maps = np.ones(masks.shape)
    maps[3, 1, 1] = bad
    for score in METRICS:
        with pytest.raises(ValueError, match=rf"^map 3 contains {word}$"):
            score(maps, masks)


@pytest.mark.parametrize(
    ("maps_shape", "masks_shape", "message"),
    [
        ((2, 8, 8), (2, 8, 7), "differ in shape"),
        ((3, 8, 8), (2, 8, 8), "differ in shape"),
        ((8, 8), (8, 8), "maps must be 3-D"),
        ((2, 8, 8), (2, 8, 8, 1), "masks must be 3-D"),
    ],
)
def test_badly_shaped_input_is_an_error(
    maps_shape: tuple[int, ...], masks_shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        validate_maps_and_masks(np.ones(maps_shape), np.ones(masks_shape, dtype=bool))


def test_validate_returns_float64_maps_and_bool_masks() -> None:
    maps, masks = validate_maps_and_masks(np.ones((1, 2, 2), dtype=np.float32), np.eye(2)[None])
    assert maps.dtype == np.float64
    assert masks.dtype == np.bool_
    np.testing.assert_array_equal(masks[0], [[True, False], [False, True]])


def test_chance_corrected_maps_chance_to_zero_and_perfect_to_one() -> None:
    chance = np.array([0.06, 0.64, 0.5])
    np.testing.assert_allclose(chance_corrected(chance, chance), [0, 0, 0])
    np.testing.assert_allclose(chance_corrected(np.ones(3), chance), [1, 1, 1])
    np.testing.assert_allclose(chance_corrected(np.zeros(3), chance), -chance / (1 - chance))


def test_chance_corrected_is_nan_where_chance_is_one() -> None:
    assert np.isnan(chance_corrected(np.array([1.0]), np.array([1.0]))[0])


@pytest.mark.parametrize("score", METRICS)
def test_a_constant_map_scores_zero_once_corrected(score: Callable[..., np.ndarray]) -> None:
    masks = square_masks(n=2)
    chance = pointing_chance(masks, 0) if score is pointing_game else mask_fraction(masks)
    np.testing.assert_allclose(chance_corrected(score(np.ones(masks.shape), masks), chance), [0, 0],
                               atol=1e-12)


@pytest.mark.parametrize("score", METRICS)
def test_every_metric_declares_higher_is_better(score: Callable[..., np.ndarray]) -> None:
    assert direction_of(score) == "higher"


@st.composite
def maps_and_masks(draw: st.DrawFn, integer_maps: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Small batches of maps and non-empty masks; integer-valued maps make ties common."""
    n = draw(st.integers(1, 3))
    shape = (n, draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    if integer_maps:
        maps = draw(arrays(np.int8, shape, elements=st.integers(-3, 3))).astype(np.float64)
    else:
        finite = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)
        maps = draw(arrays(np.float64, shape, elements=finite | st.integers(-2, 2).map(float)))
    masks = draw(arrays(np.bool_, shape))
    for i in range(n):  # at least one object pixel per image
        masks[i].flat[draw(st.integers(0, shape[1] * shape[2] - 1))] = True
    return maps, masks


@REPEATABLE
@given(data=maps_and_masks())
def test_every_score_is_in_the_unit_interval(data: tuple[np.ndarray, np.ndarray]) -> None:
    maps, masks = data
    for score in METRICS:
        scores = score(maps, masks)
        assert np.all((scores >= 0.0) & (scores <= 1.0)), (score.__name__, scores)


@REPEATABLE
@given(data=maps_and_masks(integer_maps=True), scale=st.floats(1e-3, 1e3))
def test_scores_do_not_change_when_the_map_is_scaled_up_or_down(
    data: tuple[np.ndarray, np.ndarray], scale: float
) -> None:
    maps, masks = data
    for score in METRICS:
        np.testing.assert_allclose(score(scale * maps, masks), score(maps, masks), rtol=1e-9, atol=1e-12)


@REPEATABLE
@given(data=maps_and_masks())
def test_a_map_equal_to_its_mask_scores_one(data: tuple[np.ndarray, np.ndarray]) -> None:
    _, masks = data
    maps = masks.astype(np.float64)
    np.testing.assert_array_equal(pointing_game(maps, masks), 1.0)
    np.testing.assert_array_equal(energy_pointing_game(maps, masks), 1.0)
    np.testing.assert_array_equal(relevance_rank_accuracy(maps, masks), 1.0)
