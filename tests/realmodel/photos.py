"""Real photographs with hand-drawn object boxes, all shipped by installed packages (offline).

Each photo is a scikit-image sample photograph, whole or cropped, chosen because
EfficientNet-Lite1 (``efficientnet_lite.py``) names its object correctly at top-1 after
heatcheck's resize to 240×240. Each box was drawn by looking at the photo with a 25-pixel
grid over it; boxes are ``x0,y0,x1,y1`` pixel edges in the photo's own (cropped) pixels,
the format of heatcheck's manifest ``box`` column.

``write_photo_set(folder, "moved")`` writes the same photos with each box moved to where the
object is not (no overlap with the true box): a correct explainer must then fail
localisation. A box that cannot move off its object at its own size is shrunk to fit
beside it (espresso, space shuttle), and a photo whose object fills most of the frame
(cat 89 %, moped 66 %) is left out of the moved set.

Left out of both: matplotlib's ``grace_hopper.jpg`` ("military uniform" at top-1, 0.49, but
the model needs the cap: without it, "mortarboard"; so the uniform's box is cap plus jacket,
94 % of the photo) and the whole ``rocket()`` photo ("drilling platform": the towers win;
the crop around the rocket is kept as "missile").
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Photo:
    """A photograph, the ImageNet class the model predicts for it and its object's box."""

    name: str
    source: str  # the scikit-image loader
    crop: Box | None  # x0, y0, x1, y1 of the source photo kept, or None for all of it
    label: int  # ImageNet class index, EfficientNet-Lite1's top-1
    box: Box  # around the object, in the (cropped) photo's pixels
    moved: Box | None  # on the photo where the object is not; None: no room

    def image(self) -> np.ndarray:
        """The photo as uint8 RGB (height, width, 3)."""
        pixels = _LOADERS[self.source]()
        if pixels.ndim == 2:
            pixels = np.stack([pixels] * 3, axis=-1)
        if self.crop is not None:
            x0, y0, x1, y1 = self.crop
            pixels = pixels[y0:y1, x0:x1]
        return np.ascontiguousarray(pixels[..., :3], dtype=np.uint8)


def _stereo_left() -> np.ndarray:
    from skimage import data

    return data.stereo_motorcycle()[0]


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return getattr(data, name)()

    return load


_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "chelsea": _skimage("chelsea"), "coffee": _skimage("coffee"), "camera": _skimage("camera"),
    "astronaut": _skimage("astronaut"), "rocket": _skimage("rocket"),
    "stereo_motorcycle": _stereo_left,
}

PHOTOS = (
    # the whole cat's head fills the frame: no room for a moved box
    Photo("cat", "chelsea", None, 285, (0, 0, 400, 300), None),
    # the cup (handle in, saucer and spoon out); moved: the wood right of the saucer, half as wide
    Photo("espresso", "coffee", None, 967, (172, 16, 411, 306), (480, 100, 600, 390)),
    # the tripod with the camera on it; moved: the cameraman's coat and the grass below it
    Photo("tripod", "camera", None, 872, (228, 138, 410, 510), (0, 140, 182, 512)),
    # the space helmet, bottom right ("football helmet"); moved: flag and wall, top left
    Photo("helmet", "astronaut", None, 560, (276, 342, 510, 512), (0, 0, 234, 170)),
    # the shuttle model behind the astronaut; moved: the wall right of it, half as wide
    Photo("space_shuttle", "astronaut", (320, 0, 512, 290), 812, (32, 0, 138, 280), (142, 0, 190, 250)),
    # the rocket on its pad, towers cropped away; moved: the sky left of it
    Photo("missile", "rocket", (210, 110, 430, 427), 657, (96, 14, 130, 300), (20, 14, 54, 300)),
    # a motorcycle, which ImageNet calls a moped; it fills two thirds of the frame
    Photo("moped", "stereo_motorcycle", (40, 0, 740, 500), 665, (50, 68, 647, 452), None),
)


def mask_fraction(box: Box, shape: tuple[int, ...]) -> float:
    """The share of the photo a box covers."""
    x0, y0, x1, y1 = box
    return (x1 - x0) * (y1 - y0) / (shape[0] * shape[1])


def write_photo_set(folder: Path, boxes: Literal["correct", "moved"]) -> Path:
    """Writes the photos as PNGs and ``manifest.csv`` (image,label,box); returns the manifest.

    ``boxes="moved"`` keeps only the photos with a moved box and writes that box.
    """
    from PIL import Image

    if boxes not in ("correct", "moved"):
        raise ValueError(f"boxes must be 'correct' or 'moved', not {boxes!r}")
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label", "box"])
        for photo in PHOTOS:
            box = photo.box if boxes == "correct" else photo.moved
            if box is None:
                continue
            Image.fromarray(photo.image()).save(folder / f"{photo.name}.png")
            writer.writerow([f"{photo.name}.png", photo.label, ",".join(map(str, box))])
    return manifest
