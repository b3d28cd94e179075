"""The faithfulness audit's computations: deletion and insertion curves through the model, batched.

As RISE defines them (Petsiuk et al. 2018): deletion replaces the pixels a map calls most
important first by a baseline and follows the labelled class's probability down to the fully
deleted image; insertion starts from the baseline and puts the original pixels back in the
same order. Both run over the whole range in ``steps`` equal steps. The baseline is a blurred
copy of the image by default (a black patch is out of distribution and punishes every map
alike), or zeros, or each image's mean colour.

Each method's order is compared, image by image, with ``RANDOM_ORDERS`` seeded random orders
of the same image, drawn once per image and shared by every method: the random orders and the
endpoints (the untouched image and the fully replaced one, the same for every order) are
computed once. Every draw is seeded by the run's seed and the image's id, so an image's curves
do not depend on the batch size or on which other images are audited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter

from heatcheck.checks.decision import Decision, decide
from heatcheck.checks.perturbations import draw_seed
from heatcheck.data import ImageSet
from heatcheck.metrics.base import direction_of
from heatcheck.metrics.causal import deletion_auc, deletion_order, insertion_auc
from heatcheck.models import AuditModel
from heatcheck.models.predict import predict_proba

DEFAULT_STEPS = 16
BASELINES = ("blur", "zeros", "mean")
RANDOM_ORDERS = 3
RANDOM = "random order"
KINDS = {"deletion": deletion_auc, "insertion": insertion_auc}
# Perturbed images held at once: the copies of a chunk of images are built and predicted together.
_CHUNK_BYTES = 96 * 2**20

Predict = Callable[[np.ndarray], np.ndarray]  # pixels (M, H, W, C) -> class probabilities (M, K)


def fractions(steps: int) -> np.ndarray:
    """(steps + 1,) the shares of pixels replaced along a curve: 0, 1/steps, …, 1."""
    if steps < 1:
        raise ValueError(f"the curves need at least 1 step, not {steps}")
    return np.linspace(0.0, 1.0, steps + 1)


def baseline_images(images: np.ndarray, kind: str = "blur", sigma_fraction: float = 1 / 16) -> np.ndarray:
    """What replaced pixels become: ``blur`` (Gaussian, σ = ``sigma_fraction`` of the side,
    channels kept apart), ``zeros``, or ``mean`` (each image's mean colour)."""
    x = np.asarray(images, np.float32)
    if kind == "blur":
        sigma = sigma_fraction * x.shape[1]
        return np.stack([gaussian_filter(im, (sigma, sigma, 0)) for im in x])
    if kind == "zeros":
        return np.zeros_like(x)
    if kind == "mean":
        return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape).astype(np.float32)
    raise ValueError(f"unknown faithfulness baseline '{kind}'; choose from {', '.join(BASELINES)}")


def ranks_of(orders: np.ndarray) -> np.ndarray:
    """(N, P) each pixel's place in its image's order (the inverse permutation)."""
    ranks = np.empty_like(orders)
    np.put_along_axis(ranks, orders, np.arange(orders.shape[1])[None], axis=1)
    return ranks


def map_orders(maps: np.ndarray, ids: tuple[str, ...] | list[str], seed: int) -> np.ndarray:
    """(N, P) pixel indices, most important first; ties broken at random, seeded per image (a
    flat map must not delete in raster order, which would favour the top-left corner)."""
    return np.concatenate([deletion_order(m[None], np.random.default_rng(draw_seed(seed, "ties", i)))
                           for m, i in zip(maps, ids, strict=True)])


def random_orders(shape: tuple[int, int], ids: tuple[str, ...] | list[str], seed: int,
                  count: int = RANDOM_ORDERS) -> np.ndarray:
    """(N, count, P) seeded random orders of each image's pixels."""
    pixels = shape[0] * shape[1]
    return np.stack([np.stack([rng.permutation(pixels) for _ in range(count)])
                     for rng in (np.random.default_rng(draw_seed(seed, RANDOM, i)) for i in ids)])


