"""The stability audit's computations: maps of perturbed copies, the gate against the maps of
other images, and a hypothesis search for the smallest perturbation that breaks a map.

Two families of copies, each named for what it is:

- Yeh et al.'s max- and avg-sensitivity: ``SENSITIVITY_SAMPLES`` copies per image drawn
  uniformly in the L∞ ball of radius ``BALL_RADIUS`` pixel levels, every copy counted (the map
  is of the labelled class, whatever the model now predicts; the share of copies whose top-1
  class changed is recorded). K and the radius are the same in every profile: a maximum over K
  copies grows with K, so profiles change how many images, never the definition.
- The label-preserving family (Gaussian noise, brightness, contrast; heatcheck.checks.perturbations):
  ``COPIES_PER_LEVEL`` copies per level, only those whose top-1 class is unchanged count (a map
  should change when the decision does); the share discarded is recorded; map SSIM is gated.

Every copy of an image is drawn from a generator seeded by the run's seed and the image's id,
so an image's copies do not depend on how many images are audited. Maps are compared
unnormalised, through the metrics' own scale handling, and SmoothGrad uses the same noise draws
for x and x'. Each score is read against what a map that carries nothing about the input
scores on these images: the method's map of another image (heatcheck.metrics.sensitivity).

References: Yeh et al., "On the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019,
arXiv:1901.09392.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heatcheck.checks.decision import Decision, decide
from heatcheck.checks.perturbations import LABEL_PRESERVING, LinfBall, Perturbation, draw_seed
from heatcheck.data import LabelledImages
from heatcheck.explain.provider import MapProvider
from heatcheck.metrics.base import finite_mean
from heatcheck.metrics.sensitivity import (
    avg_sensitivity,
    map_ssim,
    max_sensitivity,
    relative_change_to_other_images,
    relative_input_stability,
)
from heatcheck.metrics.similarity import chance_normalised, similarity_to_other_images, ssim
from heatcheck.models.predict import predict_proba

METRICS: dict[str, Callable[..., np.ndarray]] = {
    "map_ssim": map_ssim, "max_sensitivity": max_sensitivity, "avg_sensitivity": avg_sensitivity,
    "relative_input_stability": relative_input_stability,
}
SENSITIVITY_SAMPLES = 16  # K, Yeh's copies per image: fixed, so max-sensitivity means one thing
BALL_RADIUS = 4.0  # Yeh's r, in pixel levels of 0–255: the L∞ budget 4/255 common on ImageNet
COPIES_PER_LEVEL = 2  # label-preserving copies per perturbation level
UNRELATED = "map of another image"


@dataclass
class PerturbedSet:
    """Perturbed copies of a sample of images (N, K, H, W, C) and which of them count."""

    images: LabelledImages
    copy_kind: list[str]  # what each of the K copies is, e.g. "gaussian:0.02" or "linf_ball:4"
    copies: np.ndarray
    kept: np.ndarray  # bool (N, K): the copies that are scored
    changed: np.ndarray  # bool (N, K): the copies whose top-1 class differs from the original's
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (N, H, W) originals' maps
    copy_maps: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (N, K, H, W)

    @property
    def discarded_share(self) -> float:
        return float(1.0 - self.kept.mean())

    @property
    def changed_share(self) -> float:
        return float(self.changed.mean())

    @property
    def levels(self) -> list[str]:
        return list(dict.fromkeys(self.copy_kind))


def _draw(images: LabelledImages, seed: int, family: str,
          draw: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> np.ndarray:
    """(N, K, H, W, C): ``draw(image, rng)`` per image, rng seeded by the seed and the image's id."""
    return np.stack([draw(image, np.random.default_rng(draw_seed(seed, family, image_id)))
                     for image, image_id in zip(images.images, images.ids, strict=True)])


def _classified(provider: MapProvider, images: LabelledImages, copies: np.ndarray,
                classes: np.ndarray | None) -> np.ndarray:
    """bool (N, K): copies whose top-1 class differs from the original's."""
    n, k = copies.shape[:2]
    before = top_classes(provider, images) if classes is None else classes
    after = predict_proba(provider.audit_model, copies.reshape(n * k, *copies.shape[2:])).argmax(axis=1)
    return np.asarray(after.reshape(n, k) != before[:, None])


