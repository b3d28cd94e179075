"""Localisation metrics: how much of a saliency map falls on the object mask.

Every metric takes ``maps`` (N, H, W) and ``masks`` (N, H, W), validates them, and returns one
float64 score per image in [0, 1]. Each one scores a constant map at chance, the share of the
image the (dilated) mask covers, so an uninformative map never gets a free hit. A raw score
means nothing across image sets (a mask covering 64 % of the image gives a random map 0.64):
``chance_corrected`` puts every score on one scale, 0 = chance and 1 = perfect.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from heatcheck.metrics.base import metric

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def validate_maps_and_masks(maps: npt.ArrayLike, masks: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
    """Check a batch of maps against its masks and return them as (float64 maps, bool masks).

    Masks may be bool or numeric; non-zero means object. A full-image mask is allowed here.

    Raises:
        ValueError: if either array is not 3-D (N, H, W), the shapes differ, a map holds NaN
            or Inf ("map 3 contains NaN"), or a mask has no object pixel
            ("mask 2 is empty: no object pixels").
    """
    maps_arr = np.asarray(maps, dtype=np.float64)
    masks_arr = np.asarray(masks) != 0
    for name, arr in (("maps", maps_arr), ("masks", masks_arr)):
        if arr.ndim != 3:
            raise ValueError(f"{name} must be 3-D (N, H, W); got shape {arr.shape}")
    if maps_arr.shape != masks_arr.shape:
        raise ValueError(f"maps and masks differ in shape: {maps_arr.shape} vs {masks_arr.shape}")
    non_finite = np.flatnonzero(~np.isfinite(maps_arr).all(axis=(1, 2)))
    if non_finite.size:
        i = int(non_finite[0])
        problem = "NaN" if np.isnan(maps_arr[i]).any() else "Inf"
        raise ValueError(f"map {i} contains {problem}")
    empty = np.flatnonzero(~masks_arr.any(axis=(1, 2)))
    if empty.size:
        raise ValueError(f"mask {int(empty[0])} is empty: no object pixels")
    return maps_arr, masks_arr


def mask_fraction(masks: npt.ArrayLike) -> FloatArray:
    """Share of the pixels of each (N, H, W) mask that are object (non-zero): chance level."""
    masks_arr = np.asarray(masks) != 0
    return masks_arr.mean(axis=(-2, -1), dtype=np.float64)


# Zhang et al. (2016) and TorchRay count a hit within 15 pixels of the object at 224×224.
POINTING_TOLERANCE_224 = 15


def default_pointing_tolerance(height: int, width: int) -> int:
    """The published 15-pixel tolerance at 224², scaled with the shorter side (4 px at 64²)."""
    return int(round(POINTING_TOLERANCE_224 * min(height, width) / 224))


def pointing_region(masks: npt.ArrayLike, tolerance: int) -> BoolArray:
    """Pixels closer than ``tolerance`` to the object (strict ``<``, as TorchRay); 0 = the mask."""
    masks_arr = np.asarray(masks) != 0
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels; got {tolerance}")
    if tolerance == 0:
        return masks_arr
    # The Euclidean distance to the nearest object pixel, and its cost does not grow with the
    # tolerance as a 31×31 footprint's does.
    return np.stack([ndimage.distance_transform_edt(~mask) < tolerance for mask in masks_arr])


def pointing_chance(masks: npt.ArrayLike, tolerance: int) -> FloatArray:
    """Chance level of the pointing game: the share of pixels within the tolerance of the object."""
    return mask_fraction(pointing_region(masks, tolerance))


def chance_corrected(scores: npt.ArrayLike, chance: npt.ArrayLike) -> FloatArray:
    """``(s − c) / (1 − c)`` per image: 1 = perfect, 0 = what a map without information scores,
    negative = worse than chance (the map avoids the object). NaN where chance is 1 (a region
    covering the whole image: no map can do better than chance there).

    References: the kappa-style correction of Cohen, "A coefficient of agreement for nominal
        scales", Educational and Psychological Measurement 1960; chance levels as in
        Arras et al. 2022 (arXiv:2003.07258) and Zhang et al. 2016 (arXiv:1608.00507).
    """
    s = np.asarray(scores, np.float64)
    c = np.asarray(chance, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c < 1.0, (s - c) / (1.0 - c), np.nan)


@metric("higher")
def pointing_game(maps: npt.ArrayLike, masks: npt.ArrayLike, tolerance: int = 0) -> FloatArray:
    """Pointing game: is the map's maximum on the object?

    A hit is a maximum closer than ``tolerance`` pixels to the object (``pointing_region``).
    Ties at the maximum are not broken by position (np.argmax would pick the top-left one):
    the score is the share of the tied maximal pixels inside the (dilated) mask, the expected
    hit rate under random tie-breaking. So a constant map scores the (dilated) mask fraction,
    chance, never a free hit; with a unique maximum the score is exactly 0 or 1.

    Args:
        tolerance: in pixels (Zhang et al. use 15 at 224×224, ``default_pointing_tolerance``);
            0 = exact mask.

    Returns:
        (N,) float64 scores in [0, 1].

    References: Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016,
        arXiv:1608.00507.
    """
    maps_arr, masks_arr = validate_maps_and_masks(maps, masks)
    region = pointing_region(masks_arr, tolerance)
    is_peak = maps_arr == maps_arr.max(axis=(1, 2), keepdims=True)
    hits = (is_peak & region).sum(axis=(1, 2))
    return hits / is_peak.sum(axis=(1, 2))


@metric("higher")
def energy_pointing_game(maps: npt.ArrayLike, masks: npt.ArrayLike) -> FloatArray:
    """Energy-based pointing game (= relevance mass): share of the positive map inside the mask.

    Only the positive part of the map counts, as in both papers. A map with no positive mass
    (all zero or all negative) says nothing about where the object is, so it scores what a
    flat map scores: the mask fraction, chance.

    Returns:
        (N,) float64 scores in [0, 1].

    References: Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional
        Neural Networks", CVPR Workshops 2020, arXiv:1910.01279; Arras et al., "CLEVR-XAI: A
        benchmark dataset for the ground truth evaluation of neural network explanations",
        Information Fusion 2022, arXiv:2003.07258.
    """
    maps_arr, masks_arr = validate_maps_and_masks(maps, masks)
    positive = np.clip(maps_arr, 0.0, None)
    peak = positive.max(axis=(1, 2), keepdims=True)
    # Scaling each map to peak 1 keeps sums of huge (finite) values from overflowing to inf.
    positive = np.divide(positive, peak, out=np.zeros_like(positive), where=peak > 0)
    total = positive.sum(axis=(1, 2))
    inside = np.where(masks_arr, positive, 0.0).sum(axis=(1, 2))
    has_mass = total > 0
    share = np.divide(inside, total, out=np.zeros_like(total), where=has_mass)
    # Summing in a different order can put ``inside`` one rounding step above ``total``.
    share = np.minimum(share, 1.0)
    return np.where(has_mass, share, mask_fraction(masks_arr))


@metric("higher")
def relevance_rank_accuracy(maps: npt.ArrayLike, masks: npt.ArrayLike) -> FloatArray:
    """Relevance rank accuracy: share of the K highest-scoring pixels inside the mask, K = mask size.

    Ties at the K-th value are split fractionally: pixels strictly above it count fully, and
    the pixels tied at it fill the remaining places with their inside-share. So a constant map
    scores the mask fraction, chance, whatever order a sort would put the ties in.

    Returns:
        (N,) float64 scores in [0, 1].

    References: Arras et al., "CLEVR-XAI: A benchmark dataset for the ground truth evaluation
        of neural network explanations", Information Fusion 2022, arXiv:2003.07258.
    """
    maps_arr, masks_arr = validate_maps_and_masks(maps, masks)
    n = maps_arr.shape[0]
    flat = maps_arr.reshape(n, -1)
    inside = masks_arr.reshape(n, -1)
    k = inside.sum(axis=1)
    ascending = np.sort(flat, axis=1)
    cut = np.take_along_axis(ascending, (flat.shape[1] - k)[:, None], axis=1)
    above = flat > cut
    tied = flat == cut
    places_left = k - above.sum(axis=1)
    # Integer product before dividing: exact, so a tie that is all inside gives exactly 1.
    tied_share = places_left * (tied & inside).sum(axis=1) / tied.sum(axis=1)
    return ((above & inside).sum(axis=1) + tied_share) / k
