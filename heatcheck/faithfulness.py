"""The faithfulness audit's computations: deletion curves through the model, batched.

Pixels are deleted in the map's order by replacing them with a blurred copy of the image
(a black patch would be out of distribution and punish every map alike); the same is done
in a seeded random order, the baseline a map must beat.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from heatcheck.data import ImageSet, LabelledImages
from heatcheck.metrics.faithfulness import deletion_order
from heatcheck.models import AuditModel
from heatcheck.predict import predict_proba

FRACTIONS = np.array([0.0, 0.02, 0.05, 0.1, 0.2, 0.3])


def blurred(images: np.ndarray, sigma_fraction: float = 1 / 16) -> np.ndarray:
    """Each image blurred with σ = ``sigma_fraction`` of its side (channels kept apart)."""
    sigma = sigma_fraction * images.shape[1]
    return np.stack([gaussian_filter(np.asarray(im, np.float32), (sigma, sigma, 0)) for im in images])


def deletion_curves(model: AuditModel, images: LabelledImages, maps: np.ndarray,
                    fractions: np.ndarray = FRACTIONS, rng: np.random.Generator | None = None) -> np.ndarray:
    """(N, F) probability of each image's label after deleting each fraction of its pixels in
    the order of ``maps`` (most important first); ``rng`` breaks ties at random."""
    n, h, w = maps.shape
    order = deletion_order(maps, rng)
    baseline = blurred(images.images)
    batch = np.repeat(np.asarray(images.images, np.float32)[:, None], len(fractions), axis=1)
    for j, fraction in enumerate(fractions):
        k = int(round(fraction * h * w))
        rows = np.repeat(np.arange(n), k)
        pixels = order[:, :k].ravel()
        ys, xs = np.divmod(pixels, w)
        batch[rows, j, ys, xs] = baseline[rows, ys, xs]
    probs = predict_proba(model, batch.reshape(n * len(fractions), h, w, -1))
    return probs[np.arange(n * len(fractions)), np.repeat(images.labels, len(fractions))].reshape(n, -1)


def set_deletion_curves(model: AuditModel, images: ImageSet, maps: np.ndarray | None,
                        fractions: np.ndarray = FRACTIONS, seed: int | None = None) -> np.ndarray:
    """:func:`deletion_curves` of a whole set, read batch by batch.

    ``maps``: (N, H, W) maps in the set's order (memory-mapped is fine: only a batch's rows are
    read); None deletes in random order, the baseline. One generator runs through the batches,
    so the tie-breaking draws do not depend on the batch size.
    """
    rng = None if seed is None else np.random.default_rng(seed)
    curves = []
    for rows, batch in images.batches():
        batch_maps = np.zeros(batch.masks.shape, np.float32) if maps is None else np.asarray(maps[rows])
        curves.append(deletion_curves(model, batch, batch_maps, fractions, rng))
    return np.concatenate(curves)
