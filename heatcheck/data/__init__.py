"""Labelled images: image, label, object mask and id.

Two shapes of the same thing: :class:`LabelledImages` holds its pixels in memory (a batch, a
sample, the bench); :class:`ImageSet` holds only ids and labels and reads pixels and masks
batch by batch when asked, so that a set larger than memory can be audited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from heatcheck.errors import HeatcheckError

# Reads the images and masks at the given positions of a set: (n, H, W, 3) uint8, (n, H, W) bool.
Reader = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class ImageError(HeatcheckError, ValueError):
    """A labelled image that cannot be audited; the message names the image and the problem."""


@dataclass(frozen=True)
class LabelledImages:
    """Labelled images with object masks, in memory.

    ``images`` are RGB pixels (N, H, W, 3) in 0–255; ``masks`` are boolean (N, H, W), True on
    the object; ``rejected`` lists what was left out and why, for results.json.
    """

    spec: str
    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    ids: tuple[str, ...]
    class_names: tuple[str, ...] = ()
    rejected: tuple[dict[str, str], ...] = field(default=())

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class ImageSet:
    """A validated set of labelled images whose pixels are read on demand, a batch at a time.

    Only ids and labels live in memory. Every read goes through :meth:`batches` or
    :meth:`take`, which never ask the reader for more than ``batch_size`` images at once.
    """

    spec: str
    labels: np.ndarray
    ids: tuple[str, ...]
    reader: Reader
    batch_size: int = 32
    class_names: tuple[str, ...] = ()
    rejected: tuple[dict[str, str], ...] = field(default=())
    positions: np.ndarray | None = None  # rows of the reader's set this view covers (None: all)

    def __len__(self) -> int:
        return len(self.ids)

    def class_name(self, index: int) -> str:
        """The name of class ``index`` (the model's names, else a folder layout's), else the index."""
        return self.class_names[index] if 0 <= index < len(self.class_names) else str(index)

    def batches(self, size: int | None = None) -> Iterator[tuple[slice, LabelledImages]]:
        """``(rows, batch)`` in order: ``rows`` is where the batch sits in this set."""
        size = size or self.batch_size
        for start in range(0, len(self), size):
            rows = slice(start, min(start + size, len(self)))
            yield rows, self._read(np.arange(rows.start, rows.stop))

    def take(self, keep: np.ndarray | None = None) -> LabelledImages:
        """The images ``keep`` selects (bool (N,) or indices; all when None), in memory."""
        idx = np.arange(len(self)) if keep is None else positions_of(keep)
        parts = [self._read(idx[i:i + self.batch_size]) for i in range(0, len(idx), self.batch_size)]
        if not parts:
            raise ValueError(f"{self.spec}: nothing selected")
        return LabelledImages(self.spec, np.concatenate([p.images for p in parts]), self.labels[idx],
                              np.concatenate([p.masks for p in parts]), tuple(self.ids[i] for i in idx),
                              self.class_names, self.rejected)

    def subset(self, keep: np.ndarray) -> ImageSet:
        """A view of the images where ``keep`` selects; nothing is read."""
        idx = positions_of(keep)
        rows = idx if self.positions is None else self.positions[idx]
        return ImageSet(self.spec, self.labels[idx], tuple(self.ids[i] for i in idx), self.reader,
                        self.batch_size, self.class_names, self.rejected, rows)

    def _read(self, idx: np.ndarray) -> LabelledImages:
        rows = idx if self.positions is None else self.positions[idx]
        images, masks = self.reader(rows)
        return LabelledImages(self.spec, images, self.labels[idx], masks, tuple(self.ids[i] for i in idx),
                              self.class_names, self.rejected)

    @classmethod
    def in_memory(cls, images: LabelledImages, batch_size: int = 32) -> ImageSet:
        """An ImageSet over arrays already in memory (the bench, tests)."""
        def read(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return images.images[rows], images.masks[rows]

        return cls(images.spec, images.labels, images.ids, read, batch_size, images.class_names,
                   images.rejected)


def positions_of(keep: np.ndarray) -> np.ndarray:
    """Indices from a boolean selection or from indices."""
    keep = np.asarray(keep)
    return np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.intp)


def mask_problem(mask: np.ndarray) -> str | None:
    """Why a mask cannot be used for localisation, or None when it can."""
    if not mask.any():
        return "mask is empty: no object pixels"
    if mask.all():
        return "mask covers the whole image: localisation cannot tell object from background"
    return None


def from_arrays(spec: str, images: np.ndarray, labels: np.ndarray, masks: np.ndarray,
                ids: list[str] | tuple[str, ...], class_names: tuple[str, ...] = (),
                num_classes: int | None = None) -> LabelledImages:
    """Validate arrays image by image; rejected images are listed, the others kept."""
    keep: list[int] = []
    rejected: list[dict[str, str]] = []
    for i, image_id in enumerate(ids):
        problem = mask_problem(masks[i])
        if problem is None and num_classes is not None and not 0 <= labels[i] < num_classes:
            problem = f"label {labels[i]} out of range 0..{num_classes - 1}"
        if problem is None:
            keep.append(i)
        else:
            rejected.append({"id": image_id, "source": spec, "reason": problem})
    if not keep:
        raise ImageError(f"{spec}: no usable images ({len(rejected)} rejected)")
    idx = np.array(keep)
    return LabelledImages(spec, images[idx], labels[idx].astype(np.int64), masks[idx].astype(bool),
                          tuple(ids[i] for i in keep), class_names, tuple(rejected))
