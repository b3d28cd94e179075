"""Labelled images: image, label, object mask and id, validated up front."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class ImageError(ValueError):
    """A labelled image that cannot be audited; the message names the image and the problem."""


@dataclass(frozen=True)
class LabelledImages:
    """A validated set of labelled images with object masks.

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

    def subset(self, keep: np.ndarray) -> LabelledImages:
        """The images where ``keep`` (bool (N,) or indices) selects."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        return LabelledImages(self.spec, self.images[idx], self.labels[idx], self.masks[idx],
                              tuple(self.ids[i] for i in idx), self.class_names, self.rejected)


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
