"""Labelled images from disk: a CSV manifest or a folder-per-class layout.

Every bad row is reported on one line and left out (or, with ``strict=True``, stops the load);
whole-set problems raise :class:`~heatcheck.data.ImageError`. Loading checks every row once
(read, decoded, resized, mask checked) and keeps only its id, label and its files' sizes and
modification times; the returned :class:`~heatcheck.data.ImageSet` reads the pixels again
batch by batch whenever an audit pass asks (label consistency, the map pass, faithfulness,
the samples), so memory holds one batch, not the set. Each read costs milliseconds per image,
far less than one map; checking up front keeps every bad-row line before the audits' output.
"""

from __future__ import annotations

import csv
import math
import os
import re
import sys
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from heatcheck.data import ImageError, ImageSet, mask_problem
from heatcheck.settings import MAX_IMAGE_PIXELS

TARGET_COLUMNS = ("mask", "box", "annotation")
# The suffixes Keras' image_dataset_from_directory reads; other files in a class folder
# (README.txt, .DS_Store) are not images and are skipped, as Keras does.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_INTEGER = re.compile(r"[+-]?[0-9]+")
_FORBIDDEN_XML = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
# EXIF orientations that turn the picture by 90 degrees: the file's width is the displayed height.
_SIDEWAYS = frozenset({5, 6, 7, 8})
# A large image is decoded at a reduced scale (JPEG) and shrunk by whole factors first (any
# format) down to this many times the input size, then resampled: time and memory follow the
# input size, not the file's, with no visible loss against a full anti-aliased resize.
_REDUCING_GAP = 2.0
_PILLOW_LIMIT = threading.Lock()
_T = TypeVar("_T")


class _RowProblem(Exception):
    """Why one row (one image) cannot be used; the message is the reason, without the row."""


@dataclass(frozen=True)
class _Row:
    """One labelled image as listed: where it came from and its cells, not yet read."""

    where: str  # the start of its error line, e.g. "photos/manifest.csv row 3 (cat.png)"
    source: str  # results.json's "source", e.g. "photos/manifest.csv:row 3"
    image_id: str
    cells: dict[str, str]
    extra_cells: int = 0


@dataclass(frozen=True)
class _Context:
    root: Path  # resolved folder that every path must stay inside
    root_label: str
    input_size: tuple[int, int]
    class_names: tuple[str, ...]
    num_classes: int | None
    max_pixels: int = MAX_IMAGE_PIXELS


def load_labelled_images(spec: str, *, input_size: tuple[int, int], class_names: tuple[str, ...] = (),
                         num_classes: int | None = None, strict: bool = False,
                         log: Callable[[str], None] | None = None, batch_size: int = 32,
                         max_image_pixels: int = MAX_IMAGE_PIXELS) -> ImageSet:
    """Load a CSV manifest (``*.csv``) or a folder holding ``images/<class>/`` and ``masks/<class>/``.

    Args:
        input_size: (height, width) every image and mask is resized to.
        class_names: names for label indices; a label may be an index or one of these names.
        num_classes: labels must lie in 0..num_classes-1 (default: len(class_names) if given).
        strict: raise ImageError on the first bad row instead of leaving it out.
        log: receives one line per bad row (default: written to stderr).
        batch_size: images read at once when the set is read.
        max_image_pixels: larger images (and masks) are bad rows: a small compressed file can
            decode to gigabytes (a decompression bomb).

    Returns:
        An ImageSet that reads uint8 RGB images (n, H, W, 3) and boolean masks (n, H, W) batch by
        batch; bad rows are listed in ``rejected``.
    """
    if len(input_size) != 2 or min(input_size) < 1:
        raise ValueError(f"input_size must be (height, width) with both ≥ 1, not {input_size!r}")
    path = Path(spec)
    if path.is_dir():
        rows, class_names = _folder_rows(spec, path, class_names)
        root_label = "the dataset folder"
    elif path.suffix.lower() == ".csv":
        rows = _manifest_rows(spec, path)
        path, root_label = path.parent, "the manifest's folder"
    else:
        what = "not found" if not path.exists() else "is neither a CSV manifest (*.csv) nor a folder"
        raise ImageError(f"{spec}: {what}")
    if num_classes is None and class_names:
        num_classes = len(class_names)
    context = _Context(path.resolve(), root_label, (int(input_size[0]), int(input_size[1])),
                       tuple(class_names), num_classes, max_image_pixels)
    return _check_rows(spec, rows, context, strict, log or _write_to_stderr, batch_size)


