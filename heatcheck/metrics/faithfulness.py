"""Faithfulness: does removing what a map calls important change the model's decision?

Pure functions on the probability curves that the audit measures (heatcheck.faithfulness
calls the model; these never do).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from heatcheck.metrics.base import metric


def deletion_order(maps: np.ndarray,
                   rng: np.random.Generator | Sequence[np.random.Generator] | None = None) -> np.ndarray:
    """Pixel indices per image, most important first; ties broken at random when ``rng`` is given
    (a flat map must not delete in raster order, which would favour the top-left corner).

    ``rng`` may be one generator per image: each image's ties then do not depend on which other
    images share its batch (or its shard).
    """
    flat = np.asarray(maps, np.float64).reshape(len(maps), -1)
    if not np.isfinite(flat).all():
        bad = int(np.flatnonzero(~np.isfinite(flat).all(axis=1))[0])
        raise ValueError(f"map {bad} contains NaN or Inf")
    if rng is None:
        jitter = np.zeros_like(flat)
    elif isinstance(rng, np.random.Generator):
        jitter = rng.random(flat.shape)
    else:
        jitter = np.stack([g.random(flat.shape[1]) for g in rng]) if len(flat) else np.zeros_like(flat)
    return np.lexsort((jitter, -flat), axis=1)


@metric("lower")
def deletion_auc(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Area under the deletion curve, relative to the unperturbed probability (per image).

    Args:
        curves: (N, F) probability of the labelled class after deleting each fraction of the
            pixels, most important first; column 0 is the unperturbed image (fraction 0).
        fractions: (F,) the deleted fractions, increasing from 0.

    Returns:
        (N,) normalised area in [0, ~1]: small when the first pixels the map names already
        take the decision away. An image the model gives probability 0 scores NaN.

    References: Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box
    Models", BMVC 2018, arXiv:1806.07421 (the deletion metric).
    """
    curves = np.asarray(curves, np.float64)
    fractions = np.asarray(fractions, np.float64)
    if curves.ndim != 2 or curves.shape[1] != len(fractions) or fractions[0] != 0:
        raise ValueError(f"curves {curves.shape} must be (N, {len(fractions)}) starting at fraction 0")
    start = curves[:, :1]
    relative = np.divide(curves, start, out=np.full_like(curves, np.nan), where=start > 0)
    span = fractions[-1] - fractions[0]
    area = ((relative[:, 1:] + relative[:, :-1]) / 2 * np.diff(fractions)).sum(axis=1)
    return np.asarray(area / span)
