"""The faithfulness audit's computations: deletion curves through the model, batched.

Pixels are deleted in the map's order by replacing them with a blurred copy of the image
(a black patch would be out of distribution and punish every map alike); the same is done
in a seeded random order, the baseline a map must beat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from heatcheck.data import ImageSet, LabelledImages
from heatcheck.metrics.faithfulness import deletion_order
from heatcheck.models import AuditModel
from heatcheck.predict import predict_proba
from heatcheck.sharding import offset_of

FRACTIONS = np.array([0.0, 0.02, 0.05, 0.1, 0.2, 0.3])


def blurred(images: np.ndarray, sigma_fraction: float = 1 / 16) -> np.ndarray:
    """Each image blurred with σ = ``sigma_fraction`` of its side (channels kept apart)."""
    sigma = sigma_fraction * images.shape[1]
    return np.stack([gaussian_filter(np.asarray(im, np.float32), (sigma, sigma, 0)) for im in images])


def deletion_curves(model: AuditModel, images: LabelledImages, maps: np.ndarray,
                    fractions: np.ndarray = FRACTIONS,
                    rng: np.random.Generator | Sequence[np.random.Generator] | None = None,
                    baseline: np.ndarray | None = None) -> np.ndarray:
    """(N, F) probability of each image's label after deleting each fraction of its pixels in
    the order of ``maps`` (most important first); ``rng`` (one generator, or one per image)
    breaks ties at random. ``baseline``: the images' blurred copies, when the caller deletes for
    several maps."""
    n, h, w = maps.shape
    order = deletion_order(maps, rng)
    baseline = blurred(images.images) if baseline is None else baseline
    batch = np.repeat(np.asarray(images.images, np.float32)[:, None], len(fractions), axis=1)
    for j, fraction in enumerate(fractions):
        k = int(round(fraction * h * w))
        rows = np.repeat(np.arange(n), k)
        pixels = order[:, :k].ravel()
        ys, xs = np.divmod(pixels, w)
        batch[rows, j, ys, xs] = baseline[rows, ys, xs]
    probs = predict_proba(model, batch.reshape(n * len(fractions), h, w, -1))
    return probs[np.arange(n * len(fractions)), np.repeat(images.labels, len(fractions))].reshape(n, -1)


def set_deletion_curves(model: AuditModel, images: ImageSet, maps: Mapping[str, np.ndarray | None],
                        fractions: np.ndarray = FRACTIONS, seed: int | None = None) -> dict[str, np.ndarray]:
    """:func:`deletion_curves` of a whole set for several maps at once, read batch by batch.

    ``maps``: name -> (N, H, W) maps in the set's order (memory-mapped is fine: only a batch's
    rows are read), or None to delete in random order, the baseline. Each batch is read and
    blurred once for all of them. Each image's ties are broken by a generator seeded with
    ``seed`` and its position in the whole audited set (``images`` may be a shard's block), the
    same for every name: the draws depend neither on the other names, nor on the batch size,
    nor on how the set is split into shards.
    """
    offset = offset_of(images)
    curves: dict[str, list[np.ndarray]] = {name: [] for name in maps}
    for rows, batch in images.batches():
        baseline = blurred(batch.images)
        flat = np.zeros(batch.masks.shape, np.float32)
        for name, values in maps.items():
            batch_maps = flat if values is None else np.asarray(values[rows])
            rngs = None if seed is None else [np.random.default_rng([seed, offset + i])
                                              for i in range(rows.start, rows.stop)]
            curves[name].append(deletion_curves(model, batch, batch_maps, fractions, rngs, baseline))
    return {name: np.concatenate(parts) for name, parts in curves.items()}