def linf_ball_set(provider: MapProvider, images: LabelledImages, seed: int, radius: float = BALL_RADIUS,
                  samples: int = SENSITIVITY_SAMPLES, classes: np.ndarray | None = None) -> PerturbedSet:
    """Yeh et al.'s copies: ``samples`` per image uniform in the L∞ ball; all of them count."""
    ball = LinfBall(radius)
    copies = _draw(images, seed, ball.name, lambda image, rng: ball.sample(image, samples, rng))
    changed = _classified(provider, images, copies, classes)
    return PerturbedSet(images, [ball.name] * samples, copies, np.ones_like(changed), changed)


def perturb(provider: MapProvider, images: LabelledImages,
            perturbations: Sequence[Perturbation] = LABEL_PRESERVING,
            copies_per_level: int = COPIES_PER_LEVEL, seed: int = 0,
            classes: np.ndarray | None = None) -> PerturbedSet:
    """The label-preserving family: every level's copies, batched; only copies the model still
    classifies the same count. ``classes``: the originals' top-1 classes, when the caller has them."""
    def draw(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([p.apply(image[None], rng)
                               for p in perturbations for _ in range(copies_per_level)])

    copies = _draw(images, seed, "label-preserving", draw)
    changed = _classified(provider, images, copies, classes)
    kinds = [p.name for p in perturbations for _ in range(copies_per_level)]
    return PerturbedSet(images, kinds, copies, ~changed, changed)


def top_classes(provider: MapProvider, images: LabelledImages) -> np.ndarray:
    return predict_proba(provider.audit_model, images.images).argmax(axis=1)


def explain_perturbed(provider: MapProvider, pset: PerturbedSet, methods: tuple[str, ...]) -> None:
    """Unnormalised maps of the originals and of every kept copy, all methods, one batched call
    each; copies not kept (label-preserving ones that changed the decision) are never scored, so
    they get NaN maps, not passes."""
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


@dataclass(frozen=True)
class StabilityReading:
    """A stability metric of one method read against the map of another image."""

    raw: np.ndarray  # (N,) the metric as its paper defines it
    unrelated: float  # what the method's map of another image scores on these images
    # (N,) in units of it: sensitivity ÷ unrelated (0 = unmoved, 1 = as far as another image's
    # map); map SSIM chance-normalised (1 = unmoved, 0 = as alike as another image's map)
    normalised: np.ndarray

    def details(self) -> dict[str, object]:
        return {"raw": float(finite_mean(self.raw)), "unrelated": self.unrelated,
                "raw_per_image": [float(v) for v in self.raw]}


def read_against_unrelated(pset: PerturbedSet, method: str, metric: str) -> StabilityReading:
    """Per-image ``metric`` and its place between an unmoved map and the method's map of another
    image: sensitivity ÷ the relative change to another image's map (rescaled to this map's
    norm), map SSIM normalised by the SSIM to another image's map (``chance_normalised``)."""
    raw = score(pset, method, metric)
    maps = pset.maps[method]
    if metric == "map_ssim":
        level = float(finite_mean(similarity_to_other_images(ssim, maps)))
        return StabilityReading(raw, level, chance_normalised(raw, level))
    level = float(finite_mean(relative_change_to_other_images(maps)))
    ratio = raw / level if np.isfinite(level) and level > 0 else np.full(raw.shape, np.nan)
    return StabilityReading(raw, level, ratio)


def gate_stability(normalised: np.ndarray, metric: str, margin: float, seed: list[int]) -> Decision:
    """Pass when the maps confidently stay at least ``margin`` (in units of the unrelated level)
    closer to the original than the method's map of another image, with a bootstrap interval
    over images; fail when confidently not; inconclusive otherwise. heatcheck.checks.decision.decide
    with the map of another image as the control and the chance level (sensitivity 1, map
    SSIM 0 after normalisation)."""
    values = np.asarray(normalised, np.float64)
    level = 0.0 if metric == "map_ssim" else 1.0
    return decide(values, {UNRELATED: np.full_like(values, level)}, margin=margin, seed=seed,
                  direction="higher" if metric == "map_ssim" else "lower", chance=level, weak_control=0.0)


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
