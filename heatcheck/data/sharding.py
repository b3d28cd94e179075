"""Which images a shard audits, so that many processes or machines give one process's answer.

How heatcheck runs past one process (the design; README "Past one process"):

* The audited set is cut into ``N`` contiguous **blocks**, one per shard, on whole batches of
  ``--hc-batch-size`` images. A shard computes the per-image work of the whole-set audits (label
  consistency, localisation, faithfulness) on its block only, so every image's maps are
  computed once, in the same batches as in one process (a model's outputs need not be
  bit-identical across batch compositions on every device).
* Every per-image draw is seeded by the image's position in the whole set (the localisation
  controls, the deletion tie-breaks), never by its place in a block, and the shuffled-maps
  control pairs images across blocks: the shard that holds image j's map scores it against
  the mask of the image it is paired with, wherever that image lies.
* The sample audits (sanity, stability, with the hypothesis search) work on the first images
  of the set and their work does not split by image: each runs whole on one shard
  (:func:`runs_family`), on the same sample one process would use.
* Each shard keeps its per-image values (heatcheck.report.partial) and heatcheck.report.merge puts them back
  in set order and recomputes every aggregate and every calibrated decision from them by
  running the same test functions on the merged values (heatcheck.plugin.replay).

pytest-xdist workers are shards of one machine (worker ``gwI`` of ``N`` is shard ``I/N``, the
controller merges); ``--hc-shard I/N`` is a shard on its own (``python -m heatcheck merge``).
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass

import numpy as np

from heatcheck.data import ImageSet
from heatcheck.errors import HeatcheckError
from heatcheck.settings import Settings

# Audit families that work on a sample of the first images: each runs whole on one shard.
SAMPLE_FAMILIES = ("sanity", "stability")
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardError(HeatcheckError, ValueError):
    """A shard specification that cannot be used; the message says why."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based: ``0/3``, ``1/3``, ``2/3``)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ShardError(f"--hc-shard {self.index}/{self.count}: need 0 <= I < N (shards are "
                             f"0/N .. N-1/N)")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"1/3"`` → Shard(1, 3)."""
        match = _SPEC.match(text)
        if match is None:
            raise ShardError(f"--hc-shard {text!r}: expected I/N, e.g. 0/4 (shards are numbered from 0)")
        return cls(int(match.group(1)), int(match.group(2)))

    def split(self, workers: int, worker: int) -> Shard:
        """Worker ``worker`` of ``workers`` inside this shard, as a shard of the whole set."""
        return Shard(self.index * workers + worker, self.count * workers)

    def owns(self, name: str) -> bool:
        """Whether this shard runs a test that must run once (not per image): by its name."""
        return zlib.crc32(name.encode()) % self.count == self.index


def xdist_worker() -> tuple[int, int] | None:
    """(worker index, worker count) inside a pytest-xdist worker, from its environment."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker or not count or not worker.startswith("gw"):
        return None
    return int(worker[2:]), int(count)


def block(total: int, batch_size: int, shard: Shard) -> slice:
    """The rows of a set of ``total`` images that ``shard`` audits: contiguous, on whole batches,
    the batches dealt as evenly as they go (a shard may get none when there are few)."""
    batches = -(-total // batch_size)
    first = shard.index * batches // shard.count
    last = (shard.index + 1) * batches // shard.count
    return slice(min(first * batch_size, total), min(last * batch_size, total))


def runs_family(shard: Shard, family: str) -> bool:
    """Whether ``shard`` runs ``family``'s tests: the whole-set audits run on every shard (each
    on its block), each sample audit on one shard (sanity on 0, stability on 1, mod N)."""
    if family not in SAMPLE_FAMILIES:
        return True
    return SAMPLE_FAMILIES.index(family) % shard.count == shard.index


def prediction_rows(total: int, settings: Settings, shard: Shard | None) -> list[np.ndarray]:
    """Groups of rows of the labelled set whose model outputs this process computes, each group
    predicted in its own batches (so a block's batches are one process's): every row in one
    process; on a shard its block, and every other row with --hc-only-correct (which images are
    audited depends on all of them), or else the sample's rows on a shard that runs a sample
    audit (stability reads the model's class of each sampled image)."""
    if shard is None:
        return [np.arange(total)]
    rows = block(total, settings.batch_size, shard)
    mine = np.arange(rows.start, rows.stop)
    if settings.only_correct:
        extra = np.setdiff1d(np.arange(total), mine)
    elif any(runs_family(shard, family) for family in SAMPLE_FAMILIES):
        sample = min(total, max(settings.sanity_count, settings.stability_count))
        extra = np.setdiff1d(np.arange(sample), mine)
    else:
        extra = np.zeros(0, np.intp)
    return [r for r in (mine, extra) if len(r)]


@dataclass(frozen=True)
class BlockImages(ImageSet):
    """One shard's block of an audited set: an ImageSet view that knows where it sits.

    ``offset`` is the position of its first image in ``whole``, the set the shard's block was
    cut from, whose other images the shuffled-maps control still reads masks of.
    """

    offset: int = 0
    whole: ImageSet | None = None


def block_view(images: ImageSet, rows: slice) -> BlockImages:
    """The images at ``rows`` of ``images`` as a :class:`BlockImages` (nothing is read)."""
    view = images.subset(np.arange(rows.start, rows.stop))
    return BlockImages(view.spec, view.labels, view.ids, view.reader, view.batch_size, view.class_names,
                       view.rejected, view.positions, offset=rows.start, whole=images)


def offset_of(images: ImageSet) -> int:
    """Position of ``images``' first image in the whole audited set (0 unless a shard's block)."""
    return images.offset if isinstance(images, BlockImages) else 0


def whole_of(images: ImageSet) -> ImageSet:
    """The whole audited set ``images`` belongs to (itself unless a shard's block)."""
    if isinstance(images, BlockImages) and images.whole is not None:
        return images.whole
    return images