def _write_to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _escape_controls(text: str) -> str:
    """``text`` with control characters escaped, so that a cell holding a newline stays on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _check_rows(spec: str, rows: list[_Row], context: _Context, strict: bool,
                log: Callable[[str], None], batch_size: int) -> ImageSet:
    """Check every row by reading it; bad ones are logged and listed (or raise when ``strict``)."""
    kept: list[_Checked] = []
    used_by: dict[str, str] = {}
    rejected: list[dict[str, str]] = []
    for row in rows:
        try:
            checked = _check_row(row, context, used_by)
        except _RowProblem as problem:
            reason = _escape_controls(str(problem))
            line = _escape_controls(f"{row.where}: ") + reason
            if strict:
                raise ImageError(line) from None
            log(line)
            rejected.append({"id": row.image_id, "source": row.source, "reason": reason})
            continue
        kept.append(checked)
        used_by[row.image_id] = row.source
    if not kept:
        raise ImageError(_escape_controls(f"{spec}: no usable images ({len(rejected)} rejected)"))

    def read(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pairs = [_reread(kept[i], context) for i in positions]
        return np.stack([image for image, _ in pairs]), np.stack([mask for _, mask in pairs])

    return ImageSet(spec, np.array([c.label for c in kept], np.int64), tuple(c.row.image_id for c in kept),
                    read, batch_size, context.class_names, tuple(rejected))


@dataclass(frozen=True)
class _Checked:
    """A row that passed the check: its label and the size and modification time of its files."""

    row: _Row
    label: int
    files: tuple[tuple[int, int], ...]


def _check_row(row: _Row, context: _Context, used_by: dict[str, str]) -> _Checked:
    """The row, checked by reading it; raises _RowProblem with the first thing wrong."""
    if row.extra_cells:
        raise _RowProblem(f"row has {row.extra_cells} more cell(s) than the header; "
                          'a box must be quoted: "x0,y0,x1,y1"')
    # Only kept rows claim an id, so a good row after a bad one with the same id still loads.
    if row.image_id in used_by:
        fix = ("each row needs its own value in the 'id' column" if row.cells.get("id", "").strip() else
               "to list one image more than once, give each row its own value in an 'id' column")
        raise _RowProblem(f"duplicate id {row.image_id!r}: already used by {used_by[row.image_id]} ({fix})")
    label = _parse_label(row.cells.get("label", ""), context)
    _read_row(row, label, context)
    return _Checked(row, label, _file_stamps(row, context))


def _file_stamps(row: _Row, context: _Context) -> tuple[tuple[int, int], ...]:
    """(size, modification time) of the files the row reads: its image, then its mask or annotation."""
    files = ["image"]
    target = next((c for c in TARGET_COLUMNS if row.cells.get(c, "").strip()), None)
    if target in ("mask", "annotation"):
        files.append(target)
    stats = [_resolve(row.cells.get(what, ""), what, context).stat() for what in files]
    return tuple((st.st_size, st.st_mtime_ns) for st in stats)


def _reread(checked: _Checked, context: _Context) -> tuple[np.ndarray, np.ndarray]:
    """A checked row read again for the audits; a file changed since the check stops the run
    (a replaced file would give maps of other pixels than the predictions were made on)."""
    row = checked.row
    try:
        if _file_stamps(row, context) != checked.files:
            raise _RowProblem("a file of this row was replaced or modified")
        return _read_row(row, checked.label, context)
    except _RowProblem as problem:
        changed = f"{row.where}: {problem} (the file changed after it was checked)"
        raise ImageError(_escape_controls(changed)) from None


def _read_row(row: _Row, label: int, context: _Context) -> tuple[np.ndarray, np.ndarray]:
    """The row's image and mask, read, checked and resized; raises _RowProblem with the first thing wrong."""
    image, shape = _read_image(_resolve(row.cells.get("image", ""), "image", context), context)
    mask = _target_mask(row.cells, label, shape, context)
    problem = mask_problem(mask)
    if problem is not None:
        raise _RowProblem(problem)
    mask = _resize_mask(mask, context.input_size)
    problem = mask_problem(mask)
    if problem is not None:
        height, width = context.input_size
        raise _RowProblem(f"{problem} (after resizing to {width}x{height}, width x height)")
    return image, mask


