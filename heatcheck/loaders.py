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
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from skimage.transform import resize

from heatcheck.data import ImageError, ImageSet, mask_problem

TARGET_COLUMNS = ("mask", "box", "annotation")
# The suffixes Keras' image_dataset_from_directory reads; other files in a class folder
# (README.txt, .DS_Store) are not images and are skipped, as Keras does.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_INTEGER = re.compile(r"[+-]?[0-9]+")
_FORBIDDEN_XML = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


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


def load_labelled_images(spec: str, *, input_size: tuple[int, int], class_names: tuple[str, ...] = (),
                         num_classes: int | None = None, strict: bool = False,
                         log: Callable[[str], None] | None = None, batch_size: int = 32) -> ImageSet:
    """Load a CSV manifest (``*.csv``) or a folder holding ``images/<class>/`` and ``masks/<class>/``.

    Args:
        input_size: (height, width) every image and mask is resized to.
        class_names: names for label indices; a label may be an index or one of these names.
        num_classes: labels must lie in 0..num_classes-1 (default: len(class_names) if given).
        strict: raise ImageError on the first bad row instead of leaving it out.
        log: receives one line per bad row (default: written to stderr).
        batch_size: images read at once when the set is read.

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
                       tuple(class_names), num_classes)
    return _check_rows(spec, rows, context, strict, log or _write_to_stderr, batch_size)


def _write_to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _one_line(text: str) -> str:
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
            reason = _one_line(str(problem))
            line = _one_line(f"{row.where}: ") + reason
            if strict:
                raise ImageError(line) from None
            log(line)
            rejected.append({"id": row.image_id, "source": row.source, "reason": reason})
            continue
        kept.append(checked)
        used_by[row.image_id] = row.source
    if not kept:
        raise ImageError(_one_line(f"{spec}: no usable images ({len(rejected)} rejected)"))

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
        raise _RowProblem(f"duplicate id {row.image_id!r}: already used by {used_by[row.image_id]}")
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
        raise ImageError(_one_line(changed)) from None


def _read_row(row: _Row, label: int, context: _Context) -> tuple[np.ndarray, np.ndarray]:
    """The row's image and mask, read, checked and resized; raises _RowProblem with the first thing wrong."""
    image = _read_image(_resolve(row.cells.get("image", ""), "image", context))
    mask = _target_mask(row.cells, label, image.shape[:2], context)
    problem = mask_problem(mask)
    if problem is not None:
        raise _RowProblem(problem)
    image, mask = _resize(image, mask, context.input_size)
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
        raise ImageError(_one_line(message))
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
        raise ImageError(_one_line(f"{spec}: unreadable CSV: {err}")) from None


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
        raise ImageError(_one_line(f"{spec}: cannot list the folder: {err}")) from None
    if not class_names and not all(_INTEGER.fullmatch(name) for name in classes):
        # Folder names that are not all indices are class names in sorted order, as Keras numbers them.
        class_names = tuple(classes)
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
    cells = {"image": str(image.relative_to(root)), "label": class_name, "mask": str(mask)}
    return _Row(str(image), str(image), f"{class_name}/{file}", cells)


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
            raise _RowProblem(f"{what} file not found")
        if not path.is_file():
            raise _RowProblem(f"{what} path is not a file")
    except (OSError, RuntimeError) as err:  # name too long, symlink loop: the row is bad, not the set
        raise _RowProblem(f"{what} path cannot be used: {err}") from None
    return path


def _decode(path: Path, what: str, to_array: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    """The image file decoded and turned into an array, or _RowProblem saying why it cannot be."""
    try:
        with Image.open(path) as opened:
            opened.load()
            return to_array(opened)
    except UnidentifiedImageError:
        raise _RowProblem(f"{what} is not an image file (unknown format)") from None
    # Pillow's decoders raise OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error,
    # DecompressionBombError … on corrupt or hostile files: any of them means this file is bad.
    except Exception as err:
        raise _RowProblem(f"cannot read {what}: {type(err).__name__}: {err}") from None


def _read_image(path: Path) -> np.ndarray:
    return _decode(path, "image", _rgb_pixels)


def _rgb_pixels(image: Image.Image) -> np.ndarray:
    """RGB uint8 pixels (h, w, 3) from any PIL mode."""
    if image.mode.startswith("I;16"):
        # convert("RGB") would clip 16-bit values at 255; scale 0..65535 onto 0..255 instead.
        gray = np.rint(np.asarray(image, dtype=np.float64) / 257).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in ("P", "PA"):
        # Through RGBA: a palette with transparency warns when converted to RGB directly.
        image = image.convert("RGBA")
    # Alpha is dropped, not composited: Keras' own loaders decode with channels=3 the same way.
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _read_mask(path: Path) -> np.ndarray:
    return _decode(path, "mask", _mask_pixels)


def _mask_pixels(image: Image.Image) -> np.ndarray:
    """A boolean mask: any non-zero channel is object (grey, RGB, palette and alpha masks alike)."""
    pixels = np.asarray(image)
    return np.asarray(pixels.any(axis=-1) if pixels.ndim == 3 else pixels != 0, dtype=bool)


def _target_mask(cells: dict[str, str], label: int, shape: tuple[int, int], context: _Context) -> np.ndarray:
    """The object mask at the image's original size, from the first of mask, box, annotation given."""
    if cells.get("mask", "").strip():
        mask = _read_mask(_resolve(cells["mask"], "mask", context))
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


def _resize(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Image resized with anti-aliasing; mask with nearest neighbour so that it stays a clean mask."""
    if image.shape[:2] == size:
        return image, mask
    pixels = resize(image, size, order=1, anti_aliasing=True, preserve_range=True)
    image = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    mask = resize(mask, size, order=0, anti_aliasing=False, preserve_range=True).astype(bool)
    return image, mask
