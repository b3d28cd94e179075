"""The computation behind the localisation audit: each method's chance-corrected scores and
the negative controls', on the same images and masks.

Four controls carry no information about where *this* object is and cost no model pass: a
random map, a centre prior, the edge map of the input (it ignores the model), and the method's
own maps shuffled across images (image j's map scored against image i's mask: does the map
know where this object is, or only where objects usually are?). A method's score means
something only as far as it beats them on the user's own images (heatcheck.decision).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from heatcheck.data import ImageSet
from heatcheck.explain import controls
from heatcheck.explain.mapset import MapSet
from heatcheck.metrics.localisation import (
    chance_corrected,
    energy_pointing_game,
    mask_fraction,
    pointing_chance,
    pointing_game,
    relevance_rank_accuracy,
)

METRICS = ("pointing_game", "energy_pointing_game", "relevance_rank_accuracy")
CONTROLS = ("random", "centre", "edges", "shuffled")


@dataclass
class LocalisationRun:
    """Raw per-image scores of every method and control, per metric, with their chance levels."""

    ids: tuple[str, ...]
    fractions: np.ndarray  # (N,) the mask's share of each image
    tolerance: int  # the pointing game's, in pixels
    chance: dict[str, np.ndarray] = field(default_factory=dict)  # metric → (N,)
    raw: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # metric → method → (N,)
    control_raw: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # metric → control → (N,)
    shuffled_raw: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # metric → method → (N,)

    def corrected(self, metric: str, method: str) -> np.ndarray:
        return chance_corrected(self.raw[metric][method], self.chance[metric])

    def controls(self, metric: str, method: str) -> dict[str, np.ndarray]:
        """Chance-corrected scores of every control, the method's shuffled maps among them."""
        out = {name: chance_corrected(v, self.chance[metric]) for name, v in self.control_raw[metric].items()}
        out["shuffled"] = chance_corrected(self.shuffled_raw[metric][method], self.chance[metric])
        return out


def _scorers(tolerance: int) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    return {
        "pointing_game": lambda maps, masks: pointing_game(maps, masks, tolerance=tolerance),
        "energy_pointing_game": energy_pointing_game,
        "relevance_rank_accuracy": relevance_rank_accuracy,
    }


def score_localisation(maps: MapSet, images: ImageSet, methods: tuple[str, ...], *, seed: int,
                       tolerance: int) -> LocalisationRun:
    """Score every method's maps and every control on ``images``, one batch at a time.

    The images are read once more, for the edge control; the maps come from the map pass.
    """
    n = len(images)
    run = LocalisationRun(images.ids, np.empty(n), tolerance)
    scorers = _scorers(tolerance)
    for metric in METRICS:
        run.chance[metric] = np.empty(n)
        run.raw[metric] = {m: np.empty(n) for m in methods}
        run.control_raw[metric] = {c: np.empty(n) for c in CONTROLS if c != "shuffled"}
        run.shuffled_raw[metric] = {m: np.full(n, np.nan) for m in methods}
    source = controls.derangement(n, seed) if n >= 2 else None
    for rows, batch in images.batches():
        masks = batch.masks
        shape = masks.shape[1:]
        run.fractions[rows] = mask_fraction(masks)
        control_maps = {
            "random": controls.random_maps(range(rows.start, rows.stop), shape, seed),
            "centre": np.broadcast_to(controls.centre_prior(*shape), masks.shape),
            "edges": controls.edges(batch.images),
        }
        for metric, score in scorers.items():
            run.chance[metric][rows] = (pointing_chance(masks, tolerance) if metric == "pointing_game"
                                        else mask_fraction(masks))
            for name, cmaps in control_maps.items():
                run.control_raw[metric][name][rows] = score(cmaps, masks)
            for m in methods:
                run.raw[metric][m][rows] = score(np.asarray(maps[m][rows]), masks)
                if source is not None:
                    run.shuffled_raw[metric][m][rows] = score(np.asarray(maps[m][source[rows]]), masks)
    return run


def fraction_summary(fractions: np.ndarray) -> dict[str, object]:
    """The distribution of mask fractions of a set, for results.json and the report."""
    counts, edges = np.histogram(fractions, bins=10, range=(0.0, 1.0))
    q = np.quantile(fractions, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {"min": float(q[0]), "q25": float(q[1]), "median": float(q[2]), "q75": float(q[3]),
            "max": float(q[4]), "mean": float(fractions.mean()),
            "histogram": {"edges": edges.round(2).tolist(), "counts": counts.tolist()}}


def strong_control_remedy(fractions: np.ndarray) -> str:
    """One line saying why controls score high on this set and what to do about it."""
    share = float(np.mean(fractions))
    suggestion = min(0.3, max(0.05, round(float(np.median(fractions)) / 2, 2)))
    return (f"masks cover {share:.0%} of the image on average; use tighter masks (boxes around "
            f"the object only) or --max-mask-fraction {suggestion:g}")