# --- where rows come from ----------------------------------------------------------------------

def _manifest_rows(spec: str, path: Path) -> list[_Row]:
    """The rows of a CSV manifest, checked for the columns every row needs."""
    if not path.is_file():
        raise ImageError(f"{spec}: manifest not found")
    records = _read_csv(spec, path)
    if not records:
        raise ImageError(f"{spec}: manifest is empty: no header row")
    header = [name.strip().lower() for name in records[0]]
    missing = [f"'{name}'" for name in ("image", "label") if name not in header]
    if not set(TARGET_COLUMNS) & set(header):
        missing.append("'mask' (or 'box' or 'annotation')")
    if missing:
        present = ", ".join(repr(name) for name in header)
        message = f"{spec}: missing column {', '.join(missing)}; columns present: {present}"
        raise ImageError(_escape_controls(message))
    rows = [_manifest_row(spec, number, header, record, path.parent)
            for number, record in _numbered(records[1:])]
    if not rows:
        raise ImageError(f"{spec}: manifest is empty: no rows after the header")
    return rows


def _read_csv(spec: str, path: Path) -> list[list[str]]:
    try:
        # utf-8-sig: spreadsheets often save a byte-order mark that would otherwise stick to "image".
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ImageError(_escape_controls(f"{spec}: unreadable CSV: {err}")) from None


