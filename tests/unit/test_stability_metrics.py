"""Explanation-stability metrics (heatcheck.metrics.sensitivity) against known answers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from heatcheck.checks.perturbations import LinfBall
from heatcheck.metrics.base import direction_of
from heatcheck.metrics.sensitivity import (
    avg_sensitivity,
    map_ssim,
    max_sensitivity,
    relative_change_to_other_images,
    relative_input_stability,
)

MapStabilityFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
SENSITIVITIES: list[MapStabilityFn] = [max_sensitivity, avg_sensitivity]
PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=40)


def _random(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


def _copies(maps: np.ndarray, k: int) -> np.ndarray:
    """K identical copies of each map, as (N, K, ...)."""
    return np.repeat(maps[:, None], k, axis=1)


@pytest.mark.parametrize(
    ("fn", "direction"),
    [
        (map_ssim, "higher"),
        (max_sensitivity, "lower"),
        (avg_sensitivity, "lower"),
        (relative_input_stability, "lower"),
    ],
)
def test_every_stability_metric_declares_its_direction(fn: Callable[..., np.ndarray], direction: str) -> None:
    assert direction_of(fn) == direction


@pytest.mark.parametrize(
    "maps", [_random((3, 16, 16)), np.full((3, 16, 16), 0.4)], ids=["random", "constant"]
)
def test_unchanged_maps_are_perfectly_stable(maps: np.ndarray) -> None:
    inputs = np.abs(_random((3, 16, 16, 3), seed=1)) + 0.1
    noisy_inputs = inputs[:, None] + 0.05 * _random((3, 4, 16, 16, 3), seed=2)
    perturbed = _copies(maps, 4)
    assert np.all(map_ssim(maps, perturbed) == 1.0)
    assert np.all(max_sensitivity(maps, perturbed) == 0.0)
    assert np.all(avg_sensitivity(maps, perturbed) == 0.0)
    assert np.all(relative_input_stability(inputs, noisy_inputs, maps, perturbed) == 0.0)


def test_map_scaled_by_known_factor_has_known_sensitivity() -> None:
    maps = _random((2, 8, 8))
    assert max_sensitivity(maps, (1.1 * maps)[:, None]) == pytest.approx(0.1, rel=1e-12)
    both = np.stack([1.1 * maps, 1.3 * maps], axis=1)
    assert max_sensitivity(maps, both) == pytest.approx(0.3, rel=1e-12)
    assert avg_sensitivity(maps, both) == pytest.approx(0.2, rel=1e-12)


def test_sensitivity_is_scale_free() -> None:
    maps, perturbed = _random((2, 8, 8)), _random((2, 3, 8, 8), seed=1)
    for fn in SENSITIVITIES:
        np.testing.assert_allclose(fn(1e-9 * maps, 1e-9 * perturbed), fn(maps, perturbed), rtol=1e-12)


@pytest.mark.parametrize("fn", SENSITIVITIES)
def test_zero_map_sensitivity_is_zero_if_it_stays_zero_else_inf(fn: MapStabilityFn) -> None:
    zero = np.zeros((2, 4, 4))
    perturbed = np.zeros((2, 2, 4, 4))
    perturbed[1, 1, 2, 2] = 1e-3
    np.testing.assert_array_equal(fn(zero, perturbed), [0.0, np.inf])


def test_map_ssim_averages_over_copies() -> None:
    maps = np.abs(_random((2, 16, 16)))
    other = np.abs(_random((2, 16, 16), seed=1))
    result = map_ssim(maps, np.stack([maps, other], axis=1))
    expected = (1.0 + map_ssim(maps, other[:, None])) / 2
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-15)


def test_ris_known_ratio_of_relative_changes() -> None:
    inputs = np.ones((2, 8, 8, 3))
    maps = np.abs(_random((2, 8, 8))) + 0.1
    # Each input value moves by 10 %, each map value by 20 %: RIS = 0.2 * 8 / (0.1 * 8 * sqrt(3)).
    result = relative_input_stability(inputs, (1.1 * inputs)[:, None], maps, (1.2 * maps)[:, None])
    np.testing.assert_allclose(result, 2 / np.sqrt(3), rtol=1e-12)


def test_ris_takes_the_worst_copy() -> None:
    inputs, maps = np.ones((1, 4, 4, 1)), np.ones((1, 4, 4))
    perturbed_inputs = np.stack([1.1 * inputs, 1.1 * inputs], axis=1)
    perturbed_maps = np.stack([1.1 * maps, 1.5 * maps], axis=1)
    result = relative_input_stability(inputs, perturbed_inputs, maps, perturbed_maps)
    np.testing.assert_allclose(result, [5.0], rtol=1e-12)


def test_ris_reads_zero_map_entries_as_eps() -> None:
    inputs, maps = np.ones((1, 4, 4, 1)), np.ones((1, 4, 4))
    maps[0, 0, 0] = 0.0
    perturbed_maps = maps.copy()[:, None]
    perturbed_maps[0, 0, 0, 0] = 1e-6
    # Only the zero entry moves, by eps relative to eps: a relative change of 1.
    result = relative_input_stability(inputs, (1.5 * inputs)[:, None], maps, perturbed_maps, eps=1e-6)
    np.testing.assert_allclose(result, [1.0 / (0.5 * 4.0)], rtol=1e-9)


def test_ris_floors_an_unchanged_input_at_eps() -> None:
    inputs, maps = np.ones((1, 4, 4, 2)), np.ones((1, 4, 4))
    result = relative_input_stability(inputs, inputs[:, None], maps, (2.0 * maps)[:, None], eps=1e-6)
    np.testing.assert_allclose(result, [4.0 / 1e-6], rtol=1e-12)


@pytest.mark.parametrize("fn", [map_ssim, *SENSITIVITIES])
@pytest.mark.parametrize("where", ["maps", "perturbed"])
def test_nan_raises_naming_the_image(fn: MapStabilityFn, where: str) -> None:
    maps, perturbed = _random((3, 8, 8)), _random((3, 2, 8, 8), seed=1)
    if where == "maps":
        maps[1, 3, 3] = np.nan
    else:
        perturbed[1, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"image\(s\) \[1\]"):
        fn(maps, perturbed)


@pytest.mark.parametrize("argument", [0, 1, 2, 3])
def test_ris_nan_in_any_argument_raises_naming_the_image(argument: int) -> None:
    args = [
        _random((3, 8, 8, 3)),
        _random((3, 2, 8, 8, 3), seed=1),
        _random((3, 8, 8)),
        _random((3, 2, 8, 8)),
    ]
    args[argument][2, ...].flat[5] = np.nan
    with pytest.raises(ValueError, match=r"image\(s\) \[2\]"):
        relative_input_stability(args[0], args[1], args[2], args[3])


@pytest.mark.parametrize(
    ("maps", "perturbed", "message"),
    [
        (np.ones((2, 8, 8)), np.ones((3, 1, 8, 8)), "same N"),
        (np.ones((2, 8, 8)), np.ones((2, 1, 8, 9)), "same N"),
        (np.ones((2, 8, 8)), np.ones((2, 8, 8)), "same N"),
        (np.ones((2, 8, 8)), np.ones((2, 0, 8, 8)), "K = 0"),
    ],
)
@pytest.mark.parametrize("fn", [map_ssim, *SENSITIVITIES])
def test_badly_shaped_copies_raise(
    fn: MapStabilityFn, maps: np.ndarray, perturbed: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fn(maps, perturbed)


def test_ris_refuses_mismatched_copies_and_bad_eps() -> None:
    inputs, maps = np.ones((2, 4, 4, 1)), np.ones((2, 4, 4))
    with pytest.raises(ValueError, match="differ in"):
        relative_input_stability(inputs, _copies(inputs, 2), maps, _copies(maps, 3))
    with pytest.raises(ValueError, match="eps must be > 0"):
        relative_input_stability(inputs, _copies(inputs, 2), maps, _copies(maps, 2), eps=0.0)


@st.composite
def maps_with_copies(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n, k, h, w = draw(st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(3, 8), st.integers(3, 8)))
    elements = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return draw(arrays(np.float64, (n, h, w), elements=elements)), draw(
        arrays(np.float64, (n, k, h, w), elements=elements)
    )


@PROPERTY
@given(data=maps_with_copies())
def test_max_sensitivity_is_at_least_the_average(data: tuple[np.ndarray, np.ndarray]) -> None:
    highest, mean = max_sensitivity(*data), avg_sensitivity(*data)
    assert np.all(mean >= 0.0)
    assert np.all((highest >= mean) | np.isclose(highest, mean, rtol=1e-12, atol=0))


@PROPERTY
@given(data=maps_with_copies())
def test_map_ssim_lies_in_minus_one_to_one(data: tuple[np.ndarray, np.ndarray]) -> None:
    result = map_ssim(*data)
    assert np.all((result >= -1.0) & (result <= 1.0))


def test_change_to_other_images_is_the_distance_of_unit_maps() -> None:
    maps = np.abs(_random((4, 8, 8), seed=3))
    unit = maps.reshape(4, -1) / np.linalg.norm(maps.reshape(4, -1), axis=1, keepdims=True)
    pair = {(i, j): float(np.linalg.norm(unit[j] - unit[i])) for i in range(4) for j in range(4)}
    expected = [(pair[i, (i + 1) % 4] + pair[i, (i + 2) % 4]) / 2 for i in range(4)]
    np.testing.assert_allclose(relative_change_to_other_images(maps), expected, rtol=1e-12)
    # the scale of the other image's map does not count, only its shape
    rescaled = maps * np.array([1, 1e6, 1e-6, 3])[:, None, None]
    np.testing.assert_allclose(relative_change_to_other_images(rescaled), expected, rtol=1e-9)


def test_independent_uniform_maps_are_sqrt_half_apart_and_so_is_their_sensitivity() -> None:
    # A random map control: each perturbed copy gets a fresh uniform map, as does every image.
    rng = np.random.default_rng(0)
    maps, copies = rng.random((16, 64, 64)), rng.random((16, 4, 64, 64))
    assert relative_change_to_other_images(maps).mean() == pytest.approx(np.sqrt(0.5), abs=0.01)
    assert avg_sensitivity(maps, copies).mean() == pytest.approx(np.sqrt(0.5), abs=0.01)


def test_change_to_other_images_of_one_map_or_a_zero_map_is_nan() -> None:
    assert np.isnan(relative_change_to_other_images(np.ones((1, 4, 4)))).all()
    maps = np.stack([np.ones((4, 4)), np.zeros((4, 4)), 2 * np.ones((4, 4))])
    result = relative_change_to_other_images(maps)
    assert np.isnan(result[1])


def test_max_sensitivity_grows_with_the_number_of_copies_which_is_why_k_is_fixed() -> None:
    rng = np.random.default_rng(1)
    maps = rng.random((32, 16, 16))
    copies = maps[:, None] + rng.normal(0.0, 0.1, (32, 64, 16, 16))
    by_k = [max_sensitivity(maps, copies[:, :k]).mean() for k in (16, 32, 64)]
    assert by_k[0] < by_k[1] < by_k[2]
    averages = [avg_sensitivity(maps, copies[:, :k]).mean() for k in (16, 32, 64)]
    assert max(averages) - min(averages) < 0.01


def test_linf_ball_copies_stay_in_the_ball_and_the_image_range() -> None:
    image = np.random.default_rng(2).uniform(0, 255, (8, 8, 3))
    image[0, 0] = [0.0, 255.0, 128.0]
    copies = LinfBall(4.0).sample(image, 16, np.random.default_rng(3))
    assert copies.shape == (16, 8, 8, 3)
    assert np.abs(copies - image).max() <= 4.0 + 1e-4
    assert copies.min() >= 0.0
    assert copies.max() <= 255.0
    # uniform in the ball: half of the offsets lie beyond half the radius
    offsets = (copies - image)[:, 1:, 1:]
    assert np.mean(np.abs(offsets) > 2.0) == pytest.approx(0.5, abs=0.03)
