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
