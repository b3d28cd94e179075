"""Map similarity: how alike two batches of saliency maps are, image by image.

The sanity checks of Adebayo et al. (2018) ask whether maps from a randomised model still
look like the trained model's maps; these are their four measures. Each takes two batches
``a`` and ``b`` of shape (N, H, W) and returns float64 (N,) scores in [-1, 1], higher = more
similar (the sanity audit gates on a score *below* a threshold).

Degenerate cases are defined, never NaN:

- maps that are identical as compared score exactly 1.0 (two constant maps included; for the
  rank correlations "as compared" means the same ranks, for SSIM the same normalised maps,
  for HOG the same features);
- in the correlations (``spearman_abs``, ``spearman_signed``, ``hog_pearson``) two constant
  vectors score 1.0 and one constant vector against a varying one scores 0.0; constancy is
  judged on what is correlated: |a| for ``spearman_abs``, the HOG features for
  ``hog_pearson`` (any constant map has all-zero HOG features);
- a NaN or inf anywhere raises ValueError naming the image.

References: Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, arXiv:1810.03292.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata
from skimage.feature import hog
from skimage.metrics import structural_similarity

from heatcheck.metrics.base import metric

# SSIM's sample covariance divides by (window pixels - 1): a 1x1 window would divide by zero.
_MIN_SIDE = 3
# Wang et al.'s window side; smaller maps use the largest odd side that fits.
_SSIM_WINDOW = 7
# scikit-image's HOG defaults (Dalal & Triggs' 8-px cells, 3x3-cell blocks, L2-Hys), in pixels:
# the same cells at every image size, so a 224x224 map is not described by 8 coarse cells.
_HOG_CELL = 8
_HOG_BLOCK = 3


def reject_nonfinite(name: str, values: np.ndarray) -> None:
    """Raise ValueError naming the images (first axis) that hold a NaN or inf."""
    finite = np.isfinite(values).all(axis=tuple(range(1, values.ndim)))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(f"{name}: NaN or inf in image(s) {bad[:10].tolist()} (index along axis 0)")


def _as_map_batch(name: str, maps: np.ndarray, min_side: int = 1) -> np.ndarray:
    """``maps`` as float64 (N, H, W), validated: three axes, sides >= min_side, finite."""
    x = np.asarray(maps, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"{name}: expected maps shaped (N, H, W), got shape {x.shape}")
    if min(x.shape[1:]) < min_side:
        raise ValueError(f"{name}: maps must be at least {min_side}x{min_side}, got {x.shape[1:]}")
    reject_nonfinite(name, x)
    return x


def _as_map_pair(a: np.ndarray, b: np.ndarray, min_side: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Both batches validated and of the same shape."""
    x, y = _as_map_batch("a", a, min_side), _as_map_batch("b", b, min_side)
    if x.shape != y.shape:
        raise ValueError(f"a and b differ in shape: {x.shape} vs {y.shape}")
    return x, y


def _flat(x: np.ndarray) -> np.ndarray:
    """(N, ...) as (N, rest); explicit sizes so that N = 0 works."""
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))


def normalise_for_comparison(maps: np.ndarray) -> np.ndarray:
    """Divide each map by its largest absolute value, keeping the sign (an all-zero map stays zero).

    This is the one normalisation applied before maps of different models are compared. A
    randomised model's gradients can be orders of magnitude smaller or larger than the trained
    model's; dividing by the peak magnitude makes every comparison scale-free (a map and c times
    it, c > 0, normalise alike) while zero and sign stay where they were, which min-max
    normalisation would not do for signed maps.

    Args:
        maps: (N, H, W) maps.

    Returns:
        float64 (N, H, W) maps with values in [-1, 1]; each non-zero map reaches |1| somewhere.
    """
    x = _as_map_batch("maps", maps)
    peak = np.abs(x).max(axis=(1, 2), keepdims=True)
    return np.divide(x, peak, out=np.zeros_like(x), where=peak > 0)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of (N, D) arrays, with the degenerate rules of this module."""
    x_const = (x == x[:, :1]).all(axis=1)
    y_const = (y == y[:, :1]).all(axis=1)
    # Constancy is tested exactly: a mean that rounds would leave tiny non-zero deviations.
    dx = np.where(x_const[:, None], 0.0, x - x.mean(axis=1, keepdims=True))
    dy = np.where(y_const[:, None], 0.0, y - y.mean(axis=1, keepdims=True))
    # sqrt before multiplying, so that tiny spreads do not underflow to a zero denominator.
    denom = np.sqrt((dx * dx).sum(axis=1)) * np.sqrt((dy * dy).sum(axis=1))
    r = np.divide((dx * dy).sum(axis=1), denom, out=np.zeros(x.shape[0]), where=denom > 0)
    r = np.clip(r, -1.0, 1.0)
    # Exact answers where rounding would give 0.9999999999999998 (both constant: dx = dy = 0).
    r[(dx == -dy).all(axis=1)] = -1.0
    r[(dx == dy).all(axis=1)] = 1.0
    return r


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho per image: Pearson r of average ranks (ties share their mean rank)."""
    return _pearson_rows(rankdata(_flat(x), axis=1), rankdata(_flat(y), axis=1))


@metric("higher")
def spearman_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of |a| and |b|, per image.

    Ranking makes it scale-free without normalisation. A map and its negation score 1.

    References: Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, arXiv:1810.03292.
    """
    x, y = _as_map_pair(a, b)
    return _spearman_rows(np.abs(x), np.abs(y))


@metric("higher")
def spearman_signed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of the signed maps a and b, per image (a vs -a scores -1).

    References: Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, arXiv:1810.03292.
    """
    x, y = _as_map_pair(a, b)
    return _spearman_rows(x, y)


