"""The sanity audits' computations: maps under model and data randomisation, and similarity.

A map that barely changes when the model's weights are re-initialised (or when the model was
trained on random labels) explains the image, not the model (Adebayo et al. 2018).

Maps are compared unnormalised by the engine and then through the one documented
normalisation of ``heatcheck.metrics.similarity`` (each map divided by its max |value|),
the same for every method. Our four methods' maps are unsigned (absolute gradients, ReLU'd
CAMs), so the signed Spearman measure is only computed for methods in ``SIGNED_METHODS``.

References: Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, arXiv:1810.03292.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from heatcheck.data import LabelledImages
from heatcheck.explain.provider import MapProvider, build_engine
from heatcheck.metrics.similarity import hog_pearson, spearman_abs, spearman_signed, ssim
from heatcheck.randomisation import ModelRandomiser, apply, working_copy

MEASURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "spearman_abs": spearman_abs, "ssim": ssim, "hog_pearson": hog_pearson,
}
SIGNED_METHODS: frozenset[str] = frozenset()  # none of saliency/smoothgrad/gradcam(++) is signed


def measures_for(method: str) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    if method in SIGNED_METHODS:
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


def data_randomisation(provider: MapProvider, random_label_provider: MapProvider,
                       images: LabelledImages, methods: tuple[str, ...]) -> dict[str, dict[str, np.ndarray]]:
    """Per method and measure, per-image similarity of the model's maps to the random-label model's."""
    mine = provider.explain_many(methods, images.images, images.labels, normalise=False)
    theirs = random_label_provider.explain_many(methods, images.images, images.labels, normalise=False)
    return {m: {name: fn(mine[m], theirs[m]) for name, fn in measures_for(m).items()} for m in methods}
