"""The localisation audit's negative controls and its scoring pass (heatcheck.checks.localisation)."""

from __future__ import annotations

import numpy as np
import pytest

from heatcheck.checks.localisation import METRICS, fraction_summary, score_localisation
from heatcheck.data import ImageSet, LabelledImages
from heatcheck.explain import controls
from heatcheck.explain.mapset import MapSet


def _set(n: int = 12, size: int = 16, batch: int = 5) -> tuple[ImageSet, np.ndarray]:
    rng = np.random.default_rng(0)
    masks = np.zeros((n, size, size), bool)
    for i in range(n):  # a 4×4 object at a different place in every image
        y, x = rng.integers(0, size - 4, 2)
        masks[i, y:y + 4, x:x + 4] = True
    images = rng.integers(0, 255, (n, size, size, 3)).astype(np.uint8)
    labelled = LabelledImages("t", images, np.zeros(n, np.int64), masks, tuple(f"i{i}" for i in range(n)))
    return ImageSet.in_memory(labelled, batch), masks


def test_centre_prior_peaks_at_the_centre_and_is_symmetric() -> None:
    prior = controls.centre_prior(9, 9)
    assert prior.argmax() == 4 * 9 + 4
    np.testing.assert_allclose(prior, prior[::-1, ::-1])


def test_derangement_never_maps_an_image_to_itself_and_is_seeded() -> None:
    for n in (2, 3, 10, 101):
        source = controls.derangement(n, seed=1)
        assert sorted(source.tolist()) == list(range(n))
        assert not (source == np.arange(n)).any()
    np.testing.assert_array_equal(controls.derangement(10, 3), controls.derangement(10, 3))
    with pytest.raises(ValueError, match="at least 2"):
        controls.derangement(1, 0)


def test_random_maps_do_not_depend_on_the_batching() -> None:
    whole = controls.random_maps(range(0, 6), (4, 4), seed=2)
    parts = np.concatenate([controls.random_maps(range(0, 4), (4, 4), 2),
                            controls.random_maps(range(4, 6), (4, 4), 2)])
    np.testing.assert_array_equal(whole, parts)


def test_a_map_equal_to_the_mask_is_perfect_and_its_shuffle_is_not() -> None:
    images, masks = _set()
    maps = MapSet(images.ids, masks, {"oracle": masks.astype(np.float32)}, chunk=5)
    run = score_localisation(maps, images, ("oracle",), seed=0, tolerance=0)
    for metric in METRICS:
        np.testing.assert_allclose(run.corrected(metric, "oracle"), 1.0)
        shuffled = run.controls(metric, "oracle")["shuffled"]
        assert shuffled.mean() < 0.5, metric  # the objects move: another image's mask misses
        assert abs(run.controls(metric, "oracle")["random"].mean()) < 0.2, metric


def test_a_method_is_never_its_own_control() -> None:
    """The edges method scored against the edge control (the same maps) could never pass: that
    control is left out of its comparison, and only of its."""
    images, masks = _set()
    edge_maps = controls.edges(np.asarray(images.take(np.arange(len(masks))).images))
    maps = MapSet(images.ids, masks, {"edges": edge_maps, "m": edge_maps}, chunk=5)
    run = score_localisation(maps, images, ("edges", "m"), seed=0, tolerance=0)
    for metric in METRICS:
        np.testing.assert_array_equal(run.raw[metric]["edges"], run.control_raw[metric]["edges"])
        assert set(run.controls(metric, "edges")) == {"random", "centre", "shuffled"}
        assert set(run.controls(metric, "m")) == {"random", "centre", "edges", "shuffled"}


def test_scores_do_not_depend_on_the_batch_size() -> None:
    a_images, masks = _set(batch=5)
    b_images, _ = _set(batch=12)
    maps = {"m": np.random.default_rng(1).random(masks.shape).astype(np.float32)}
    a = score_localisation(MapSet(a_images.ids, masks, maps, 5), a_images, ("m",), seed=0, tolerance=2)
    b = score_localisation(MapSet(b_images.ids, masks, maps, 12), b_images, ("m",), seed=0, tolerance=2)
    for metric in METRICS:
        np.testing.assert_array_equal(a.raw[metric]["m"], b.raw[metric]["m"])
        for name in ("random", "centre", "edges"):
            np.testing.assert_array_equal(a.control_raw[metric][name], b.control_raw[metric][name])
        np.testing.assert_array_equal(a.shuffled_raw[metric]["m"], b.shuffled_raw[metric]["m"])


def test_fraction_summary_counts_every_image() -> None:
    summary = fraction_summary(np.array([0.05, 0.1, 0.6, 0.7]))
    assert sum(summary["histogram"]["counts"]) == 4
    assert summary["median"] == pytest.approx(0.35)
