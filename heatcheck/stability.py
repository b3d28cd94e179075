"""The stability audit's computations: maps of label-preserving perturbed copies, and a
hypothesis search for the smallest perturbation that breaks a map.

Only perturbed copies whose top-1 class is unchanged count (a map should change when the
decision does); the share discarded is recorded. Maps are compared unnormalised, through the
metrics' own scale handling, and SmoothGrad uses the same noise draws for x and x'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heatcheck.data import LabelledImages
from heatcheck.explain.provider import MapProvider
from heatcheck.metrics.stability import avg_sensitivity, map_ssim, max_sensitivity, relative_input_stability
from heatcheck.perturbations import Perturbation
from heatcheck.predict import predict_proba

METRICS: dict[str, Callable[..., np.ndarray]] = {
    "map_ssim": map_ssim, "max_sensitivity": max_sensitivity, "avg_sensitivity": avg_sensitivity,
    "relative_input_stability": relative_input_stability,
}


@dataclass
class PerturbedSet:
    """Perturbed copies of a sample of images (N, K, H, W, C) and which keep the label."""

    images: LabelledImages
    perturbations: list[Perturbation]
    copies: np.ndarray
    kept: np.ndarray  # bool (N, K)
    copy_kind: list[str]  # perturbation name of each of the K copies
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (N,) originals' maps
    copy_maps: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (N, K, H, W)

    @property
    def discarded_share(self) -> float:
        return float(1.0 - self.kept.mean())


def perturb(provider: MapProvider, images: LabelledImages, perturbations: list[Perturbation],
            copies_per_level: int, seed: int, classes: np.ndarray | None = None) -> PerturbedSet:
    """Draw every perturbed copy, batched, and keep those the model still classifies the same.

    ``classes``: the model's top-1 class of each original, when the caller has it already.
    """
    rng = np.random.default_rng([seed, 4])
    blocks, kinds = [], []
    for p in perturbations:
        for _ in range(copies_per_level):
            blocks.append(p.apply(images.images, rng))
            kinds.append(p.name)
    copies = np.stack(blocks, axis=1)  # (N, K, H, W, C)
    n, k = copies.shape[:2]
    flat = copies.reshape(n * k, *copies.shape[2:])
    before = top_classes(provider, images) if classes is None else classes
    after = predict_proba(provider.audit_model, flat).argmax(axis=1).reshape(n, k)
    return PerturbedSet(images, perturbations, copies, after == before[:, None], kinds)


def top_classes(provider: MapProvider, images: LabelledImages) -> np.ndarray:
    return predict_proba(provider.audit_model, images.images).argmax(axis=1)


def explain_perturbed(provider: MapProvider, pset: PerturbedSet, methods: tuple[str, ...]) -> None:
    """Unnormalised maps of the originals and of every kept copy, all methods, one batched call
    each; copies that changed the decision are never scored, so they get NaN maps, not passes."""
    n, k = pset.copies.shape[:2]
    images = pset.images
    pset.maps = provider.explain_many(methods, images.images, images.labels, normalise=False)
    kept = pset.kept.ravel()
    flat = pset.copies.reshape(n * k, *pset.copies.shape[2:])[kept]
    copy_maps = provider.explain_many(methods, flat, np.repeat(images.labels, k)[kept],
                                      normalise=False) if kept.any() else {}
    for m in methods:
        full = np.full((n * k, *pset.maps[m].shape[1:]), np.nan, np.float32)
        if m in copy_maps:
            full[kept] = copy_maps[m]
        pset.copy_maps[m] = full.reshape(n, k, *full.shape[1:])


def score(pset: PerturbedSet, method: str, metric: str, kinds: set[str] | None = None) -> np.ndarray:
    """Per-image ``metric`` over the kept copies (of ``kinds`` if given); NaN where none is kept."""
    fn = METRICS[metric]
    out = np.full(len(pset.images), np.nan)
    for i in range(len(pset.images)):
        keep = pset.kept[i] & np.array([kinds is None or c in kinds for c in pset.copy_kind])
        if not keep.any():
            continue
        maps, copies = pset.maps[method][i:i + 1], pset.copy_maps[method][i:i + 1, keep]
        if metric == "relative_input_stability":
            x = pset.images.images[i:i + 1].astype(np.float64)
            out[i] = fn(x, pset.copies[i:i + 1, keep].astype(np.float64), maps, copies)[0]
        else:
            out[i] = fn(maps, copies)[0]
    return out


@dataclass(frozen=True)
class Counterexample:
    """The smallest breaking perturbation hypothesis found, after shrinking."""

    image: str
    sigma: float
    brightness: float
    seed: int
    similarity: float

    def describe(self, method: str) -> str:
        return (f"{method} breaks at σ = {self.sigma:.3g}, brightness {self.brightness:+.3g} "
                f"(noise seed {self.seed}) on image {self.image}: SSIM {self.similarity:.3f}")


@dataclass
class SearchResult:
    """What the hypothesis search saw: the worst SSIM of any kept example, and the shrunk
    counterexample when one broke the threshold."""

    worst_similarity: float = 1.0
    examples: int = 0
    counterexample: Counterexample | None = None


def search_counterexample(provider: MapProvider, images: LabelledImages, method: str, threshold: float,
                          max_sigma: float, max_brightness: float, hypothesis_settings: Any,
                          classes: np.ndarray | None = None) -> SearchResult:
    """Let hypothesis look for a label-preserving perturbation within the budget whose map SSIM
    falls below ``threshold``; it shrinks what it finds. ``classes`` as for ``perturb``."""
    from hypothesis import assume, given
    from hypothesis import strategies as st

    originals = provider.explain_many((method,), images.images, images.labels, normalise=False)[method]
    classes = top_classes(provider, images) if classes is None else classes
    found: list[Counterexample] = []
    result = SearchResult()

    @hypothesis_settings
    @given(index=st.integers(0, len(images) - 1), sigma=st.floats(0.0, max_sigma),
           brightness=st.floats(-max_brightness, max_brightness), seed=st.integers(0, 2**16))
    def prop(index: int, sigma: float, brightness: float, seed: int) -> None:
        x = images.images[index:index + 1]
        rng = np.random.default_rng(seed)
        x2 = Perturbation("brightness", brightness).apply(Perturbation("gaussian", sigma).apply(x, rng), rng)
        assume(predict_proba(provider.audit_model, x2).argmax(axis=1)[0] == classes[index])
        moved = provider.explain_many((method,), x2, images.labels[index:index + 1], normalise=False)[method]
        similarity = float(map_ssim(originals[index:index + 1], moved[:, None])[0])
        result.examples += 1
        result.worst_similarity = min(result.worst_similarity, similarity)
        if similarity < threshold:
            found.append(Counterexample(images.ids[index], sigma, brightness, seed, similarity))
        assert similarity >= threshold

    try:
        prop()
    except (AssertionError, ExceptionGroup):
        result.counterexample = found[-1]  # hypothesis replays the shrunk example last
    return result
