"""The sanity audits' computations: maps under model and data randomisation, similarity,
and the gate that reads each similarity against its chance level.

A map that barely changes when the model's weights are re-initialised (or when the model was
trained on random labels) explains the image, not the model (Adebayo et al. 2018).

Maps are compared unnormalised by the engine and then through the one documented
normalisation of ``heatcheck.metrics.similarity`` (each map divided by its max |value|),
the same for every method. Our four methods' maps are unsigned (absolute gradients, ReLU'd
CAMs), so the signed Spearman measure is only computed for methods that the registry
(heatcheck.explain.methods) marks ``signed``.

A raw similarity means nothing across methods and image sets: sparse, centred or textured
maps resemble any other map of their kind (HOG Pearson of two unrelated heavy-tailed maps is
0.7). So every similarity s is read against its chance level c, the mean similarity of the
method's own maps of *different* images on this data, as ``n = (s − c) / (1 − c)``: 1 =
unchanged, 0 = as different as the maps of other images (below 0: more so). The gate asks the
maps to move at least the threshold of the way from unchanged to unrelated (1 − n ≥ margin,
with a bootstrap interval over images), after the last step and on average over the steps of
the cascade, so that a method that only changes at the last (lowest) layer is seen too.

References: Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, arXiv:1810.03292.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from heatcheck.checks.decision import Decision, bootstrap_interval, decide
from heatcheck.checks.randomisation import ModelRandomiser, apply, working_copy
from heatcheck.data import LabelledImages
from heatcheck.explain import methods as registry
from heatcheck.explain.provider import MapProvider, build_engine
from heatcheck.metrics.base import finite_mean
from heatcheck.metrics.similarity import (
    chance_normalised,
    hog_pearson,
    similarity_to_other_images,
    spearman_abs,
    spearman_signed,
    ssim,
)

MEASURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "spearman_abs": spearman_abs, "ssim": ssim, "hog_pearson": hog_pearson,
}
# The gate's control: an explainer that ignores the model keeps its maps, normalised similarity 1.
UNCHANGED = "unchanged maps"
UNRELATED = "maps of other images"


def measures_for(method: str) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    entry = registry.REGISTRY.get(method)
    if entry is not None and entry.signed:
        return {**MEASURES, "spearman_signed": spearman_signed}
    return MEASURES


@dataclass
class RandomisationRun:
    """Maps of a sample of images after every randomisation step, per method."""

    ids: tuple[str, ...]
    steps: list[str]
    original: dict[str, np.ndarray]
    cascading: dict[str, list[np.ndarray]] = field(default_factory=dict)
    independent: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def similarity(self, method: str, measure: str, kind: str = "cascading") -> list[np.ndarray]:
        """Per-step, per-image similarity of the randomised maps to the original ones."""
        fn = measures_for(method)[measure]
        runs = self.cascading if kind == "cascading" else self.independent
        return [fn(self.original[method], maps) for maps in runs[method]]

    def chance(self, method: str, measure: str) -> np.ndarray:
        """(N,) similarity of each original map to the method's maps of other images."""
        return similarity_to_other_images(measures_for(method)[measure], self.original[method])


def model_randomisation(provider: MapProvider, images: LabelledImages, methods: tuple[str, ...],
                        seed: int, grouping: str = "block",
                        kinds: tuple[str, ...] = ("cascading", "independent")) -> RandomisationRun:
    """Cascading and independent randomisation of the provider's model, every step batched."""
    model = provider.audit_model
    work = working_copy(model.logits_model)
    engine = build_engine(provider.settings, work, model.conv_layer, model.device)
    randomiser = ModelRandomiser(work, seed, grouping)

    def explain(step: str) -> dict[str, np.ndarray]:
        # The randomised weights follow from the model, the seed and the grouping: a key for the cache.
        key = f"{provider.model_key}|{step}|seed={seed}|{grouping}"
        return provider.explain_many(methods, images.images, images.labels, normalise=False,
                                     engine=engine, model_key=key)

    # The original maps are the audited model's own: its engine and cache already have them.
    original = provider.explain_many(methods, images.images, images.labels, normalise=False)
    run = RandomisationRun(images.ids, [s.name for s in randomiser.steps], original,
                           {m: [] for m in methods}, {m: [] for m in methods})
    schedules = {"cascading": randomiser.cascading, "independent": randomiser.independent}
    current = randomiser.weights(set())  # the working copy starts with the original weights
    for kind in kinds:
        for step, weights in schedules[kind]():
            apply(work, weights, current)
            for m, maps in explain(f"{kind}:{step.name}").items():
                getattr(run, kind)[m].append(maps)
    provider.extra_passes += engine.passes
    return run




