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

import numpy as np
from scipy.stats import rankdata
from skimage.feature import hog
from skimage.metrics import structural_similarity

from heatcheck.metrics.base import metric

# SSIM's sample covariance divides by (window pixels - 1): a 1x1 window would divide by zero.
_MIN_SIDE = 3
# Wang et al.'s window side; smaller maps use the largest odd side that fits.
_SSIM_WINDOW = 7
# normalise_for_comparison maps into [-1, 1]; SSIM's constants are set from this fixed width.
_SSIM_DATA_RANGE = 2.0
# HOG cells along the shorter side, whatever the map size (64 -> 8 px cells, 224 -> 28 px).
_HOG_CELLS_PER_SIDE = 8


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


@metric("higher")
def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Structural similarity (SSIM) of each pair of maps after ``normalise_for_comparison``.

    scikit-image's ``structural_similarity`` with its uniform window (side 7, or the largest odd
    side <= min(H, W)) and ``data_range = 2``: the fixed width of [-1, 1] that normalised maps
    live in, so every pair, method and model gets the same stabilising constants (a range taken
    from the data would make the score depend on the pair). Maps must be at least 3x3. SSIM's
    luminance term assumes non-negative images: on signed maps a map and its negation score
    near 0 or above, not -1, so pass |maps| where sign should not count.

    References: Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, arXiv:1810.03292;
    Wang et al., "Image Quality Assessment: From Error Visibility to Structural Similarity", 2004.
    """
    x, y = _as_map_pair(a, b, _MIN_SIDE)
    x, y = normalise_for_comparison(x), normalise_for_comparison(y)
    window = _ssim_window(*x.shape[1:])
    scores = [
        1.0
        if np.array_equal(p, q)
        else float(structural_similarity(p, q, data_range=_SSIM_DATA_RANGE, win_size=window))
        for p, q in zip(x, y, strict=True)
    ]
    return np.clip(np.asarray(scores, dtype=np.float64).reshape(x.shape[0]), -1.0, 1.0)


def _hog_features(maps: np.ndarray) -> np.ndarray:
    """HOG features (9 orientations, 2x2-cell blocks, L2-Hys) of each map, as (N, D)."""
    cell = max(1, min(maps.shape[1:]) // _HOG_CELLS_PER_SIDE)
    features = [
        hog(m, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2), block_norm="L2-Hys")
        for m in maps
    ]
    if not features:
        return np.zeros((0, 1))
    return np.asarray(features, dtype=np.float64)


@metric("higher")
def hog_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of the HOG features of each pair of normalised maps.

    Cells are min(H, W) // 8 pixels square (at least 1), so every map is about 8 cells on its
    shorter side: 8 px cells at 64x64, 28 px at 224x224, and feature vectors of comparable
    length. HOG orientations are unsigned, so a map and its negation score 1. Maps must be at
    least 3x3.

    References: Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, arXiv:1810.03292;
    Dalal & Triggs, "Histograms of Oriented Gradients for Human Detection", CVPR 2005.
    """
    x, y = _as_map_pair(a, b, _MIN_SIDE)
    return _pearson_rows(
        _hog_features(normalise_for_comparison(x)), _hog_features(normalise_for_comparison(y))
    )