def _ssim_window(height: int, width: int) -> int:
    """The SSIM window side: 7, or the largest odd side that fits a smaller map."""
    side = min(height, width)
    return min(_SSIM_WINDOW, side if side % 2 else side - 1)


def ssim_data_range(a: np.ndarray, b: np.ndarray) -> float:
    """The width of the interval two maps normalised by their peak magnitude live in: 1 when
    neither has a negative value ([0, 1]), else 2 ([-1, 1])."""
    return 2.0 if (a < 0).any() or (b < 0).any() else 1.0


@metric("higher")
def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Structural similarity (SSIM) of each pair of maps after ``normalise_for_comparison``.

    scikit-image's ``structural_similarity`` with its uniform window (side 7, or the largest odd
    side <= min(H, W)) and ``data_range`` the width of the pair's interval (``ssim_data_range``):
    1 for non-negative maps, 2 for signed ones. A range wider than the maps' own shrinks
    nothing but SSIM's stabilising constants grow with it (C = (k·range)²), which pulls two
    unrelated sparse maps towards 1 (0.52 instead of 0.25 with range 2 on maps in [0, 1]).
    Quantus takes the pair's observed spread (max − min of both), the same 1 whenever a
    normalised non-negative map has a zero somewhere; the fixed interval width keeps a map with
    a high floor (SmoothGrad) from getting smaller constants than a sparse one. Maps must be at
    least 3x3. SSIM's luminance term assumes non-negative images: on signed maps a map and its
    negation score near 0 or above, not -1, so pass |maps| where sign should not count.

    References: Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, arXiv:1810.03292;
    Wang et al., "Image Quality Assessment: From Error Visibility to Structural Similarity", 2004.
    """
    x, y = _as_map_pair(a, b, _MIN_SIDE)
    x, y = normalise_for_comparison(x), normalise_for_comparison(y)
    window = _ssim_window(*x.shape[1:])
    scores = [
        1.0
        if np.array_equal(p, q)
        else float(structural_similarity(p, q, data_range=ssim_data_range(p, q), win_size=window))
        for p, q in zip(x, y, strict=True)
    ]
    return np.clip(np.asarray(scores, dtype=np.float64).reshape(x.shape[0]), -1.0, 1.0)


def hog_cell(height: int, width: int) -> int:
    """The HOG cell side in pixels: 8, or smaller only where 8-px cells would not fit one block
    (maps under 24 pixels a side)."""
    return max(1, min(_HOG_CELL, min(height, width) // _HOG_BLOCK))


def _hog_features(maps: np.ndarray) -> np.ndarray:
    """HOG features (9 orientations, ``hog_cell`` px cells, 3x3-cell blocks, L2-Hys), as (N, D)."""
    cell = hog_cell(*maps.shape[1:])
    features = [
        hog(m, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(_HOG_BLOCK, _HOG_BLOCK),
            block_norm="L2-Hys")
        for m in maps
    ]
    if not features:
        return np.zeros((0, 1))
    return np.asarray(features, dtype=np.float64)


@metric("higher")
def hog_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of the HOG features of each pair of normalised maps.

    scikit-image's defaults: 8-px cells whatever the map's size (smaller only for maps under 24
    px a side, see ``hog_cell``), 3x3-cell blocks, 9 unsigned orientations, L2-Hys. Cells that
    grew with the image (28 px at 224x224) averaged away all structure: two independent
    heavy-tailed maps scored 0.93-0.98. Even 8-px cells leave unrelated sparse maps well above
    0 (about 0.7-0.8), which is why the sanity audit reads every similarity against the
    similarity of maps of different images (``heatcheck.checks.sanity``). HOG orientations are
    unsigned, so a map and its negation score 1. Maps must be at least 3x3.

    References: Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, arXiv:1810.03292;
    Dalal & Triggs, "Histograms of Oriented Gradients for Human Detection", CVPR 2005.
    """
    x, y = _as_map_pair(a, b, _MIN_SIDE)
    return _pearson_rows(
        _hog_features(normalise_for_comparison(x)), _hog_features(normalise_for_comparison(y))
    )


def similarity_to_other_images(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], maps: np.ndarray,
                               max_shift: int = 4) -> np.ndarray:
    """(N,) mean similarity of each map to the maps of other images of the same batch.

    Image i is compared with images i+1, …, i+s (rolled, s = min(max_shift, N // 2)); with
    s = N // 2 every pair of images is compared. This is what "unrelated" scores on this data
    with this method: the chance level a similarity is read against (a sparse or centred map
    resembles any other map of its kind more than two random arrays do). NaN for a batch of
    fewer than two maps.

    Args:
        fn: a similarity of this module, (N, H, W) × (N, H, W) → (N,).
        maps: (N, H, W) maps of N different images.
        max_shift: at most this many other images per image.
    """
    n = len(maps)
    shifts = range(1, min(max_shift, n // 2) + 1)
    if n < 2:
        return np.full(n, np.nan)
    return np.mean([fn(maps, np.roll(maps, -s, axis=0)) for s in shifts], axis=0)


def chance_normalised(similarity: np.ndarray, chance: float) -> np.ndarray:
    """``(s − c) / (1 − c)``: a similarity in units of its chance level c, 1 = identical as
    compared, 0 = as alike as maps of different images (below 0: less alike). NaN where c
    leaves no room (c = 1: maps of different images are already identical as compared)."""
    s = np.asarray(similarity, np.float64)
    if not np.isfinite(chance) or 1.0 - chance < 1e-6:
        return np.full(s.shape, np.nan)
    return (s - chance) / (1.0 - chance)
