"""Faithfulness: does removing (or restoring) what a map calls important change the model's decision?

Pure functions on the probability curves that the audit measures (heatcheck.checks.faithfulness
calls the model; these never do).
"""

from __future__ import annotations

import numpy as np

from heatcheck.metrics.base import metric


def deletion_order(maps: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pixel indices per image, most important first; ties broken at random when ``rng`` is given
    (a flat map must not delete in raster order, which would favour the top-left corner)."""
    flat = np.asarray(maps, np.float64).reshape(len(maps), -1)
    if not np.isfinite(flat).all():
        bad = int(np.flatnonzero(~np.isfinite(flat).all(axis=1))[0])
        raise ValueError(f"map {bad} contains NaN or Inf")
    jitter = rng.random(flat.shape) if rng is not None else np.zeros_like(flat)
    return np.lexsort((jitter, -flat), axis=1)


def _area(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """(N,) trapezoid area under each curve over the fraction axis, divided by its span."""
    curves = np.asarray(curves, np.float64)
    fractions = np.asarray(fractions, np.float64)
    if curves.ndim != 2 or curves.shape[1] != len(fractions) or len(fractions) < 2:
        raise ValueError(f"curves {curves.shape} must be (N, {len(fractions)}) with at least two points")
    if fractions[0] != 0 or np.any(np.diff(fractions) <= 0):
        raise ValueError("fractions must increase from 0")
    area = ((curves[:, 1:] + curves[:, :-1]) / 2 * np.diff(fractions)).sum(axis=1)
    return np.asarray(area / (fractions[-1] - fractions[0]))


@metric("lower")
def deletion_auc(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Area under the deletion curve: the labelled class's probability as the pixels the map
    calls most important are replaced first, over the share replaced (per image).

    Args:
        curves: (N, F) probability after replacing each fraction of the pixels; column 0 is
            the untouched image (fraction 0), the last the fully replaced one (fraction 1).
        fractions: (F,) the replaced shares, increasing from 0.

    Returns:
        (N,) area in [0, 1] (divided by the fractions' span): small when the first pixels the
        map names already take the decision away. A model that answers 0 once any pixel is
        replaced scores 1 / (2 (F − 1)): 0 as the steps grow.

    References: Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box
    Models", BMVC 2018, arXiv:1806.07421 (the deletion metric).
    """
    return _area(curves, fractions)


@metric("higher")
def insertion_auc(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Area under the insertion curve: the labelled class's probability as the pixels the map
    calls most important are put back first into the baseline image (per image).

    Args:
        curves: (N, F) probability after restoring each fraction of the pixels; column 0 is the
            baseline image (fraction 0), the last the untouched image (fraction 1).
        fractions: (F,) the restored shares, increasing from 0.

    Returns:
        (N,) area in [0, 1]: large when the first pixels the map names already bring the
        decision back. A model that answers 1 once any pixel is restored scores
        1 − 1 / (2 (F − 1)).

    References: Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box
    Models", BMVC 2018, arXiv:1806.07421 (the insertion metric).
    """
    return _area(curves, fractions)
