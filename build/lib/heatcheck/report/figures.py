"""Matplotlib figures for the HTML report, rendered to PNG bytes.

Every figure is a bare ``matplotlib.figure.Figure`` drawn by an explicit Agg canvas: no pyplot,
so nothing here changes the process-wide backend, figure registry or rcParams of whoever calls
the report (a notebook, a pytest session with its own plotting).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image
from skimage.segmentation import find_boundaries
from skimage.transform import resize

OVERLAY_ALPHA = 0.5
DPI = 100
# Each panel title is one small line; the row title above it one more.
_TITLE_PX = 12
_ROW_TITLE_PX = 14


@dataclass(frozen=True)
class Series:
    """One line of a line plot.

    Attributes:
        dashed: draw the line dashed (e.g. independent randomisation next to cascading).
        colour_of: lines with the same key share a colour (one method's two curves); by
            default each label gets its own.
    """

    label: str
    x: Sequence[float]
    y: Sequence[float]
    dashed: bool = False
    colour_of: str | None = None


def colormap_named(name: str) -> Colormap:
    """The registered colormap ``name``; ValueError naming the choices if there is none."""
    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"unknown colormap {name!r}; try 'jet', 'viridis' or 'cividis'") from None


def drawable(text: object) -> str:
    """``text`` as a string any font can be asked for: bytes of a file name that were not UTF-8
    (lone surrogates, which FreeType refuses with a TypeError) as ``\\xe9``, control
    characters (a NUL, a newline in an id) as their escapes, so that a title stays one line."""
    text = str(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@contextmanager
def _missing_glyphs_allowed() -> Iterator[None]:
    """A class name or id in a script the font lacks (CJK in DejaVu Sans) is drawn as boxes,
    the HTML beside the figure has the real text: not an error where warnings are errors."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Glyph \d+ .* missing from font", UserWarning)
        yield


def to_png(fig: Figure, *, palette: bool = False) -> bytes:
    """Draw ``fig`` with the Agg canvas and return PNG bytes (no metadata, so reproducible).

    Args:
        palette: quantise to 256 colours first; photo-like rows shrink about three times
            (30 KB instead of 100 KB for seven 80 px panels) with no visible loss at that size.
    """
    canvas = FigureCanvasAgg(fig)
    with _missing_glyphs_allowed():
        canvas.draw()
    picture = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    if palette:
        picture = picture.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def display_range(saliency: np.ndarray) -> tuple[float, float]:
    """(vmin, vmax) of the finite values, so NaN/inf or a constant map cannot break imshow."""
    finite = saliency[np.isfinite(saliency)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    return (low, high) if high > low else (low, low + 1.0)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) floats in [0, 1] from a uint8 or float photo, colour or grey."""
    rgb = np.asarray(image, dtype=np.float32)
    if np.issubdtype(np.asarray(image).dtype, np.integer) or rgb.max(initial=0.0) > 1.0:
        rgb = rgb / 255.0
    if rgb.ndim == 3 and rgb.shape[-1] == 1:
        rgb = rgb[..., 0]
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=-1)
    return np.clip(np.nan_to_num(rgb[..., :3]), 0.0, 1.0)


def _panel_shape(shape: tuple[int, ...], panel_px: int) -> tuple[int, int]:
    scale = panel_px / max(shape[0], shape[1])
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def _fit(array: np.ndarray, size: tuple[int, int], *, order: int = 1) -> np.ndarray:
    downscaling = size[0] < array.shape[0]
    return np.asarray(resize(array, size, order=order, anti_aliasing=downscaling and order > 0,
                             preserve_range=True), dtype=np.float32)


def _fit_map(saliency: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The map resized to the panel; NaN/inf pixels stay NaN (drawn transparent).

    They are filled before resizing because scikit-image's resize warns on, and smears, NaN.
    """
    saliency = np.asarray(saliency, dtype=np.float32)
    valid = np.isfinite(saliency)
    if valid.all():
        return _fit(saliency, size)
    resized = _fit(np.where(valid, saliency, 0.0), size)
    resized[_fit(valid.astype(np.float32), size, order=0) < 0.5] = np.nan
    return resized


def coloured(saliency: np.ndarray, cmap: Colormap) -> np.ndarray:
    """(H, W, 4) RGBA of a map scaled to its own finite range; NaN pixels are transparent."""
    low, high = display_range(saliency)
    return np.asarray(cmap(Normalize(low, high, clip=True)(np.ma.masked_invalid(saliency))))


def overlay(photo: np.ndarray, saliency: np.ndarray, cmap: Colormap) -> np.ndarray:
    """The map's colours blended over the photo at OVERLAY_ALPHA (both already panel-sized)."""
    rgba = coloured(saliency, cmap)
    alpha = OVERLAY_ALPHA * rgba[..., 3:]
    return (1.0 - alpha) * photo + alpha * rgba[..., :3]