def _numbered(records: list[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Records with their spreadsheet row number (the header is row 1), blank ones skipped."""
    for index, record in enumerate(records):
        if any(cell.strip() for cell in record):  # spreadsheets export trailing empty rows
            yield index + 2, record


def _manifest_row(spec: str, number: int, header: list[str], record: list[str], folder: Path) -> _Row:
    cells = dict(zip(header, record, strict=False))
    image = cells.get("image", "").strip()
    image_id = cells.get("id", "").strip() or _relative_id(image, folder)
    where = f"{spec} row {number}" + (f" ({image})" if image else "")
    return _Row(where, f"{spec}:row {number}", image_id, cells, max(0, len(record) - len(header)))


def _relative_id(cell: str, folder: Path) -> str:
    """The image path relative to ``folder``, normalised as text only (the file may not exist)."""
    if not cell:
        return ""
    path = os.path.normpath(os.path.join(os.path.abspath(folder), cell))
    return Path(os.path.relpath(path, os.path.abspath(folder))).as_posix()


def _folder_rows(spec: str, root: Path, class_names: tuple[str, ...]) -> tuple[list[_Row], tuple[str, ...]]:
    """One row per image in ``images/<class>/``, its mask in ``masks/<class>/``; and the class names."""
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise ImageError(f"{spec}: no {sub}/ folder (expected images/<class>/ and masks/<class>/)")
    try:
        classes = sorted(p.name for p in (root / "images").iterdir()
                         if p.is_dir() and not p.name.startswith("."))
        rows = [_folder_row(root, name, file)
                for name in classes for file in _image_files(root / "images" / name)]
    except OSError as err:
        raise ImageError(_escape_controls(f"{spec}: cannot list the folder: {err}")) from None
    if not class_names and not all(_INTEGER.fullmatch(name) for name in classes):
        # Folder names that are not all indices are class names in sorted order, as Keras numbers them.
        class_names = tuple(displayed(name) for name in classes)
    if not rows:
        raise ImageError(f"{spec}: no images found in images/<class>/ folders")
    return rows, class_names


def _image_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _folder_row(root: Path, class_name: str, file: str) -> _Row:
    mask = Path("masks", class_name, file)
    # A JPEG photo usually has a PNG mask: accept either name.
    if not (root / mask).exists() and (root / mask.with_suffix(".png")).exists():
        mask = mask.with_suffix(".png")
    image = root / "images" / class_name / file
    cells = {"image": str(image.relative_to(root)), "label": displayed(class_name), "mask": str(mask)}
    # The paths open the files; what is shown (ids, lines, results.json) must be valid text.
    return _Row(displayed(str(image)), displayed(str(image)), displayed(f"{class_name}/{file}"), cells)


def displayed(name: str) -> str:
    """A file name as text that any UTF-8 writer can show: bytes that are not UTF-8 (a latin-1
    ``caf\\xe9.png``, which Python holds as lone surrogates) are written as ``\\xe9``. Two names
    that differ stay different (ids must be unique), and valid names are unchanged."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


# --- one row's parts ---------------------------------------------------------------------------

def _parse_label(cell: str, context: _Context) -> int:
    """A label cell as a class index: a class name first, else an integer index."""
    cell = cell.strip()
    if cell in context.class_names:
        return context.class_names.index(cell)
    if _INTEGER.fullmatch(cell):
        label = int(cell)
        if label < 0 or (context.num_classes is not None and label >= context.num_classes):
            upper = "" if context.num_classes is None else f"0..{context.num_classes - 1}"
            raise _RowProblem(f"label {label} out of range {upper or '(must be ≥ 0)'}")
        return label
    if not cell:
        raise _RowProblem("no label given")
    if not context.class_names:
        raise _RowProblem(f"unknown class name {cell!r}: no class names given, so labels must be indices")
    known = ", ".join(context.class_names[:5]) + (", …" if len(context.class_names) > 5 else "")
    raise _RowProblem(f"unknown class name {cell!r} (known: {known})")


def _resolve(cell: str, what: str, context: _Context) -> Path:
    """The file a path cell names, refused if it leads outside the root or is not a file."""
    cell = cell.strip()
    if not cell:
        raise _RowProblem(f"no {what} path given")
    if "\0" in cell:
        raise _RowProblem(f"{what} path contains a NUL character")
    try:
        path = (context.root / cell).resolve()  # resolve() follows symlinks: they may not escape either
        if not path.is_relative_to(context.root):
            raise _RowProblem(f"{what} path {cell!r} points outside {context.root_label}")
        if not path.exists():
            # The image's name starts the line already; a mask or annotation is named here.
            named = "" if what == "image" else f" '{displayed(cell)}'"
            raise _RowProblem(f"{what} file{named} not found")
        if not path.is_file():
            raise _RowProblem(f"{what} path is not a file")
    except (OSError, RuntimeError) as err:  # name too long, symlink loop: the row is bad, not the set
        raise _RowProblem(f"{what} path cannot be used: {err}") from None
    return path


@contextmanager
def _pillow_limit_off() -> Iterator[None]:
    """Pillow's own decompression-bomb check off while a header is read: it warns (an error
    where warnings are errors) or raises with its limit, not the user's; the caller checks
    ``max_pixels`` itself, before any pixel is decoded."""
    with _PILLOW_LIMIT:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _decode(path: Path, what: str, to_array: Callable[[Image.Image], _T], max_pixels: int) -> _T:
    """The image file decoded and turned into an array, or _RowProblem saying why it cannot be."""
    try:
        with _pillow_limit_off():
            opened = Image.open(path)  # reads the header only
        with opened:
            width, height = opened.size
            if width * height > max_pixels:
                raise _RowProblem(
                    f"{what} is {width}x{height} = {width * height:,} pixels, over the limit of "
                    f"{max_pixels:,} (max_image_pixels in [tool.heatcheck] or --hc-max-image-pixels raises "
                    f"it, for files you trust)")
            return to_array(opened)
    except _RowProblem:
        raise
    except UnidentifiedImageError:
        raise _RowProblem(f"{what} is not an image file (unknown format)") from None
    # Pillow's decoders raise OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
    # DecompressionBombError … on corrupt or hostile files: any of them means this file is bad.
    except Exception as err:
        raise _RowProblem(f"cannot read {what}: {type(err).__name__}: {err}") from None


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1: as stored; 2-8: flipped and/or turned)."""
    return int(image.getexif().get(ExifTags.Base.Orientation, 1) or 1)


def _displayed(image: Image.Image, orientation: int) -> Image.Image:
    """The decoded image as a viewer shows it: EXIF orientation applied (a photo taken with the
    camera turned is stored sideways; its mask is drawn on the picture as displayed)."""
    if orientation not in range(2, 9):  # 1: as stored; anything else is not an orientation
        return image
    return ImageOps.exif_transpose(image)


# A large image is read by every pass over the set (the check, predictions, maps, deletion,
# the gallery): its resized pixels are kept, keyed by the file's size and modification time, so
# it is decoded and resized once per run. Only images with many times the input's pixels are
# kept (small ones decode in milliseconds), at most _KEPT_BYTES of them, least recently used out.
_LARGE = 16  # decoded pixels per input pixel from which an image is kept
_KEPT_BYTES = 256 * 2**20
_kept: OrderedDict[tuple[object, ...], tuple[np.ndarray, tuple[int, int]]] = OrderedDict()


def _read_image(path: Path, context: _Context) -> tuple[np.ndarray, tuple[int, int]]:
    """The image as RGB uint8 pixels at the input size, and its displayed size (height, width)."""
    try:
        stat = path.stat()
    except OSError:  # missing or unreadable: _decode says so in the row's one line
        return _decode(path, "image", lambda image: _input_pixels(image, context.input_size),
                       context.max_pixels)
    key = (str(path), stat.st_size, stat.st_mtime_ns, context.input_size, context.max_pixels)
    if key in _kept:
        _kept.move_to_end(key)
        pixels, shape = _kept[key]
        return pixels.copy(), shape
    pixels, shape = _decode(path, "image", lambda image: _input_pixels(image, context.input_size),
                            context.max_pixels)
    if shape[0] * shape[1] >= _LARGE * pixels.shape[0] * pixels.shape[1]:
        _kept[key] = (pixels.copy(), shape)
        while sum(p.nbytes for p, _ in _kept.values()) > _KEPT_BYTES:
            _kept.popitem(last=False)
    return pixels, shape


def _input_pixels(image: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """RGB uint8 pixels (H, W, 3) at ``size`` (height, width) from any PIL mode and size, and the
    image's displayed (height, width) before resizing.

    Resized in Pillow, never at full size in floating point: a JPEG is decoded at the smallest
    scale (1/2, 1/4, 1/8) that keeps twice the input size, any image is then shrunk by whole
    factors (``reduce``) down to twice the input size, and the rest is done by Pillow's
    bilinear filter, whose support widens with the scale (anti-aliased).
    """
    orientation = _orientation(image)
    width, height = image.size
    if orientation in _SIDEWAYS:
        width, height = height, width
    target = (size[1], size[0])  # PIL sizes are (width, height)
    stored = target[::-1] if orientation in _SIDEWAYS else target
    image.draft(None, (int(stored[0] * _REDUCING_GAP), int(stored[1] * _REDUCING_GAP)))
    picture = _displayed(_eight_bit(image), orientation)
    if picture.size != target:
        picture = picture.resize(target, Image.Resampling.BILINEAR, reducing_gap=_REDUCING_GAP)
    pixels = np.asarray(picture, dtype=np.uint8)
    return (pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)), (height, width)


def _eight_bit(image: Image.Image) -> Image.Image:
    """The image in mode RGB or L (8 bits), without copying one that is already."""
    if image.mode.startswith("I;16"):
        # convert("L") would clip 16-bit values at 255; scale 0..65535 onto 0..255 instead
        # ((v + 128) // 257 is v / 257 rounded: 257 is odd, so there are no ties).
        deep = np.asarray(image).astype(np.uint32)
        return Image.fromarray(((deep + 128) // 257).astype(np.uint8))
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("P", "PA"):
        # Through RGBA: a palette with transparency warns when converted to RGB directly.
        image = image.convert("RGBA")
    # Alpha is dropped, not composited: Keras' own loaders decode with channels=3 the same way.
    return image.convert("RGB")


def _read_mask(path: Path, context: _Context) -> np.ndarray:
    return _decode(path, "mask", _mask_pixels, context.max_pixels)


def _mask_pixels(image: Image.Image) -> np.ndarray:
    """A boolean mask at the displayed size: object where the colour (or grey) is not black.

    Alpha decides only where it carries the shape: when it is not the same everywhere, pixels
    with alpha 0 are background, and if the visible pixels all have one colour (a shape painted
    in one colour on a transparent layer) alpha alone is the mask. An opaque black-and-white
    mask saved as RGBA or LA is read from its colours; a palette mask by its colours too.
    """
    image = _displayed(image, _orientation(image))
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    bands = image.getbands()
    alpha = None
    if bands[-1] in ("A", "a"):
        alpha = np.asarray(image.getchannel(bands[-1]))
        image = image.convert("RGB" if len(bands) == 4 else "L")
    elif image.mode not in ("1", "L", "RGB") and not image.mode.startswith(("I", "F")):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV: black is what shows as black
    colour = np.asarray(image)
    if colour.ndim == 2:
        colour = colour[:, :, None]
    painted = colour.any(axis=-1)
    if alpha is None or (alpha == alpha.flat[0]).all():
        return np.asarray(painted, dtype=bool)
    visible = alpha != 0
    if not visible.any():
        return visible
    shown = colour[visible]
    if (shown == shown[0]).all():
        return visible
    return visible & painted


def _target_mask(cells: dict[str, str], label: int, shape: tuple[int, int], context: _Context) -> np.ndarray:
    """The object mask at the image's original size, from the first of mask, box, annotation given."""
    if cells.get("mask", "").strip():
        mask = _read_mask(_resolve(cells["mask"], "mask", context), context)
        if mask.shape != shape:
            raise _RowProblem(f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                              f"{shape[1]}x{shape[0]} (width x height)")
        return mask
    if cells.get("box", "").strip():
        return _box_mask(_parse_box(cells["box"]), shape, f"box {cells['box'].strip()!r}")
    if cells.get("annotation", "").strip():
        return _annotation_mask(_resolve(cells["annotation"], "annotation", context), label, shape, context)
    raise _RowProblem("no mask, box or annotation given")


def _parse_box(cell: str) -> tuple[float, ...]:
    parts = cell.strip().split(",")
    try:
        box = tuple(float(part) for part in parts)
    except ValueError:
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise _RowProblem(f"malformed box {cell.strip()!r}: expected 4 numbers x0,y0,x1,y1")
    return box


def _box_mask(box: tuple[float, ...], shape: tuple[int, int], name: str, slack: float = 0) -> np.ndarray:
    """A mask True inside ``box`` (x0, y0, x1, y1: pixel edges); ``slack`` pixels over an edge are clipped."""
    x0, y0, x1, y1 = box
    height, width = shape
    if x1 <= x0 or y1 <= y0:
        raise _RowProblem(f"malformed {name}: x1 must exceed x0 and y1 must exceed y0")
    if x0 < -slack or y0 < -slack or x1 > width + slack or y1 > height + slack:
        raise _RowProblem(f"{name} lies outside the {width}x{height} image (width x height)")
    mask = np.zeros(shape, dtype=bool)
    rows = slice(max(0, math.floor(y0)), min(height, math.ceil(y1)))
    mask[rows, max(0, math.floor(x0)):min(width, math.ceil(x1))] = True
    return mask


def _annotation_mask(path: Path, label: int, shape: tuple[int, int], context: _Context) -> np.ndarray:
    """The union of the boxes of every object of the labelled class in a Pascal VOC / ImageNet XML file."""
    if label >= len(context.class_names):
        raise _RowProblem(f"annotation needs the class name of label {label}: pass class_names")
    wanted = context.class_names[label]
    objects = _parse_annotation(path).iter("object")
    boxes = [obj.find("bndbox") for obj in objects if (obj.findtext("name") or "").strip() == wanted]
    if not boxes:
        raise _RowProblem(f"annotation has no object named {wanted!r}")
    mask = np.zeros(shape, dtype=bool)
    for bndbox in boxes:
        # VOC counts pixels from 1, inclusive at both ends: pixel edges are (min - 1, max).
        xmin, ymin, xmax, ymax = _voc_box(bndbox, wanted)
        # ImageNet's boxes count from 0, so one pixel over an edge is an off-by-one, clipped, not an error.
        mask |= _box_mask((xmin - 1, ymin - 1, xmax, ymax), shape, f"annotation box of {wanted!r}", slack=1)
    return mask


def _parse_annotation(path: Path) -> ET.Element:
    """The XML root, refusing DTDs and entities (billion laughs, external entities) outright."""
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise _RowProblem(f"cannot read annotation as UTF-8 text: {err}") from None
    if _FORBIDDEN_XML.search(text):
        raise _RowProblem("annotation declares a DTD or entity: refused")
    try:
        return ET.fromstring(data, parser=ET.XMLParser())
    except ET.ParseError as err:
        raise _RowProblem(f"annotation is not well-formed XML: {err}") from None


def _voc_box(bndbox: ET.Element | None, name: str) -> tuple[float, ...]:
    values: list[float] = []
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        try:
            values.append(float("" if bndbox is None else bndbox.findtext(tag) or ""))
        except ValueError:
            break
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise _RowProblem(f"annotation object {name!r} has no valid bndbox (xmin, ymin, xmax, ymax)")
    return tuple(values)


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The mask at ``size`` (height, width) by nearest neighbour, so that it stays a clean mask."""
    if mask.shape == size:
        return mask
    resized = Image.fromarray(mask).resize((size[1], size[0]), Image.Resampling.NEAREST)
    return np.asarray(resized, dtype=bool)
