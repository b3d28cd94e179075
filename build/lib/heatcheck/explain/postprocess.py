"""Turning gradients and activations into maps, exactly as tf-keras-vis 0.8.7 does.

Kept in numpy so that both engines share one definition of each map and the reference
comparison tests only the passes through the model.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import zoom

# tf-keras-vis divides by (max - min + K.epsilon()); the same epsilon keeps both engines equal.
EPSILON = 1e-7


def normalise_per_image(maps: np.ndarray) -> np.ndarray:
    """Min-max normalise each map to [0, 1] (tf-keras-vis's ``normalize``)."""
    axes = tuple(range(1, maps.ndim))
    lo = maps.min(axis=axes, keepdims=True)
    hi = maps.max(axis=axes, keepdims=True)
    return (maps - lo) / (hi - lo + EPSILON)


def saliency_from_gradients(grads: np.ndarray) -> np.ndarray:
    """Vanilla saliency (Simonyan et al. 2014): max over channels of |∂score/∂x|."""
    return np.abs(grads).max(axis=-1)


def gradcam_from(activations: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017): ReLU(Σ_k mean_ij(∂S/∂A_k) · A_k), at the layer's size."""
    weights = grads.mean(axis=(1, 2), keepdims=True)
    return np.maximum((activations * weights).sum(axis=-1), 0.0)


def gradcampp_from(activations: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Grad-CAM++ (Chattopadhay et al. 2018) in the closed form tf-keras-vis uses.

    The higher-order derivatives are the powers of the first gradient that the paper derives
    for an exponential score exp(S) (its eq. 19), so ``alpha = g² / (2g² + g³ · Σ_ij A)``. The
    exp(S) factor cancels in alpha and only scales the map by a positive number per image;
    it is left out here, in both engines (the reference engine gives tf-keras-vis a score of
    value 0), so that large logits cannot overflow and a logit shift that changes no gradient
    changes no map, normalised or not.
    """
    g2 = grads**2
    g3 = g2 * grads
    global_sum = activations.sum(axis=(1, 2), keepdims=True)
    denom = 2.0 * g2 + g3 * global_sum
    alphas = g2 / np.where(g2 == 0.0, denom + 1.0, denom)
    norm = alphas.sum(axis=(1, 2), keepdims=True)
    alphas = alphas / np.where(norm == 0.0, 1.0, norm)
    weights = (np.maximum(grads, 0.0) * alphas).sum(axis=(1, 2), keepdims=True)
    return np.maximum((weights * activations).sum(axis=-1), 0.0)


def upsample(cams: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (order-1 spline) resize of (N, h, w) maps to the input size, as tf-keras-vis."""
    factors = (1.0, size[0] / cams.shape[1], size[1] / cams.shape[2])
    return np.asarray(zoom(cams, factors, order=1))
