"""Explanation stability: how much maps move when the input is perturbed slightly.

Every metric takes the maps of N images, (N, H, W), and the maps of K perturbed copies of
each image, (N, K, H, W), and returns float64 (N,) per-image scores. Producing the copies
(noise level, K, the seed) is the audit's job; these functions only compare arrays. Note that
a maximum over K copies grows with K (0.88 → 1.11 → 1.23 for K = 16/32/64 on one
distribution): compare max-sensitivities only at the same K.

Degenerate cases a caller must know:

- a NaN or inf anywhere raises ValueError naming the image index;
- a constant explainer is perfectly stable: SSIM 1, sensitivity 0, RIS 0;
- an all-zero map Phi(x) has sensitivity 0 if its perturbed maps are all zero too, else inf;
- RIS replaces zero entries of Phi(x) and x by ``eps`` before dividing (see its docstring).
"""

from __future__ import annotations

import numpy as np

from heatcheck.metrics.base import metric
from heatcheck.metrics.similarity import reject_nonfinite, ssim


def _with_copies(
    name: str, originals: np.ndarray, copies: np.ndarray, ndim: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``originals`` (N, *S) with ``ndim`` axes and ``copies`` (N, K, *S), K >= 1."""
    x = np.asarray(originals, dtype=np.float64)
    xs = np.asarray(copies, dtype=np.float64)
    if x.ndim != ndim or xs.ndim != ndim + 1 or xs.shape[0] != x.shape[0] or xs.shape[2:] != x.shape[1:]:
        raise ValueError(
            f"{name}: expected originals (N, ...) with {ndim} axes and copies (N, K, ...) of the "
            f"same N and image shape, got {x.shape} and {xs.shape}"
        )
    if xs.shape[1] == 0:
        raise ValueError(f"{name}: no perturbed copies (K = 0)")
    reject_nonfinite(name, x)
    reject_nonfinite(f"perturbed {name}", xs)
    return x, xs


@metric("higher")
def map_ssim(maps: np.ndarray, perturbed_maps: np.ndarray) -> np.ndarray:
    """Mean SSIM between each map and the maps of its K perturbed copies.

    Uses ``similarity.ssim`` (maps normalised by their peak magnitude, data_range 2, at least
    3x3), so identical maps score exactly 1.

    Args:
        maps: (N, H, W) maps of the original images.
        perturbed_maps: (N, K, H, W) maps of K perturbed copies of each image.

    References: Wang et al., "Image Quality Assessment: From Error Visibility to Structural
    Similarity", IEEE TIP 2004; Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018.
    """
    x, xs = _with_copies("maps", maps, perturbed_maps, 3)
    per_copy = np.stack([ssim(x, xs[:, k]) for k in range(xs.shape[1])], axis=1)
    return np.asarray(per_copy.mean(axis=1), dtype=np.float64)


def _relative_map_changes(maps: np.ndarray, perturbed_maps: np.ndarray) -> np.ndarray:
    """(N, K) ratios ||Phi(x) - Phi(x')||_F / ||Phi(x)||_F; zero maps follow the module rule."""
    x, xs = _with_copies("maps", maps, perturbed_maps, 3)
    # Dividing by the peak first keeps the squared norms from overflowing; the ratio is unchanged.
    peak = np.abs(x).max(axis=(1, 2))
    scale = np.where(peak > 0, peak, 1.0)
    with np.errstate(over="ignore"):  # a change too large for float64 is inf, a true answer
        x, xs = x / scale[:, None, None], xs / scale[:, None, None, None]
        change = np.sqrt(np.square(xs - x[:, None]).sum(axis=(2, 3)))
    size = np.broadcast_to(np.sqrt(np.square(x).sum(axis=(1, 2)))[:, None], change.shape)
    ratio = np.divide(change, size, out=np.zeros_like(change), where=size > 0)
    ratio[(size == 0) & (change > 0)] = np.inf
    return ratio


@metric("lower")
def max_sensitivity(maps: np.ndarray, perturbed_maps: np.ndarray) -> np.ndarray:
    """Largest relative change ||Phi(x) - Phi(x')||_F / ||Phi(x)||_F over the K perturbed copies.

    Yeh et al. define max-sensitivity as the largest ||Phi(x) - Phi(x')|| over the ball
    ||x' - x|| <= r, estimated by Monte-Carlo over K copies drawn in it (the caller draws
    them); dividing by ||Phi(x)||_F makes it scale-free, so methods and models compare fairly.
    An all-zero Phi(x) scores 0 if the perturbed maps are zero too, else inf.

    Args:
        maps: (N, H, W) maps of the original images.
        perturbed_maps: (N, K, H, W) maps of K perturbed copies of each image.

    References: Yeh et al., "On the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019,
    arXiv:1901.09392.
    """
    return np.asarray(_relative_map_changes(maps, perturbed_maps).max(axis=1), dtype=np.float64)


@metric("lower")
def avg_sensitivity(maps: np.ndarray, perturbed_maps: np.ndarray) -> np.ndarray:
    """Mean relative change ||Phi(x) - Phi(x')||_F / ||Phi(x)||_F over the K perturbed copies.

    Same ratio and zero-map rule as ``max_sensitivity`` (inf if any copy's ratio is inf).

    References: Yeh et al., "On the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019,
    arXiv:1901.09392.
    """
    return np.asarray(_relative_map_changes(maps, perturbed_maps).mean(axis=1), dtype=np.float64)


def _relative_change_norms(originals: np.ndarray, copies: np.ndarray, eps: float) -> np.ndarray:
    """(N, K) norms ||(v - v') / v||_2 over all pixels (and channels), zeros of v read as eps."""
    divisor = np.where(originals == 0, eps, originals)[:, None]
    with np.errstate(over="ignore"):  # a relative change too large for float64 is inf, a true answer
        relative = (originals[:, None] - copies) / divisor
        return np.sqrt(np.square(relative).sum(axis=tuple(range(2, relative.ndim))))


@metric("lower")
def relative_input_stability(
    inputs: np.ndarray,
    perturbed_inputs: np.ndarray,
    maps: np.ndarray,
    perturbed_maps: np.ndarray,
    eps: float = 1e-6,
) -> np.ndarray:
    """Relative input stability (RIS): worst ratio of relative map change to relative input change.

    RIS = max over the K copies of ||(Phi(x) - Phi(x')) / Phi(x)||_2 / max(||(x - x') / x||_2, eps),
    divisions elementwise, norms over all pixels (and channels). Where an entry of Phi(x) or x
    is exactly 0 it is replaced by ``eps`` as the divisor (Quantus's ``v + (v == 0) * eps``);
    non-zero entries are used as they are, so tiny map values give large ratios. The
    denominator is clamped with max(., eps) as in the paper (Quantus only replaces an exact 0).
    Identical perturbed maps score 0 whatever the inputs.

    Args:
        inputs: (N, H, W, C) original images.
        perturbed_inputs: (N, K, H, W, C) K perturbed copies of each image.
        maps: (N, H, W) maps of the original images.
        perturbed_maps: (N, K, H, W) maps of the perturbed copies.
        eps: the stand-in for zero divisors and the floor of the input change (> 0).

    References: Agarwal et al., "Rethinking Stability for Attribution-based Explanations",
    2022, arXiv:2203.06877.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    x, xs = _with_copies("inputs", inputs, perturbed_inputs, 4)
    e, es = _with_copies("maps", maps, perturbed_maps, 3)
    if xs.shape[:2] != es.shape[:2]:
        raise ValueError(f"inputs and maps differ in (N, K): {xs.shape[:2]} vs {es.shape[:2]}")
    map_change = _relative_change_norms(e, es, eps)
    input_change = np.maximum(_relative_change_norms(x, xs, eps), eps)
    with np.errstate(invalid="ignore"):
        ris = map_change / input_change
    # inf / inf (both changes overflowed) is undefined; read it as the worst case.
    ris[np.isnan(ris)] = np.inf
    return np.asarray(ris.max(axis=1), dtype=np.float64)


def relative_change_to_other_images(maps: np.ndarray, max_shift: int = 4) -> np.ndarray:
    """(N,) the relative change ||Phi'(x_j) - Phi(x_i)||_F / ||Phi(x_i)||_F from each map to the
    maps of other images of the batch, each rescaled to the norm of Phi(x_i): what a map that
    carries nothing about the input scores (the sensitivities' chance level), and for
    non-negative maps sqrt(2 - 2 cos) <= sqrt(2). Image i is compared with i+1, …, i+s
    (rolled, s = min(max_shift, N // 2)); NaN for fewer than two maps or an all-zero one.
    """
    x = np.asarray(maps, dtype=np.float64)
    reject_nonfinite("maps", x)
    n = len(x)
    if n < 2:
        return np.full(n, np.nan)
    flat = x.reshape(n, -1)
    peak = np.abs(flat).max(axis=1, keepdims=True)
    scaled = np.divide(flat, peak, out=np.zeros_like(flat), where=peak > 0)  # no overflow in the norm
    norms = np.sqrt(np.square(scaled).sum(axis=1, keepdims=True))
    unit = np.divide(scaled, norms, out=np.full_like(flat, np.nan), where=norms > 0)
    shifts = range(1, min(max_shift, n // 2) + 1)
    changes = [np.sqrt(np.square(np.roll(unit, -s, axis=0) - unit).sum(axis=1)) for s in shifts]
    return np.asarray(np.mean(changes, axis=0), np.float64)