def outlined(photo: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo with the mask's boundary painted white (nothing to draw for empty/full masks)."""
    edge = find_boundaries(mask, mode="inner") if mask.any() and not mask.all() else mask & False
    result = photo.copy()
    result[edge] = 1.0
    return result


def gallery_row(image: np.ndarray, mask: np.ndarray, maps: Sequence[tuple[str, np.ndarray]],
                title: str, *, colormap: str = "jet", panel_px: int = 80) -> bytes:
    """One gallery row as in the user's notebook: the photo with the mask outline, then each
    method's map overlaid on the photo (jet, alpha 0.5), under a title line.

    Args:
        image: (H, W, 3) uint8 photo (or (H, W) grey).
        mask: (H, W) bool object mask.
        maps: (method name, (H, W) map) pairs, drawn left to right.
    """
    cmap = colormap_named(colormap)
    size = _panel_shape(image.shape, panel_px)
    photo = _fit(_as_rgb(image), size)
    panels = [outlined(photo, _fit(np.asarray(mask, np.float32), size, order=0) > 0.5)]
    # Maps are resized before colouring so a 7x7 Grad-CAM is shown smooth, as the CAMs are meant.
    panels += [overlay(photo, _fit_map(m, size), cmap) for _, m in maps]
    titles = ["image + mask"] + [name for name, _ in maps]
    return mosaic([panels], [titles], heading=title)


def sanity_grid(rows: Sequence[tuple[str, np.ndarray]], step_labels: Sequence[str], *,
                colormap: str = "jet", panel_px: int = 80, photo: np.ndarray | None = None,
                heading: str | None = None) -> bytes:
    """Cascading randomisation maps of one image: one row per method, one column per step.

    Args:
        rows: (method name, (S+1, H, W) maps) pairs; index 0 is the map of the trained model.
        step_labels: S+1 column titles.
        photo: the image itself, drawn left of the first row (blank left of the others).
        heading: one line above the grid (which image this is).
    """
    cmap = colormap_named(colormap)
    panels, titles = [], []
    for r, (method, maps) in enumerate(rows):
        size = _panel_shape(maps.shape[1:], panel_px)
        # Each map is scaled on its own, as in Adebayo et al.: the shape is what is compared.
        row = [coloured(_fit_map(m, size), cmap)[..., :3] for m in maps]
        row_titles = [f"{method}: {step_labels[0]}", *step_labels[1:]]
        if photo is not None:
            picture = _fit(_as_rgb(photo), size) if r == 0 else np.ones((*size, 3), np.float32)
            row, row_titles = [picture, *row], ["image" if r == 0 else "", *row_titles]
        panels.append(row)
        titles.append(row_titles)
    return mosaic(panels, titles, heading=heading)


def mosaic(panels: Sequence[Sequence[np.ndarray]], titles: Sequence[Sequence[str]],
           heading: str | None = None) -> bytes:
    """Rows of RGB panels, each under its own small title, optionally under one heading line.

    The pixels are composed in numpy and placed unresampled with figimage: about ten times
    faster than one Axes per panel, which matters for a gallery of a few hundred rows.
    """
    gap, top = 4, (_ROW_TITLE_PX if heading else 0)
    panel_h = max(p.shape[0] for row in panels for p in row)
    panel_w = max(p.shape[1] for row in panels for p in row)
    columns = max(len(row) for row in panels)
    width = columns * panel_w + (columns - 1) * gap
    height = top + len(panels) * (_TITLE_PX + panel_h)
    canvas = np.ones((height, width, 3), dtype=np.float32)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    for r, (row, row_titles) in enumerate(zip(panels, titles, strict=True)):
        y = top + r * (_TITLE_PX + panel_h) + _TITLE_PX
        for c, (panel, text) in enumerate(zip(row, row_titles, strict=True)):
            x = c * (panel_w + gap)
            canvas[y:y + panel.shape[0], x:x + panel.shape[1]] = panel
            _label(fig, text, x + panel_w / 2, y - 1, (width, height), fontsize=6,
                   max_chars=panel_w // 4)
    if heading:
        _label(fig, heading, width / 2, top - 1, (width, height), fontsize=7, max_chars=width // 5)
    fig.figimage(np.clip(canvas, 0.0, 1.0), xo=0, yo=0, origin="upper")
    return to_png(fig, palette=True)


def _label(fig: Figure, text: str, x_px: float, bottom_px: float, size: tuple[int, int], *,
           fontsize: float, max_chars: int) -> None:
    # Cut long user strings so they cannot spill over the neighbouring panel; the full text
    # is in the HTML next to the picture. parse_math=False: a '$' in a class name is a dollar.
    text = drawable(text)
    if len(text) > max_chars:
        text = text[: max(1, max_chars - 1)] + "\u2026"
    width, height = size
    fig.text(x_px / width, 1.0 - bottom_px / height, text, ha="center", va="bottom",
             fontsize=fontsize, parse_math=False)


def _colours(series: Sequence[Series]) -> dict[str, str]:
    keys = dict.fromkeys(line.colour_of or line.label for line in series)
    return {key: f"C{index % 10}" for index, key in enumerate(keys)}


def _draw_lines(ax: Any, series: Sequence[Series], colours: dict[str, str]) -> None:
    for line in series:
        ax.plot(line.x, line.y, marker="o", markersize=3, linewidth=1.2, label=drawable(line.label),
                linestyle="--" if line.dashed else "-", color=colours[line.colour_of or line.label])


def _ticks(ax: Any, xticklabels: Sequence[str] | None) -> None:
    if xticklabels is not None:
        ax.set_xticks(range(len(xticklabels)), [drawable(t) for t in xticklabels],
                      rotation=30, ha="right", fontsize=7)
        for text in ax.get_xticklabels():
            text.set_parse_math(False)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def _legend(ax: Any, **kwargs: Any) -> None:
    # Legend texts are user strings too: stop mathtext parsing them.
    for text in ax.legend(fontsize=7, **kwargs).get_texts():
        text.set_parse_math(False)


Reference = tuple[float, str]  # a horizontal line (y, label): a chance level, "unchanged"


REFERENCE_STYLES: tuple[Literal[":", "-.", "--"], ...] = (":", "-.", "--")


def _references(ax: Any, references: Sequence[Reference]) -> None:
    for (y, label), style in zip(references, REFERENCE_STYLES, strict=False):
        ax.axhline(y, color="0.45", linestyle=style, linewidth=1.1, label=drawable(label))


def line_plot(series: Sequence[Series], *, xlabel: str, ylabel: str,
              xticklabels: Sequence[str] | None = None, logx: bool = False,
              references: Sequence[Reference] = (), size: tuple[float, float] = (5.6, 2.8),
              ylim: tuple[float, float] | None = None) -> bytes:
    """A small line plot with one marked line per series and a legend right of it.

    Args:
        references: grey horizontal lines with their labels (e.g. the chance level).
        ylim: fixed y range, so that plots of one bounded metric compare at a glance.
    """
    fig = Figure(figsize=size, dpi=DPI)
    ax = fig.subplots()
    _draw_lines(ax, series, _colours(series))
    _references(ax, references)
    _ticks(ax, xticklabels)
    if logx:
        ax.set_xscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(drawable(xlabel), fontsize=8, parse_math=False)
    ax.set_ylabel(drawable(ylabel), fontsize=8, parse_math=False)
    if series:
        # Outside the axes: inside, it hides the points near 1 that a stable map has.
        _legend(ax, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    with _missing_glyphs_allowed():  # lays out the text, so it meets the fonts too
        fig.tight_layout()
    return to_png(fig)


def line_panels(panels: Sequence[tuple[str, Sequence[Series], Sequence[str] | None]], *,
                xlabel: str, ylabel: str, styles: tuple[str, str] | None = None,
                references: Sequence[Reference] = ()) -> bytes:
    """Line plots side by side on one shared y axis, one legend for all (a colour per key).

    Args:
        panels: (title, lines, x tick labels or None) per panel.
        styles: legend names of the solid and of the dashed lines, e.g. ("cascading", "independent").
        references: grey horizontal lines drawn in every panel (e.g. chance and "unchanged").
    """
    fig = Figure(figsize=(3.3 * max(1, len(panels)) + 1.4, 3.0), dpi=DPI)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(panels)), sharey=True))
    every = [line for _, lines, _ in panels for line in lines]
    colours = _colours(every)
    for ax, (title, lines, ticks) in zip(axes, panels, strict=False):
        _draw_lines(ax, lines, colours)
        _references(ax, references)
        _ticks(ax, ticks)
        ax.set_title(drawable(title), fontsize=8, parse_math=False)
        ax.set_xlabel(drawable(xlabel), fontsize=8, parse_math=False)
    axes[0].set_ylabel(drawable(ylabel), fontsize=8, parse_math=False)
    handles = [Line2D([], [], color=colour, marker="o", markersize=3, label=drawable(key))
               for key, colour in colours.items()]
    if styles is not None and any(line.dashed for line in every):
        handles += [Line2D([], [], color="0.3", linestyle="-", label=styles[0]),
                    Line2D([], [], color="0.3", linestyle="--", label=styles[1])]
    handles += [Line2D([], [], color="0.45", linestyle=style, label=drawable(label))
                for (_, label), style in zip(references, REFERENCE_STYLES, strict=False)]
    if handles:
        _legend(axes[-1], handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    with _missing_glyphs_allowed():  # lays out the text, so it meets the fonts too
        fig.tight_layout()
    return to_png(fig)
