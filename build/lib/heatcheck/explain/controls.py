"""Control "explanations" that exist to show what failing looks like.

``edges`` is the Sobel gradient magnitude of the input: it looks plausible on natural images
and ignores the model entirely, so the randomisation audit must fail it (Adebayo et al. 2018,
who show edge detectors resemble some saliency maps). ``noise`` is a random map seeded by the
input's bytes: the same input gives the same map (so runs repeat), any perturbation a new
one (so the stability audit must fail it).
"""

from __future__ import annotations

import hashlib

import numpy as np
from skimage.color import rgb2gray
from skimage.filters import sobel


def edges(images: np.ndarray) -> np.ndarray:
    """Sobel magnitude of the grey-level input, one (H, W) map per image."""
    grey = rgb2gray(np.asarray(images, np.float64) / 255.0)
    return np.stack([sobel(g) for g in grey]).astype(np.float32)


def noise(images: np.ndarray, seed: int) -> np.ndarray:
    """A uniform random map per image, seeded by ``seed`` and the image's bytes."""
    maps = []
    for image in np.asarray(images, np.float32):
        digest = hashlib.sha256(image.tobytes()).digest()
        rng = np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])
        maps.append(rng.random(image.shape[:2], dtype=np.float32))
    return np.stack(maps)


# Negative controls of the localisation audit: maps that carry no information about where
# the object is, scored on the user's own images and masks (DESIGN.md, "Gates").
CENTRE_SIGMA = 0.25  # the centre prior's standard deviation, as a share of each side


def centre_prior(height: int, width: int) -> np.ndarray:
    """A fixed Gaussian at the image centre: where objects usually are in photographs."""
    y = (np.arange(height) - (height - 1) / 2) / (CENTRE_SIGMA * height)
    x = (np.arange(width) - (width - 1) / 2) / (CENTRE_SIGMA * width)
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2)).astype(np.float32)


def random_maps(rows: range, shape: tuple[int, int], seed: int) -> np.ndarray:
    """A uniform random map per image, seeded by the image's position in the set (so the maps
    do not depend on the batch size), independent of the ``noise`` method's draws."""
    return np.stack([np.random.default_rng([seed, 0x10CA1, i]).random(shape, dtype=np.float32)
                     for i in rows])


def derangement(count: int, seed: int) -> np.ndarray:
    """``source[i]``: whose map image ``i`` is scored with in the shuffled control; never its
    own (one seeded random cycle through the set). Needs at least two images."""
    if count < 2:
        raise ValueError(f"shuffling maps across images needs at least 2 images, not {count}")
    order = np.random.default_rng([seed, 0x5AFF1E]).permutation(count)
    source = np.empty(count, np.int64)
    source[order] = np.roll(order, -1)
    return source
