"""The computation behind the localisation audit: each method's chance-corrected scores and
the negative controls', on the same images and masks.

Four controls carry no information about where *this* object is and cost no model pass: a
random map, a centre prior, the edge map of the input (it ignores the model), and the method's
own maps shuffled across images (image j's map scored against image i's mask: does the map
know where this object is, or only where objects usually are?). A method's score means
something only as far as it beats them on the user's own images (heatcheck.checks.decision).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from heatcheck.data import ImageSet
from heatcheck.data.sharding import offset_of, whole_of
from heatcheck.explain import controls
from heatcheck.explain.mapset import MapSet
from heatcheck.metrics.pointing import (
    chance_corrected,
    energy_pointing_game,
    mask_fraction,
    pointing_chance,
    pointing_game,
    relevance_rank_accuracy,
)

METRICS = ("pointing_game", "energy_pointing_game", "relevance_rank_accuracy")
NEGATIVE_CONTROLS = ("random", "centre", "edges", "shuffled")


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
    # A shard's block (heatcheck.data.sharding): its maps scored against the masks of images outside
    # the block they are paired with; positions in the whole set, values metric → method → (k,).
    # heatcheck.report.merge puts them in place; a whole-set run has none.
    shuffled_positions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    shuffled_elsewhere: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def corrected(self, metric: str, method: str) -> np.ndarray:
        return chance_corrected(self.raw[metric][method], self.chance[metric])

    def settle_shuffled(self) -> None:
        """Put the shuffled-control scores that blocks kept for images outside them in place:
        after heatcheck.report.merge has put the blocks' runs together into the whole set's."""
        for metric, by_method in self.shuffled_elsewhere.items():
            for method, values in by_method.items():
                self.shuffled_raw[metric][method][self.shuffled_positions] = values
        self.shuffled_positions = np.zeros(0, np.int64)
        self.shuffled_elsewhere = {}

    def controls(self, metric: str, method: str) -> dict[str, np.ndarray]:
        """Chance-corrected scores of every control, the method's shuffled maps among them. A
        method is never its own control: the edges method against the edge control (the same
        maps) could not pass whatever it scored, and its audit would prove nothing."""
        out = {name: chance_corrected(v, self.chance[metric])
               for name, v in self.control_raw[metric].items() if name != method}
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
    ``images`` may be a shard's block (heatcheck.data.sharding): the random maps and the pairing of
    the shuffled control then follow the images' positions in the whole set, so that the
    blocks' scores put together are the whole set's.
    """
    n, offset, whole = len(images), offset_of(images), whole_of(images)
    run = LocalisationRun(images.ids, np.empty(n), tolerance)
    scorers = _scorers(tolerance)
    for metric in METRICS:
        run.chance[metric] = np.empty(n)
        run.raw[metric] = {m: np.empty(n) for m in methods}
        run.control_raw[metric] = {c: np.empty(n) for c in NEGATIVE_CONTROLS if c != "shuffled"}
        run.shuffled_raw[metric] = {m: np.full(n, np.nan) for m in methods}
    # Image i is scored with image source[i]'s map; the block holding that map scores it, so
    # each block needs, for its own images j, who is paired with them: paired_with[j].
    source = controls.derangement(len(whole), seed) if len(whole) >= 2 else None
    paired_with = None if source is None else np.argsort(source)[offset:offset + n]
    # slot[j]: where block image j's map's score goes among the values kept for the merge (-1: in
    # the block itself)
    slot = np.full(n, -1)
    if paired_with is not None:
        elsewhere = np.flatnonzero((paired_with < offset) | (paired_with >= offset + n))
        slot[elsewhere] = np.arange(len(elsewhere))
        run.shuffled_positions = paired_with[elsewhere]
        run.shuffled_elsewhere = {metric: {m: np.full(len(elsewhere), np.nan) for m in methods}
                                  for metric in METRICS}
    for rows, batch in images.batches():
        masks = batch.masks
        shape = masks.shape[1:]
        run.fractions[rows] = mask_fraction(masks)
        control_maps = {
            "random": controls.random_maps(range(offset + rows.start, offset + rows.stop), shape, seed),
            "centre": np.broadcast_to(controls.centre_prior(*shape), masks.shape),
            "edges": controls.edges(batch.images),
        }
        partners = None if paired_with is None or not methods else paired_with[rows]
        partner_masks = None if partners is None else _partner_masks(maps, whole, partners, offset)
        block_maps = {m: np.asarray(maps[m][rows]) for m in methods}  # read once for every metric
        for metric, score in scorers.items():
            run.chance[metric][rows] = (pointing_chance(masks, tolerance) if metric == "pointing_game"
                                        else mask_fraction(masks))
            for name, cmaps in control_maps.items():
                run.control_raw[metric][name][rows] = score(cmaps, masks)
            for m in methods:
                run.raw[metric][m][rows] = score(block_maps[m], masks)
                if partners is not None and partner_masks is not None:
                    _place_shuffled(run, metric, m, score(block_maps[m], partner_masks), partners - offset,
                                    slot[rows])
    return run


def _partner_masks(maps: MapSet, whole: ImageSet, partners: np.ndarray, offset: int) -> np.ndarray:
    """The masks of the images ``partners`` (positions in the whole set): the map pass's inside
    the block, read from the whole set beyond it (a shard's block: one batch at a time)."""
    inside = (partners >= offset) & (partners < offset + len(maps))
    out = np.empty((len(partners), *maps.masks.shape[1:]), bool)
    if inside.any():
        out[inside] = np.asarray(maps.masks[partners[inside] - offset])
    if (~inside).any():
        wanted = partners[~inside]
        order = np.argsort(wanted)  # read in set order, put back in the batch's
        read = whole.take(wanted[order]).masks
        out[np.flatnonzero(~inside)[order]] = read
    return out


def _place_shuffled(run: LocalisationRun, metric: str, method: str, values: np.ndarray,
                    partners: np.ndarray, slots: np.ndarray) -> None:
    """Shuffled-control scores of the images ``partners`` (positions relative to the block's
    first image): into the block's own array, or, for images outside it, kept for the merge."""
    inside = slots < 0
    run.shuffled_raw[metric][method][partners[inside]] = values[inside]
    run.shuffled_elsewhere[metric][method][slots[~inside]] = values[~inside]


def fraction_summary(fractions: np.ndarray) -> dict[str, object]:
    """The distribution of mask fractions of a set, for results.json and the report."""
    counts, edges = np.histogram(fractions, bins=10, range=(0.0, 1.0))
    q = np.quantile(fractions, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {"min": float(q[0]), "q25": float(q[1]), "median": float(q[2]), "q75": float(q[3]),
            "max": float(q[4]), "mean": float(fractions.mean()),
            "histogram": {"bin_edges": edges.round(2).tolist(), "counts": counts.tolist()}}


def strong_control_remedy(fractions: np.ndarray) -> str:
    """One line saying why controls score high on this set and what to do about it."""
    share = float(np.mean(fractions))
    suggestion = min(0.3, max(0.05, round(float(np.median(fractions)) / 2, 2)))
    return (f"masks cover {share:.0%} of the image on average; use tighter masks (boxes around "
            f"the object only) or --hc-max-mask-fraction {suggestion:g}")
