"""Input perturbations for the stability audit, seeded, in pixel space (0–255).

Two families: Yeh et al.'s neighbourhood, copies drawn uniformly in an L∞ ball of a stated
radius around the input (``LinfBall``), and a label-preserving family of Gaussian noise,
brightness and contrast shifts (``Perturbation``), whose noise levels are relative to each
image's range, as the seed notebook's smooth_noise is.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Perturbation:
    """One kind of perturbation at one level, e.g. gaussian σ = 0.02 of the range."""

    kind: str  # "gaussian" | "uniform" | "brightness" | "contrast"
    level: float

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.level:g}"

    def apply(self, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A perturbed float copy of ``pixels`` (N, H, W, C), clipped to 0–255."""
        x = np.asarray(pixels, np.float64)
        span = (x.max(axis=(1, 2, 3), keepdims=True) - x.min(axis=(1, 2, 3), keepdims=True))
        if self.kind == "gaussian":
            out = x + rng.normal(0.0, 1.0, x.shape) * self.level * span
        elif self.kind == "uniform":  # uniform in the L∞ ball of radius level × range (Yeh et al.)
            out = x + rng.uniform(-1.0, 1.0, x.shape) * self.level * span
        elif self.kind == "brightness":
            out = x + self.level * 255.0
        elif self.kind == "contrast":
            mean = x.mean(axis=(1, 2, 3), keepdims=True)
            out = mean + (1.0 + self.level) * (x - mean)
        else:
            raise ValueError(f"unknown perturbation kind '{self.kind}'")
        return np.clip(out, 0.0, 255.0).astype(np.float32)


# The label-preserving family's budget: small enough that a trustworthy map should barely move.
LABEL_PRESERVING = (
    Perturbation("gaussian", 0.01), Perturbation("gaussian", 0.02), Perturbation("gaussian", 0.05),
    Perturbation("brightness", 0.05), Perturbation("brightness", -0.05),
    Perturbation("contrast", 0.1), Perturbation("contrast", -0.1),
)


@dataclass(frozen=True)
class LinfBall:
    """Yeh et al.'s neighbourhood of x: {x' : ||x' − x||∞ ≤ radius}, radius in pixel levels (0–255).

    Copies are drawn uniformly in the ball (each pixel and channel independently in
    [x − r, x + r]) and clipped to 0–255, i.e. uniformly in the ball's part that is an image.

    References: Yeh et al., "On the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019,
    arXiv:1901.09392.
    """

    radius: float

    @property
    def name(self) -> str:
        return f"linf_ball:{self.radius:g}"

    def sample(self, image: np.ndarray, copies: int, rng: np.random.Generator) -> np.ndarray:
        """(copies, H, W, C) float32 copies of one image (H, W, C)."""
        x = np.asarray(image, np.float64)[None]
        out = x + rng.uniform(-self.radius, self.radius, (copies, *x.shape[1:]))
        return np.clip(out, 0.0, 255.0).astype(np.float32)


def draw_seed(seed: int, *names: str) -> list[int]:
    """The seed of one named draw (a check's bootstrap, an image's noisy copies): the run's
    seed and a checksum of the names, so that each draw repeats exactly and none depends on
    which other checks or images ran."""
    return [seed, *(zlib.crc32(name.encode()) for name in names)]