def _chunks(n: int, per_image_bytes: int) -> Iterator[slice]:
    step = max(1, _CHUNK_BYTES // max(per_image_bytes, 1))
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def causal_curves(predict: Predict, images: np.ndarray, labels: np.ndarray, ranks: np.ndarray,
                  baseline: np.ndarray, steps: int, ends: tuple[np.ndarray, np.ndarray] | None = None,
                  ) -> dict[str, np.ndarray]:
    """Deletion and insertion curves (N, steps + 1) of the labelled class's probability.

    Args:
        predict: class probabilities of RGB pixels.
        images, baseline: (N, H, W, C) the images and what replaced pixels become.
        labels: (N,) the class followed.
        ranks: (N, H·W) each pixel's place in the order (``ranks_of``), most important = 0.
        ends: the labelled class's probability on the untouched and the fully replaced
            images, (N,) each, when the caller has them (they are the same for every order).
    """
    n, h, w, c = images.shape
    counts = np.round(fractions(steps) * h * w).astype(int)
    inner = counts[1:-1]
    if ends is None:
        ends = end_probabilities(predict, images, labels, baseline)
    out = {kind: np.empty((n, steps + 1)) for kind in KINDS}
    per_image = 2 * len(inner) * images[0].nbytes
    for part in _chunks(n, per_image) if len(inner) else ():  # one step: the endpoints are all
        x, b = images[part, None], baseline[part, None]
        replaced = (ranks[part, None, :] < inner[None, :, None]).reshape(-1, len(inner), h, w, 1)
        batch = np.concatenate([np.where(replaced, b, x), np.where(replaced, x, b)], axis=1)
        probs = predict(batch.reshape(-1, h, w, c))
        probs = probs.reshape(-1, 2, len(inner), probs.shape[-1])
        followed = np.take_along_axis(probs, labels[part, None, None, None], axis=3)[..., 0]
        out["deletion"][part, 1:-1], out["insertion"][part, 1:-1] = followed[:, 0], followed[:, 1]
    untouched, replaced_all = ends
    out["deletion"][:, 0], out["deletion"][:, -1] = untouched, replaced_all
    out["insertion"][:, 0], out["insertion"][:, -1] = replaced_all, untouched
    return out


def end_probabilities(predict: Predict, images: np.ndarray, labels: np.ndarray,
                      baseline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The labelled class's probability on the untouched images and on their baselines."""
    probs = predict(np.concatenate([images, baseline]))
    rows = np.arange(len(images))
    return probs[rows, labels], probs[len(images) + rows, labels]


@dataclass(frozen=True)
class SetCurves:
    """Every curve of a set: per method (N, S + 1), the random orders (N, R, S + 1), per kind."""

    fractions: np.ndarray
    methods: dict[str, dict[str, np.ndarray]]  # method -> kind -> (N, S + 1)
    random: dict[str, np.ndarray]  # kind -> (N, R, S + 1)
    baseline: str

    def auc(self, method: str, kind: str) -> np.ndarray:
        """(N,) the method's area under the curve."""
        return KINDS[kind](self.methods[method][kind], self.fractions)

    def reach(self, method: str, kind: str) -> np.ndarray:
        """(N,) how far the labelled class's probability moves along the image's curves, the
        method's and the random orders' together. Every area lies between the lowest and the
        highest point of its curve (the fractions span [0, 1]), so no order's area differs from
        another's by more: on images where this is below the margin, no map can pass."""
        curves = np.concatenate([self.methods[method][kind][:, None], self.random[kind]], axis=1)
        return np.asarray(curves.max(axis=(1, 2)) - curves.min(axis=(1, 2)))

    def random_auc(self, kind: str) -> np.ndarray:
        """(N,) the mean area of the random orders of each image."""
        curves = self.random[kind]
        n, r, f = curves.shape
        return np.asarray(KINDS[kind](curves.reshape(n * r, f), self.fractions).reshape(n, r).mean(axis=1))


def set_causal_curves(model: AuditModel, images: ImageSet, maps: Mapping[str, np.ndarray], *, seed: int,
                      steps: int = DEFAULT_STEPS, baseline: str = "blur",
                      orders: int = RANDOM_ORDERS) -> SetCurves:
    """Deletion and insertion curves of every method's maps and of ``orders`` random orders, read
    batch by batch (``maps``: name -> (N, H, W) in the set's order; memory-mapped is fine: only
    a batch's rows are read). Each batch's baseline, endpoints and random orders are computed
    once for all methods."""
    def predict(pixels: np.ndarray) -> np.ndarray:
        return predict_proba(model, pixels, batch_size=256)

    parts: dict[str, dict[str, list[np.ndarray]]] = {name: {k: [] for k in KINDS} for name in [*maps, RANDOM]}
    for rows, batch in images.batches():
        x, labels, ids = np.asarray(batch.images, np.float32), np.asarray(batch.labels), batch.ids
        base = baseline_images(x, baseline)
        ends = end_probabilities(predict, x, labels, base)
        shuffled = random_orders(x.shape[1:3], ids, seed, orders)
        per_order = [causal_curves(predict, x, labels, ranks_of(shuffled[:, r]), base, steps, ends)
                     for r in range(orders)]
        for kind in KINDS:  # (batch, R, S + 1)
            parts[RANDOM][kind].append(np.stack([curves[kind] for curves in per_order], axis=1))
        for name, values in maps.items():
            ranks = ranks_of(map_orders(np.asarray(values[rows]), ids, seed))
            for kind, curve in causal_curves(predict, x, labels, ranks, base, steps, ends).items():
                parts[name][kind].append(curve)
    joined = {name: {k: np.concatenate(v) for k, v in kinds.items()} for name, kinds in parts.items()}
    return SetCurves(fractions(steps), {name: joined[name] for name in maps}, joined[RANDOM], baseline)


def gate_faithfulness(scores: np.ndarray, random_scores: np.ndarray, kind: str, margin: float,
                      seed: list[int], *, reach: np.ndarray | None = None,
                      baseline: str = "blur") -> Decision:
    """Pass when the method's area beats its own image's random orders by ``margin`` (paired per
    image, bootstrap interval), fail when it confidently does not, inconclusive otherwise:
    heatcheck.checks.decision.decide with the random order as the control and the chance level.

    ``reach`` (SetCurves.reach) bounds what any order can change: when the curves move less than
    the margin on average, the set cannot tell a faithful map from a random order (the baseline
    keeps what the model reads, or the model is certain whatever is deleted), and a difference
    of 1e-7 must not read as a failure of the map. Such a check is inconclusive, with the remedy.
    """
    decision = decide(scores, {RANDOM: random_scores}, margin=margin, seed=seed,
                      direction=direction_of(KINDS[kind]), chance=random_scores, weak_control=0.0)
    if reach is None or decision.outcome == "passed":
        return decision
    moved = np.asarray(reach, np.float64)
    moved = moved[np.isfinite(moved)]
    if moved.size == 0 or float(moved.mean()) >= margin:
        return decision
    others = " or ".join(b for b in BASELINES if b != baseline)
    return replace(decision, outcome="inconclusive", reason=(
        f"{kind} hardly moves the model's output on these images: the labelled class's probability "
        f"spans {float(moved.mean()):.3g} on average along the curves, less than the margin {margin:g}, "
        f"so no order can beat another by it; try --hc-faithfulness-baseline {others} (the "
        f"{baseline} baseline may keep what the model reads)"))
