"""W3, heatcheck's side: the three metrics on the seed workload's model and images, with floors.

The floor of a metric is the model passes it needs times one compiled pass measured here:
pointing game needs none; cascading randomisation (one layer per step, as Quantus's MPRT)
needs the original maps plus one set per weighted layer; max-sensitivity needs one map per
noisy copy (50 copies, uniform noise of radius 0.2 of the range, Quantus's defaults).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.workload import floor_passes, seed_workload

SENSITIVITY_SAMPLES = 50


def _images(quick: bool) -> tuple[Any, Any]:
    from heatcheck import data, models

    model, x, labels = seed_workload(quick)
    size = x.shape[1]
    # Pixels back from caffe preprocessing, so the provider's own preprocessing applies.
    pixels = np.clip((x + np.array([103.939, 116.779, 123.68], np.float32))[..., ::-1], 0, 255)
    masks = np.zeros((len(x), size, size), bool)
    masks[:, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = True
    images = data.from_arrays("benchmark", pixels, labels, masks, [f"img-{i}" for i in range(len(x))])
    return models.wrap(model, "vgg16", "benchmark", preprocess="caffe"), images


def heatcheck_metrics(quick: bool) -> dict[str, dict[str, float]]:
    from heatcheck.checks.perturbations import Perturbation
    from heatcheck.checks.randomisation import layer_groups
    from heatcheck.checks.sanity import model_randomisation
    from heatcheck.explain.provider import MapProvider
    from heatcheck.metrics.pointing import pointing_game
    from heatcheck.metrics.sensitivity import max_sensitivity
    from heatcheck.settings import Settings

    audit_model, images = _images(quick)
    provider = MapProvider(audit_model, Settings(methods=("saliency",)))
    floor = floor_passes(audit_model.logits_model, audit_model.conv_layer or "",
                         provider._prepare(images.images), images.labels)
    maps = provider.explain_many(("saliency",), images.images, images.labels, normalise=True)["saliency"]
    out: dict[str, dict[str, float]] = {}

    start = time.perf_counter()
    pointing_game(maps, images.masks)
    out["pointing_game"] = {"heatcheck_s": time.perf_counter() - start, "floor_s": 0.0}

    steps = len(layer_groups(audit_model.logits_model, "layer"))
    start = time.perf_counter()
    model_randomisation(provider, images, ("saliency",), seed=0, grouping="layer", kinds=("cascading",))
    out["cascading_randomisation"] = {"heatcheck_s": time.perf_counter() - start,
                                      "floor_s": (1 + steps) * floor["grad"], "steps": float(steps)}

    samples = 4 if quick else SENSITIVITY_SAMPLES
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    noise = Perturbation("uniform", 0.2)
    copies = np.concatenate([noise.apply(images.images, rng) for _ in range(samples)])
    labels = np.tile(images.labels, samples)
    copy_maps = provider.explain_many(("saliency",), copies, labels, normalise=False)["saliency"]
    originals = provider.explain_many(("saliency",), images.images, images.labels,
                                      normalise=False)["saliency"]
    per_copy = copy_maps.reshape(samples, len(images), *maps.shape[1:]).swapaxes(0, 1)
    max_sensitivity(originals, per_copy)
    out["max_sensitivity"] = {"heatcheck_s": time.perf_counter() - start,
                              "floor_s": (samples + 1) * floor["grad"], "samples": float(samples)}
    for values in out.values():
        if values["floor_s"]:
            values["vs_floor"] = values["heatcheck_s"] / values["floor_s"]
    return out