@dataclass(frozen=True)
class DataRandomisation:
    """Per method and measure: similarity of the model's maps to the random-label model's, and
    of the model's maps to its maps of other images (the chance level)."""

    similarity: dict[str, dict[str, np.ndarray]]
    chance: dict[str, dict[str, np.ndarray]]


def data_randomisation(provider: MapProvider, random_label_provider: MapProvider,
                       images: LabelledImages, methods: tuple[str, ...]) -> DataRandomisation:
    """Per method and measure, per-image similarity of the model's maps to the random-label model's."""
    mine = provider.explain_many(methods, images.images, images.labels, normalise=False)
    theirs = random_label_provider.explain_many(methods, images.images, images.labels, normalise=False)
    return DataRandomisation(
        {m: {name: fn(mine[m], theirs[m]) for name, fn in measures_for(m).items()} for m in methods},
        {m: {name: similarity_to_other_images(fn, mine[m]) for name, fn in measures_for(m).items()}
         for m in methods})


def curve_area(normalised_steps: list[np.ndarray]) -> np.ndarray:
    """(N,) mean over the randomisation steps of each image's normalised similarity: the area
    under the cascading curve per step (1 = never changed, 0 = unrelated from the first step)."""
    return np.asarray(np.mean(np.stack(normalised_steps), axis=0), np.float64)


@dataclass(frozen=True)
class SimilarityReading:
    """One measure of one method read against its chance level, every number the report needs."""

    chance: float
    chance_interval: list[float]
    curve: list[float]  # mean raw similarity per step
    normalised_curve: list[float]
    values: np.ndarray  # (N,) what is gated: the final step's or the area's normalised similarity

    def details(self) -> dict[str, object]:
        return {"chance": self.chance, "chance_interval": self.chance_interval, "curve": self.curve,
                "normalised_curve": self.normalised_curve}


def read_against_chance(steps: list[np.ndarray], chance_per_image: np.ndarray, *, area: bool,
                        seed: list[int]) -> SimilarityReading:
    """Normalise per-step similarities (N,) by the chance level (mean of ``chance_per_image``);
    the gated values are the last step's, or with ``area`` the mean over steps."""
    chance = float(finite_mean(chance_per_image))
    normalised = [chance_normalised(s, chance) for s in steps]
    values = curve_area(normalised) if area else normalised[-1]
    return SimilarityReading(chance, bootstrap_interval(chance_per_image, seed=seed).as_list(),
                             [float(finite_mean(s)) for s in steps],
                             [float(finite_mean(n)) for n in normalised], values)


def gate_similarity(normalised: np.ndarray, margin: float, seed: list[int], *,
                    remedy: str = "audit more images (--hc-sanity-images N)") -> Decision:
    """Pass when the maps confidently moved at least ``margin`` of the way from unchanged
    (normalised similarity 1) to unrelated (0): the interval of 1 − n lies above the margin;
    fail when it lies below; inconclusive otherwise.

    heatcheck.checks.decision.decide with the unchanged explainer as the control (it scores 1) and as
    the chance level, which makes "not better than the control by the margin" a failure.
    """
    values = np.asarray(normalised, np.float64)
    decision = decide(values, {UNCHANGED: np.ones_like(values)}, margin=margin, seed=seed,
                      direction="lower", chance=1.0, weak_control=0.0)
    if decision.images == 0 and values.size >= 2:  # fewer images leave no pair for a chance level
        return replace(decision, reason="the method's maps of different images are identical as this "
                                        "measure compares them: it cannot tell a changed map on this data")
    moved, (low, high) = decision.effect, decision.interval.as_list()
    if decision.outcome == "failed":
        return replace(decision, reason=f"the maps moved only {moved:.2f} of the way from unchanged to "
                                        f"unrelated (interval [{low:.2f}, {high:.2f}]), needs {margin:g}: "
                                        f"they depend too little on the model's weights")
    if decision.outcome == "inconclusive" and decision.images >= 5:
        return replace(decision, reason=f"the maps moved {moved:.2f} of the way from unchanged to unrelated "
                                        f"with the interval [{low:.2f}, {high:.2f}] around the margin "
                                        f"{margin:g} on {decision.images} images: {remedy}")
    return decision
