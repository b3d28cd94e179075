"""Which images the report's gallery keeps, and putting shards' galleries together.

The gallery (maps.npz: pixels, masks, each method's map) keeps ``MAX_GALLERY`` images,
misclassified ones first, then the others in set order. A shard keeps the candidates of its
block chosen by the same rule; the whole set's choice is always among them (a block's first
``limit`` wrong images include every wrong image the whole set's first ``limit`` take from it,
and likewise for the right ones), so :func:`merge_galleries` finds every row it needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from heatcheck.report import MAX_GALLERY

ROW_KEYS = ("images", "masks")  # with every "map/<method>": one row per gallery image


def gallery_rows(correct: np.ndarray, limit: int = MAX_GALLERY) -> np.ndarray:
    """Which images the report's gallery keeps (their pixels, masks and maps go to maps.npz):
    misclassified ones first, then the others in order, ``limit`` in all, in set order."""
    wrong, right = np.flatnonzero(~correct), np.flatnonzero(correct)
    return np.sort(np.concatenate([wrong, right])[:limit])


def is_gallery_key(key: str) -> bool:
    return key == "ids" or key in ROW_KEYS or key.startswith("map/")


def merge_galleries(parts: Sequence[Mapping[str, np.ndarray]], ids: Sequence[str],
                    correct: np.ndarray, limit: int = MAX_GALLERY) -> dict[str, np.ndarray]:
    """The whole set's gallery arrays from the shards' candidates.

    Args:
        parts: each shard's arrays ("ids", "images", "masks", "map/<method>").
        ids, correct: every image of the whole set, in order, and whether the model got it right.
    """
    where = {str(image_id): (k, row) for k, part in enumerate(parts) if "ids" in part
             for row, image_id in enumerate(part["ids"].tolist())}
    chosen = [str(ids[i]) for i in gallery_rows(np.asarray(correct, bool), limit)]
    missing = [i for i in chosen if i not in where]
    if missing or not chosen:
        return {}
    keys = [k for k in parts[where[chosen[0]][0]] if k != "ids" and is_gallery_key(k)]
    out: dict[str, np.ndarray] = {"ids": np.array(chosen)}
    for key in keys:
        out[key] = np.stack([parts[where[i][0]][key][where[i][1]] for i in chosen])
    return out
