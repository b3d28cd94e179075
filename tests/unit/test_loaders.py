"""Loading labelled images from CSV manifests and folder-per-class layouts, bad inputs included."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import ExifTags, Image

from heatcheck.data import ImageError, ImageSet, LabelledImages
from heatcheck.data.loaders import load_labelled_images

REPEATABLE = settings(derandomize=True, database=None, deadline=None, max_examples=40)
SIZE = (8, 8)
CLASSES = ("cat", "dog", "bird")
COLUMNS = ["image", "label", "mask", "box", "annotation"]


def photo(height: int = 8, width: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def square(height: int = 8, width: int = 8, top: int = 2, side: int = 3) -> np.ndarray:
    """A uint8 mask, 255 on a ``side``-pixel square at (``top``, ``top``)."""
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[top : top + side, top : top + side] = 255
    return mask


def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def voc(*objects: tuple[str, int, int, int, int]) -> str:
    """A Pascal VOC annotation with one object per (name, xmin, ymin, xmax, ymax)."""
    boxes = "".join(f"<object><name>{n}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                    f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>" for n, x0, y0, x1, y1 in objects)
    return f"<annotation><size><width>8</width><height>8</height></size>{boxes}</annotation>"


def write_manifest(folder: Path, rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> Path:
    path = folder / "manifest.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_files(folder: Path) -> None:
    """Two good images with masks, and every kind of bad file the bad-row tests name."""
    save(folder / "a.png", photo(seed=1))
    save(folder / "a_mask.png", square())
    save(folder / "b.png", photo(seed=2))
    save(folder / "b_mask.png", square(top=4))
    save(folder / "c.png", photo(seed=3))
    save(folder / "small_mask.png", square(4, 4, top=1, side=2))
    save(folder / "empty_mask.png", np.zeros((8, 8), dtype=np.uint8))
    save(folder / "full_mask.png", np.full((8, 8), 255, dtype=np.uint8))
    (folder / "corrupt.png").write_bytes((folder / "a.png").read_bytes()[:60])
    (folder / "notes.png").write_text("not a picture, a text file renamed .png\n")
    (folder / "broken.xml").write_text("<annotation><object><name>cat</name>")
    (folder / "dog.xml").write_text(voc(("dog", 1, 1, 4, 4)))
    (folder / "entity.xml").write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "cat">]>'
                                       "<annotation><object><name>&e;</name></object></annotation>")


GOOD_ROWS = [{"image": "a.png", "label": "cat", "mask": "a_mask.png"},
             {"image": "b.png", "label": "1", "mask": "b_mask.png"}]

# One bad row per input problem: the cells of row 4 (after the two good rows) and the reason's start.
BAD_ROWS = {
    "missing image file": ({"image": "missing.png", "mask": "a_mask.png"}, "image file not found"),
    "corrupt image": ({"image": "corrupt.png", "mask": "a_mask.png"}, "cannot read image: "),
    "non-image file": ({"image": "notes.png", "mask": "a_mask.png"},
                       "image is not an image file (unknown format)"),
    "mask missing": ({"mask": "missing_mask.png"}, "mask file 'missing_mask.png' not found"),
    "mask size differs": ({"mask": "small_mask.png"},
                          "mask is 4x4 but the image is 8x8 (width x height)"),
    "mask empty": ({"mask": "empty_mask.png"}, "mask is empty: no object pixels"),
    "mask whole image": ({"mask": "full_mask.png"}, "mask covers the whole image: localisation cannot"),
    "label out of range": ({"label": "3"}, "label 3 out of range 0..2"),
    "negative label": ({"label": "-1"}, "label -1 out of range 0..2"),
    "unknown class name": ({"label": "zebra"}, "unknown class name 'zebra' (known: cat, dog, bird)"),
    "no label": ({"label": ""}, "no label given"),
    "duplicate id": ({"image": "./a.png"}, "duplicate id 'a.png': already used by {manifest}:row 2 (to list "
                     "one image more than once, give each row its own value in an 'id' column)"),
    "relative path escapes": ({"image": "../../etc/passwd"},
                              "image path '../../etc/passwd' points outside the manifest's folder"),
    "absolute path outside": ({"mask": "/etc/passwd"},
                              "mask path '/etc/passwd' points outside the manifest's folder"),
    "no mask, box or annotation": ({"mask": ""}, "no mask, box or annotation given"),
    "box not 4 numbers": ({"mask": "", "box": "1,2,3"}, "malformed box '1,2,3': expected 4 numbers"),
    "box not numbers": ({"mask": "", "box": "a,b,c,d"}, "malformed box 'a,b,c,d': expected 4 numbers"),
    "box x1 <= x0": ({"mask": "", "box": "5,1,2,6"}, "malformed box '5,1,2,6': x1 must exceed x0"),
    "box outside image": ({"mask": "", "box": "0,0,9,4"},
                          "box '0,0,9,4' lies outside the 8x8 image (width x height)"),
    "malformed XML": ({"mask": "", "annotation": "broken.xml"}, "annotation is not well-formed XML: "),
    "XML with DTD and entity": ({"mask": "", "annotation": "entity.xml"},
                                "annotation declares a DTD or entity: refused"),
    "XML without the class": ({"mask": "", "annotation": "dog.xml"},
                              "annotation has no object named 'cat'"),
}


@pytest.mark.parametrize(("cells", "reason"), list(BAD_ROWS.values()), ids=list(BAD_ROWS))
def test_bad_row_is_rejected_with_one_line_and_the_good_rows_load(
        tmp_path: Path, cells: dict[str, str], reason: str) -> None:
    write_files(tmp_path)
    bad = {"image": "c.png", "label": "cat", "mask": "a_mask.png"} | cells
    manifest = write_manifest(tmp_path, [*GOOD_ROWS, bad])
    reason = reason.format(manifest=manifest)
    lines: list[str] = []
    images = load_labelled_images(str(manifest), input_size=SIZE, class_names=CLASSES, log=lines.append)

    assert images.ids == ("a.png", "b.png")
    assert images.labels.tolist() == [0, 1]
    [rejected] = images.rejected
    assert rejected["reason"].startswith(reason)
    assert rejected["source"] == f"{manifest}:row 4"
    shown = f" ({bad['image']})" if bad["image"] else ""
    assert lines == [f"{manifest} row 4{shown}: {rejected['reason']}"]
    assert "\n" not in lines[0]
    assert "Traceback" not in lines[0]
    with pytest.raises(ImageError) as raised:
        load_labelled_images(str(manifest), input_size=SIZE, class_names=CLASSES, strict=True)
    assert str(raised.value) == lines[0]


def test_symlink_out_of_the_folder_is_a_bad_row(tmp_path: Path) -> None:
    inside = tmp_path / "set"
    write_files(inside)
    save(tmp_path / "outside.png", photo())
    (inside / "link.png").symlink_to(tmp_path / "outside.png")
    manifest = write_manifest(inside, [*GOOD_ROWS, {"image": "link.png", "label": "0", "mask": "a_mask.png"}])
    lines: list[str] = []
    images = load_labelled_images(str(manifest), input_size=SIZE, class_names=CLASSES, log=lines.append)
    assert len(images) == 2
    assert lines == [f"{manifest} row 4 (link.png): image path 'link.png' points outside "
                     "the manifest's folder"]


def test_unquoted_box_is_a_bad_row(tmp_path: Path) -> None:
    write_files(tmp_path)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("image,label,box\na.png,0,\"1,1,4,4\"\nb.png,0,1,1,4,4\n")
    lines: list[str] = []
    images = load_labelled_images(str(manifest), input_size=SIZE, log=lines.append)
    assert images.ids == ("a.png",)
    assert lines == [f"{manifest} row 3 (b.png): row has 3 more cell(s) than the header; "
                     'a box must be quoted: "x0,y0,x1,y1"']


def test_annotation_of_an_index_label_needs_class_names(tmp_path: Path) -> None:
    write_files(tmp_path)
    manifest = write_manifest(tmp_path, [GOOD_ROWS[0] | {"label": "0"},
                                         {"image": "b.png", "label": "1", "annotation": "dog.xml"}])
    lines: list[str] = []
    images = load_labelled_images(str(manifest), input_size=SIZE, log=lines.append)
    assert len(images) == 1
    assert lines == [f"{manifest} row 3 (b.png): annotation needs the class name of label 1: "
                     "pass class_names"]


def test_unknown_class_name_without_class_names_says_labels_must_be_indices(tmp_path: Path) -> None:
    write_files(tmp_path)
    manifest = write_manifest(tmp_path, [GOOD_ROWS[1], GOOD_ROWS[0] | {"image": "b.png", "id": "b2"}],
                              columns=[*COLUMNS, "id"])
    lines: list[str] = []
    load_labelled_images(str(manifest), input_size=SIZE, log=lines.append)
    assert lines == [f"{manifest} row 3 (b.png): unknown class name 'cat': no class names given, "
                     "so labels must be indices"]


def test_bad_rows_go_to_stderr_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_files(tmp_path)
    missing = {"image": "missing.png", "label": "0", "mask": "a_mask.png"}
    manifest = write_manifest(tmp_path, [*GOOD_ROWS, missing])
    load_labelled_images(str(manifest), input_size=SIZE, class_names=CLASSES)
    assert capsys.readouterr().err == f"{manifest} row 4 (missing.png): image file not found\n"


# --- whole-set problems ------------------------------------------------------------------------

def test_missing_manifest_raises(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"^.*nothere\.csv: manifest not found$"):
        load_labelled_images(str(tmp_path / "nothere.csv"), input_size=SIZE)


def test_neither_csv_nor_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"images\.txt: not found$"):
        load_labelled_images(str(tmp_path / "images.txt"), input_size=SIZE)


def test_missing_column_is_named_with_the_columns_present(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("image,mask\na.png,a_mask.png\n")
    with pytest.raises(ImageError) as raised:
        load_labelled_images(str(manifest), input_size=SIZE)
    assert str(raised.value) == f"{manifest}: missing column 'label'; columns present: 'image', 'mask'"


def test_missing_target_column_lists_the_alternatives(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("image,label\na.png,0\n")
    with pytest.raises(ImageError) as raised:
        load_labelled_images(str(manifest), input_size=SIZE)
    assert str(raised.value) == (f"{manifest}: missing column 'mask' (or 'box' or 'annotation'); "
                                 "columns present: 'image', 'label'")


@pytest.mark.parametrize(("text", "reason"), [("", "manifest is empty: no header row"),
                                              ("image,label,mask\n,,\n", "manifest is empty: no rows")])
def test_empty_manifest_raises(tmp_path: Path, text: str, reason: str) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(text)
    with pytest.raises(ImageError, match=reason):
        load_labelled_images(str(manifest), input_size=SIZE)


def test_no_usable_images_says_how_many_were_rejected(tmp_path: Path) -> None:
    write_files(tmp_path)
    manifest = write_manifest(tmp_path, [{"image": "missing.png", "label": "0", "mask": "a_mask.png"},
                                         {"image": "a.png", "label": "0", "mask": "empty_mask.png"}])
    with pytest.raises(ImageError) as raised:
        load_labelled_images(str(manifest), input_size=SIZE, log=lambda line: None)
    assert str(raised.value) == f"{manifest}: no usable images (2 rejected)"


def test_unreadable_csv_raises(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(b"image,label,mask\n\xff\xfe\x00bad")
    with pytest.raises(ImageError, match=r"manifest\.csv: unreadable CSV: 'utf-8' codec can't decode"):
        load_labelled_images(str(manifest), input_size=SIZE)


# --- happy paths -------------------------------------------------------------------------------

def test_csv_with_masks_loads_pixels_labels_and_masks_exactly(tmp_path: Path) -> None:
    write_files(tmp_path)
    manifest = write_manifest(tmp_path, [{"image": "a.png", "label": "0", "mask": "a_mask.png"},
                                         {"image": "b.png", "label": "2", "mask": "b_mask.png"}])
    image_set = load_labelled_images(str(manifest), input_size=SIZE, num_classes=3)
    assert isinstance(image_set, ImageSet)
    images = image_set.take()
    assert isinstance(images, LabelledImages)
    assert images.spec == str(manifest)
    assert images.ids == ("a.png", "b.png")
    assert images.images.dtype == np.uint8
    assert images.images.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(images.images[0], photo(seed=1))
    assert images.labels.dtype == np.int64
    assert images.labels.tolist() == [0, 2]
    assert images.masks.dtype == bool
    np.testing.assert_array_equal(images.masks[1], square(top=4) > 0)
    assert images.rejected == ()


def test_csv_with_class_names_ids_and_paths_in_subfolders(tmp_path: Path) -> None:
    save(tmp_path / "photos" / "x.png", photo())
    save(tmp_path / "masks" / "x.png", square())
    rows = [{"image": "photos/x.png", "label": "dog", "mask": "masks/x.png", "id": "first"},
            {"image": str(tmp_path / "photos" / "x.png"), "label": " bird ", "mask": "masks/x.png"}]
    manifest = write_manifest(tmp_path, rows, columns=["image", "label", "mask", "id"])
    images = load_labelled_images(str(manifest), input_size=SIZE, class_names=CLASSES)
    assert images.labels.tolist() == [1, 2]
    # An absolute path inside the manifest's folder is fine; its id is still relative.
    assert images.ids == ("first", "photos/x.png")
    assert images.class_names == CLASSES


def test_box_column_becomes_a_mask_at_the_original_size(tmp_path: Path) -> None:
    save(tmp_path / "a.png", photo())
    manifest = write_manifest(tmp_path, [{"image": "a.png", "label": "0", "box": "2,1,5,4"}],
                              columns=["image", "label", "box"])
    [mask] = load_labelled_images(str(manifest), input_size=SIZE).take().masks
    expected = np.zeros((8, 8), dtype=bool)
    expected[1:4, 2:5] = True
    np.testing.assert_array_equal(mask, expected)


def test_mask_column_wins_and_box_fills_in_where_masks_are_missing(tmp_path: Path) -> None:
    write_files(tmp_path)
    rows = [{"image": "a.png", "label": "0", "mask": "a_mask.png", "box": "0,0,1,1"},
            {"image": "b.png", "label": "0", "box": "0,0,1,1"}]
    manifest = write_manifest(tmp_path, rows)
    masks = load_labelled_images(str(manifest), input_size=SIZE).take().masks
    np.testing.assert_array_equal(masks[0], square() > 0)
    assert masks[1].sum() == 1
    assert masks[1][0, 0]


def test_voc_annotation_is_the_union_of_the_labelled_class_boxes(tmp_path: Path) -> None:
    save(tmp_path / "a.png", photo())
    # VOC counts pixels from 1, inclusive: xmin=3..xmax=4 is columns 2 and 3.
    (tmp_path / "a.xml").write_text(voc(("cat", 3, 2, 4, 3), ("dog", 1, 1, 8, 8), ("cat", 6, 6, 7, 7)))
    manifest = write_manifest(tmp_path, [{"image": "a.png", "label": "0", "annotation": "a.xml"}],
                              columns=["image", "label", "annotation"])
    [mask] = load_labelled_images(str(manifest), input_size=SIZE, class_names=CLASSES).take().masks
    expected = np.zeros((8, 8), dtype=bool)
    expected[1:3, 2:4] = True
    expected[5:7, 5:7] = True
    np.testing.assert_array_equal(mask, expected)


def test_folder_per_class_layout_with_class_name_folders(tmp_path: Path) -> None:
    save(tmp_path / "images" / "dog" / "d.png", photo(seed=3))
    save(tmp_path / "masks" / "dog" / "d.png", square())
    save(tmp_path / "images" / "cat" / "c.jpg", photo(seed=4))
    save(tmp_path / "masks" / "cat" / "c.png", square(top=1))  # a JPEG photo, a PNG mask
    (tmp_path / "images" / "cat" / "README.txt").write_text("not an image: skipped")
    images = load_labelled_images(str(tmp_path), input_size=SIZE).take()
    assert images.class_names == ("cat", "dog")  # sorted, as Keras numbers class folders
    assert images.ids == ("cat/c.jpg", "dog/d.png")
    assert images.labels.tolist() == [0, 1]
    np.testing.assert_array_equal(images.masks[0], square(top=1) > 0)
    assert images.rejected == ()


def test_folder_layout_with_index_folders_and_a_bad_file(tmp_path: Path) -> None:
    save(tmp_path / "images" / "0" / "a.png", photo())
    save(tmp_path / "masks" / "0" / "a.png", square())
    save(tmp_path / "images" / "1" / "b.png", photo())
    lines: list[str] = []
    images = load_labelled_images(str(tmp_path), input_size=SIZE, log=lines.append)
    assert images.labels.tolist() == [0]
    assert images.class_names == ()
    image = tmp_path / "images" / "1" / "b.png"
    reason = "mask file 'masks/1/b.png' not found"
    assert lines == [f"{image}: {reason}"]
    assert images.rejected == ({"id": "1/b.png", "source": str(image), "reason": reason},)


def test_folder_layout_without_masks_folder_raises(tmp_path: Path) -> None:
    save(tmp_path / "images" / "0" / "a.png", photo())
    with pytest.raises(ImageError, match="no masks/ folder"):
        load_labelled_images(str(tmp_path), input_size=SIZE)


def test_grayscale_palette_rgba_and_16_bit_images_become_rgb(tmp_path: Path) -> None:
    gray = photo()[:, :, 0]
    save(tmp_path / "gray.png", gray)
    save(tmp_path / "rgba.png", np.dstack([photo(), np.zeros((8, 8), dtype=np.uint8)]))
    Image.fromarray(photo()).quantize(4).save(tmp_path / "palette.png", transparency=0)
    save(tmp_path / "deep.png", gray.astype(np.uint16) * 257)
    save(tmp_path / "mask.png", square())
    rows = [{"image": name, "label": "0", "mask": "mask.png"}
            for name in ("gray.png", "rgba.png", "palette.png", "deep.png")]
    images = load_labelled_images(str(write_manifest(tmp_path, rows)), input_size=SIZE).take().images
    assert images.shape == (4, 8, 8, 3)
    np.testing.assert_array_equal(images[0], np.dstack([gray] * 3))
    np.testing.assert_array_equal(images[1], photo())  # alpha dropped, colours kept
    np.testing.assert_array_equal(images[3], images[0])  # 16-bit scaled, not clipped


def test_resizing_keeps_masks_boolean_and_nearest_neighbour(tmp_path: Path) -> None:
    blocks = np.random.default_rng(0).random((8, 8)) < 0.5
    blocks[0, 0], blocks[0, 1] = True, False  # neither empty nor full
    save(tmp_path / "big.png", photo(16, 16))
    save(tmp_path / "big_mask.png", np.kron(blocks, np.ones((2, 2))).astype(np.uint8) * 255)
    save(tmp_path / "small.png", photo(4, 4))
    save(tmp_path / "small_mask.png", blocks[::2, ::2].astype(np.uint8))
    rows = [{"image": "big.png", "label": "0", "mask": "big_mask.png"},
            {"image": "small.png", "label": "0", "mask": "small_mask.png"}]
    images = load_labelled_images(str(write_manifest(tmp_path, rows)), input_size=SIZE).take()
    assert images.images.shape == (2, 8, 8, 3)
    assert images.masks.dtype == bool
    np.testing.assert_array_equal(images.masks[0], blocks)  # 2×2 blocks shrink to their value
    np.testing.assert_array_equal(images.masks[1], np.kron(blocks[::2, ::2], np.ones((2, 2), dtype=bool)))


def test_mask_that_vanishes_when_resized_is_rejected(tmp_path: Path) -> None:
    write_files(tmp_path)
    save(tmp_path / "big.png", photo(64, 64))
    dot = np.zeros((64, 64), dtype=np.uint8)
    dot[1, 1] = 255
    save(tmp_path / "dot.png", dot)
    manifest = write_manifest(tmp_path, [GOOD_ROWS[1], {"image": "big.png", "label": "0", "mask": "dot.png"}])
    lines: list[str] = []
    load_labelled_images(str(manifest), input_size=SIZE, log=lines.append)
    assert lines == [f"{manifest} row 3 (big.png): mask is empty: no object pixels "
                     "(after resizing to 8x8, width x height)"]


# --- properties: malformed input gives an ImageSet or ImageError, nothing else ----------------

CELLS = st.one_of(
    st.sampled_from(["a.png", "a_mask.png", "a.xml", "..", "../a.png", "/etc/passwd", "/", ".", "", "0", "1",
                     "-1", "99", "cat", "1,1,4,4", "0,0,8,8", "4,4,1,1", "nan,0,1,1", "chat é", "a.png\n"]),
    st.integers(-3, 300).map(str),
    st.text(st.characters(codec="utf-8"), max_size=12),
)
# Per column, cells that are right or nearly right, so that rows get past their first check.
PLAUSIBLE = {"image": ["a.png", "./a.png", "a_mask.png", "a.xml"],
             "label": ["0", "1", "cat", "dog", "2"],
             "mask": ["a_mask.png", "a.png", "a.xml"],
             "box": ["1,1,4,4", "0,0,6,6", "nan,0,1,1", "1,1,4,inf"],
             "annotation": ["a.xml", "a_mask.png"],
             "id": ["x", "x", ""]}
COLUMN_NAMES = list(PLAUSIBLE)


@st.composite
def manifests(draw: st.DrawFn) -> list[list[str]]:
    """Header and rows: usually the columns a manifest needs (so rows get read), sometimes anything."""
    header = draw(st.lists(st.sampled_from(COLUMN_NAMES) | st.text(max_size=4), max_size=3))
    if draw(st.integers(0, 3)):
        needed = ["image", "label", draw(st.sampled_from(["mask", "box", "annotation"]))]
        header = draw(st.permutations(needed + header))
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        length = len(header)
        if not draw(st.integers(0, 4)):  # now and then a cell too many or too few
            length = max(0, length + draw(st.sampled_from([1, -1])))
        names = [*header, *[""] * length][:length]
        rows.append([draw(st.sampled_from(PLAUSIBLE.get(name, [""]))) if draw(st.integers(0, 3))
                     else draw(CELLS) for name in names])
    return [header, *rows]


def load_or_refuse(spec: Path) -> None:
    """Load ``spec`` and read it; any outcome but an ImageSet or ImageError fails the property."""
    lines: list[str] = []
    try:
        outcome: ImageSet | ImageError = load_labelled_images(
            str(spec), input_size=(4, 4), class_names=("cat", "dog"), log=lines.append)
    except ImageError as err:
        outcome = err
    if isinstance(outcome, ImageError):
        assert "\n" not in str(outcome)
        return
    read = outcome.take()  # every row that passed the check reads again the same way
    assert read.masks.dtype == bool
    assert read.images.shape[1:] == (4, 4, 3)
    assert len(lines) == len(outcome.rejected)
    assert not any("\n" in line for line in lines)


def write_good_files(folder: Path) -> None:
    save(folder / "a.png", photo())
    save(folder / "a_mask.png", square())
    (folder / "a.xml").write_text(voc(("cat", 2, 2, 5, 5)))


@REPEATABLE
@given(records=manifests())
def test_malformed_manifest_loads_or_raises_image_error(
        tmp_path_factory: pytest.TempPathFactory, records: list[list[str]]) -> None:
    folder = tmp_path_factory.mktemp("manifest")
    write_good_files(folder)
    with (folder / "m.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(records)
    load_or_refuse(folder / "m.csv")


@REPEATABLE
@given(data=st.binary(max_size=200))
def test_manifest_of_random_bytes_loads_or_raises_image_error(
        tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    folder = tmp_path_factory.mktemp("bytes")
    write_good_files(folder)
    (folder / "m.csv").write_bytes(b"image,label,mask\na.png,0,a_mask.png\n" + data)
    load_or_refuse(folder / "m.csv")


SIDES = st.sampled_from([6, 6, 6, 1, 5, 10])  # mostly the image's size, so the mask's pixels get read
SHAPES_2D = st.tuples(SIDES, SIDES)
MASK_ARRAYS = st.one_of(
    arrays(np.uint8, SHAPES_2D),
    arrays(np.uint8, st.tuples(SIDES, SIDES, st.sampled_from([2, 3, 4]))),
    arrays(np.bool_, SHAPES_2D),
    arrays(np.uint16, SHAPES_2D),
)


@REPEATABLE
@given(mask=MASK_ARRAYS | st.binary(max_size=100) | st.binary(max_size=100).map(b"\x89PNG\r\n\x1a\n".__add__))
def test_malformed_mask_loads_or_raises_image_error(
        tmp_path_factory: pytest.TempPathFactory, mask: np.ndarray | bytes) -> None:
    folder = tmp_path_factory.mktemp("mask")
    save(folder / "a.png", photo(6, 6))
    if isinstance(mask, bytes):
        (folder / "m.png").write_bytes(mask)
    else:
        save(folder / "m.png", mask)
    manifest = write_manifest(folder, [{"image": "a.png", "label": "0", "mask": "m.png"}],
                              columns=["image", "label", "mask"])
    load_or_refuse(manifest)


# Box corners around and across a 6×6 image's edges, so that every box check gets reached.
CORNER = st.one_of(st.integers(-2, 8).map(str), st.floats(-2, 8, allow_nan=False).map(lambda v: f"{v:.2f}"),
                   st.sampled_from(["nan", "inf", "-inf", "", "x", " 3 "]))
BOX_REASONS = ("malformed box", "box ", "mask is empty", "mask covers the whole image")


@REPEATABLE
@given(corners=st.lists(CORNER, min_size=3, max_size=5))
def test_any_box_is_a_mask_of_its_pixels_or_a_named_refusal(
        tmp_path_factory: pytest.TempPathFactory, corners: list[str]) -> None:
    folder = tmp_path_factory.mktemp("box")
    save(folder / "a.png", photo(6, 6))
    box = ",".join(corners)
    manifest = write_manifest(folder, [{"image": "a.png", "label": "0", "box": box}],
                              columns=["image", "label", "box"])
    lines: list[str] = []
    try:
        [mask] = load_labelled_images(str(manifest), input_size=(6, 6), log=lines.append).take().masks
    except ImageError:  # the only row was refused: its line says why
        assert len(lines) == 1
        assert lines[0].split(": ", 1)[1].startswith(BOX_REASONS), lines
        return
    x0, y0, x1, y1 = (float(c) for c in corners)  # a kept box is 4 numbers inside the image
    assert 0 <= x0 < x1 <= 6
    assert 0 <= y0 < y1 <= 6
    ys, xs = np.nonzero(mask)
    # Every pixel the box touches is object, and no other.
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (
        int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1)))
    assert mask.sum() == (xs.max() + 1 - xs.min()) * (ys.max() + 1 - ys.min())


EDGES = st.tuples(st.floats(0, 6, allow_nan=False) | st.integers(0, 6).map(float),
                  st.floats(0, 6, allow_nan=False) | st.integers(0, 6).map(float)).filter(
    lambda pair: pair[0] != pair[1]).map(sorted)


@REPEATABLE
@given(xs=EDGES, ys=EDGES)
def test_any_box_inside_the_image_is_exactly_the_pixels_it_touches(
        tmp_path_factory: pytest.TempPathFactory, xs: list[float], ys: list[float]) -> None:
    """Boxes that are well formed and inside the image: each becomes a mask, unless it covers it all."""
    folder = tmp_path_factory.mktemp("good-box")
    save(folder / "a.png", photo(6, 6))
    (x0, x1), (y0, y1) = xs, ys
    manifest = write_manifest(folder, [{"image": "a.png", "label": "0", "box": f"{x0},{y0},{x1},{y1}"}],
                              columns=["image", "label", "box"])
    touched = np.zeros((6, 6), bool)
    touched[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))] = True
    lines: list[str] = []
    if touched.all():
        with pytest.raises(ImageError):
            load_labelled_images(str(manifest), input_size=(6, 6), log=lines.append)
        assert "mask covers the whole image" in lines[0]
        return
    [mask] = load_labelled_images(str(manifest), input_size=(6, 6), log=lines.append).take().masks
    np.testing.assert_array_equal(mask, touched)
    assert lines == []


@REPEATABLE
@given(objects=st.lists(st.tuples(st.sampled_from(["cat", "dog", " cat", "bird"]),
                                  *[st.integers(-1, 10).map(str) | st.sampled_from(["", "x", "2.5"])] * 4),
                        max_size=3))
def test_any_voc_annotation_is_a_mask_or_a_named_refusal(
        tmp_path_factory: pytest.TempPathFactory, objects: list[tuple[str, ...]]) -> None:
    folder = tmp_path_factory.mktemp("voc")
    save(folder / "a.png", photo(8, 8))
    boxes = "".join(f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
                    f"<ymax>{d}</ymax></bndbox></object>" for n, a, b, c, d in objects)
    (folder / "a.xml").write_text(f"<annotation>{boxes}</annotation>")
    manifest = write_manifest(folder, [{"image": "a.png", "label": "cat", "annotation": "a.xml"}],
                              columns=["image", "label", "annotation"])
    lines: list[str] = []
    try:
        [mask] = load_labelled_images(str(manifest), input_size=SIZE, class_names=CLASSES,
                                      log=lines.append).take().masks
    except ImageError:
        assert len(lines) == 1
        assert lines[0].split(": ", 1)[1].startswith(
            ("annotation has no object", "annotation object", "malformed annotation box",
             "annotation box", "mask is empty", "mask covers the whole image")), lines
        return
    assert mask.dtype == bool
    assert 0 < mask.sum() < mask.size


# --- lazy reading ------------------------------------------------------------------------------

def test_loading_keeps_no_pixels_and_reading_asks_for_one_batch_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = []
    for i in range(10):
        save(tmp_path / f"{i}.png", photo(seed=i))
        rows.append({"image": f"{i}.png", "label": "0", "box": "1,1,5,5"})
    image_set = load_labelled_images(str(write_manifest(tmp_path, rows)), input_size=SIZE, batch_size=4)
    assert len(image_set) == 10
    assert not any(isinstance(v, np.ndarray) and v.ndim > 1 for v in vars(image_set).values())

    from heatcheck.data import loaders

    decoded: list[str] = []
    real = loaders._read_image
    monkeypatch.setattr(loaders, "_read_image",
                        lambda path, context: decoded.append(path.name) or real(path, context))
    sizes = []
    for rows_read, batch in image_set.batches():
        sizes.append(len(decoded))
        decoded.clear()
        np.testing.assert_array_equal(batch.images[0], photo(seed=rows_read.start))
    assert sizes == [4, 4, 2]  # each batch decodes its own images, when it is asked for
    view = image_set.subset(np.array([7, 2]))
    assert view.ids == ("7.png", "2.png")
    assert decoded == []  # a subset reads nothing
    np.testing.assert_array_equal(view.take().images[1], photo(seed=2))


def peak_bytes_reading(folder: Path, count: int) -> int:
    """Peak Python/numpy allocation while loading and reading ``count`` 64×64 images in batches of 8."""
    import tracemalloc

    rows = []
    for i in range(count):
        save(folder / f"{i}.png", photo(64, 64, seed=i))
        rows.append({"image": f"{i}.png", "label": "0", "box": "8,8,40,40"})
    manifest = write_manifest(folder, rows)
    tracemalloc.start()
    try:
        image_set = load_labelled_images(str(manifest), input_size=(64, 64), batch_size=8)
        assert sum(len(batch) for _, batch in image_set.batches()) == count
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_holds_a_batch_not_the_set(tmp_path: Path) -> None:
    """300 more images cost their rows' ids and cells (about 1 kB each), not their pixels (12 kB)."""
    peak_bytes_reading(tmp_path / "warm-up", 10)  # one-time allocations (imports, codecs) first
    small = peak_bytes_reading(tmp_path / "small", 100)
    large = peak_bytes_reading(tmp_path / "large", 400)
    added_pixels = 300 * 64 * 64 * 3  # 3.7 MB decoded
    assert large - small < added_pixels / 4, (small, large)


def test_a_file_changed_after_the_check_stops_with_its_row(tmp_path: Path) -> None:
    save(tmp_path / "a.png", photo())
    manifest = write_manifest(tmp_path, [{"image": "a.png", "label": "0", "box": "1,1,5,5"}])
    image_set = load_labelled_images(str(manifest), input_size=SIZE)
    (tmp_path / "a.png").unlink()
    with pytest.raises(ImageError) as raised:
        image_set.take()
    assert str(raised.value) == (f"{manifest} row 2 (a.png): image file not found "
                                 "(the file changed after it was checked)")


def test_a_file_replaced_by_another_valid_image_stops_too(tmp_path: Path) -> None:
    """Predictions and maps must come from the same pixels: a swapped photo is not read."""
    import os

    save(tmp_path / "a.png", photo(seed=1))
    manifest = write_manifest(tmp_path, [{"image": "a.png", "label": "0", "box": "1,1,5,5"}])
    image_set = load_labelled_images(str(manifest), input_size=SIZE)
    save(tmp_path / "a.png", photo(seed=2))
    os.utime(tmp_path / "a.png", ns=(1, 1))  # a modification time that cannot be the old one
    with pytest.raises(ImageError, match=r"row 2 \(a.png\): a file of this row was replaced or modified"):
        image_set.take()


# --- masks in every PNG mode, EXIF orientation, file names, large images (issue 12) ------------

def _opaque(grey: np.ndarray) -> np.ndarray:
    return np.full(grey.shape, 255, np.uint8)


def _palette_mask() -> Image.Image:
    indexed = Image.fromarray((square() > 0).astype(np.uint8), mode="L").convert("P")
    indexed.putpalette([0, 0, 0, 255, 255, 255])
    return indexed


MASK_MODES = {
    # an opaque black-and-white mask, with an alpha channel the editor added
    "RGBA opaque": lambda: Image.fromarray(np.dstack([square()] * 3 + [_opaque(square())]), "RGBA"),
    "LA opaque": lambda: Image.fromarray(np.dstack([square(), _opaque(square())]), "LA"),
    "RGB": lambda: Image.fromarray(np.dstack([square(), np.zeros_like(square()), square()])),
    "P palette": _palette_mask,
    "1-bit": lambda: Image.fromarray(square() > 0),
    "16-bit": lambda: Image.fromarray(square().astype(np.uint16) * 257),
    # the shape only in alpha: one colour everywhere, transparent around the object
    "RGBA alpha only": lambda: Image.fromarray(np.dstack([np.zeros((8, 8, 3), np.uint8), square()]), "RGBA"),
    "LA alpha only": lambda: Image.fromarray(np.dstack([_opaque(square()), square()]), "LA"),
    # a black shape painted on a transparent layer whose hidden pixels are white
    "RGBA black on white-transparent": lambda: Image.fromarray(
        np.dstack([np.where(square() > 0, 0, 255).astype(np.uint8)] * 3 + [square()]), "RGBA"),
}


@pytest.mark.parametrize("make", list(MASK_MODES.values()), ids=list(MASK_MODES))
def test_mask_is_read_from_its_colours_whatever_its_mode_and_alpha(tmp_path: Path, make) -> None:
    save(tmp_path / "a.png", photo())
    make().save(tmp_path / "mask.png")
    manifest = write_manifest(tmp_path, [{"image": "a.png", "label": "0", "mask": "mask.png"}])
    [mask] = load_labelled_images(str(manifest), input_size=SIZE, strict=True).take().masks
    np.testing.assert_array_equal(mask, square() > 0)


def test_black_opaque_rgba_mask_is_still_empty(tmp_path: Path) -> None:
    save(tmp_path / "a.png", photo())
    Image.new("RGBA", (8, 8), (0, 0, 0, 255)).save(tmp_path / "mask.png")
    manifest = write_manifest(tmp_path, [{"image": "a.png", "label": "0", "mask": "mask.png"}])
    with pytest.raises(ImageError, match="mask is empty"):
        load_labelled_images(str(manifest), input_size=SIZE, strict=True)


def _with_orientation(image: Image.Image, path: Path, orientation: int, **options: object) -> Path:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    image.save(path, exif=exif, **options)
    return path


def test_exif_orientation_turns_images_and_masks_alike(tmp_path: Path) -> None:
    """A camera held sideways stores the picture sideways with orientation 6 (turn 90° clockwise
    to show it); the mask is drawn on the picture as shown."""
    stored = np.zeros((8, 16, 3), np.uint8)  # 16 wide, 8 high as stored
    stored[:, :8] = (250, 0, 0)  # left half red: the top half once turned
    stored[:, 8:] = (0, 0, 250)
    _with_orientation(Image.fromarray(stored), tmp_path / "photo.jpg", 6, quality=95)
    shown_mask = np.zeros((16, 8), np.uint8)  # drawn on the shown picture: 8 wide, 16 high
    shown_mask[2:6, 2:6] = 255
    save(tmp_path / "mask.png", shown_mask)
    # the same mask stored sideways with its own orientation tag
    sideways = Image.fromarray(np.ascontiguousarray(np.rot90(shown_mask, 1)))  # as stored: turned back
    _with_orientation(sideways, tmp_path / "side.png", 6)
    rows = [{"image": "photo.jpg", "label": "0", "mask": "mask.png"},
            {"image": "photo.jpg", "label": "0", "mask": "side.png", "id": "sideways mask"}]
    manifest = write_manifest(tmp_path, rows, columns=["image", "label", "mask", "id"])
    images = load_labelled_images(str(manifest), input_size=(16, 8), strict=True).take()
    red, blue = images.images[0, :8].mean(axis=(0, 1)), images.images[0, 8:].mean(axis=(0, 1))
    assert red[0] > 200 > red[2]
    assert blue[2] > 200 > blue[0]
    np.testing.assert_array_equal(images.masks[0], shown_mask > 0)
    np.testing.assert_array_equal(images.masks[1], shown_mask > 0)


def test_file_names_that_are_not_utf8_give_unique_printable_ids(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path)
    for name in (b"caf\xe9.png", b"caf\xe8.png"):  # latin-1: café, cafè
        for sub in (b"images/cat/", b"masks/cat/"):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
            pixels = square() if sub.startswith(b"masks") else photo()
            save(Path(os.fsdecode(os.path.join(folder, sub, name))), pixels)
    os.makedirs(os.path.join(folder, b"images/dog"))
    save(Path(os.fsdecode(os.path.join(folder, b"images/dog/d\xf6g.png"))), photo())  # no mask: a bad row
    lines: list[str] = []
    images = load_labelled_images(str(tmp_path), input_size=SIZE, log=lines.append)
    assert images.ids == ("cat/caf\\xe8.png", "cat/caf\\xe9.png")
    for text in (*images.ids, *lines, *(v for r in images.rejected for v in r.values())):
        text.encode("utf-8")  # every id, line and results.json entry is valid text
    assert lines == [f"{tmp_path}/images/dog/d\\xf6g.png: mask file 'masks/dog/d\\xf6g.png' not found"]
    assert images.take().images.shape == (2, 8, 8, 3)


def test_duplicate_id_from_an_id_column_says_ids_must_differ(tmp_path: Path) -> None:
    write_files(tmp_path)
    rows = [{"image": "a.png", "label": "0", "mask": "a_mask.png", "id": "x"},
            {"image": "b.png", "label": "1", "mask": "b_mask.png", "id": "x"}]
    manifest = write_manifest(tmp_path, rows, columns=["image", "label", "mask", "id"])
    lines: list[str] = []
    load_labelled_images(str(manifest), input_size=SIZE, class_names=CLASSES, log=lines.append)
    assert lines == [f"{manifest} row 3 (b.png): duplicate id 'x': already used by {manifest}:row 2 "
                     "(each row needs its own value in the 'id' column)"]


def test_large_image_is_decoded_and_resized_without_full_size_copies(tmp_path: Path) -> None:
    """A 4000×4000 photo for a small model: no array of its size (48 MB as RGB, 384 MB as the
    floats a full-size resize works in) is made; before, an 8000×8000 PNG took 110 s per read."""
    import time
    import tracemalloc

    Image.new("RGB", (4000, 4000), (200, 100, 50)).save(tmp_path / "big.png")  # compresses to 50 kB
    Image.new("RGB", (4000, 4000), (200, 100, 50)).save(tmp_path / "big.jpg", quality=90)
    rows = [{"image": "big.png", "label": "0", "box": "100,100,2000,3000"},
            {"image": "big.jpg", "label": "0", "box": "100,100,2000,3000"}]
    manifest = write_manifest(tmp_path, rows)
    start = time.perf_counter()
    tracemalloc.start()
    try:
        images = load_labelled_images(str(manifest), input_size=(64, 64), strict=True).take()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4000 * 4000 * 1.5, peak  # the box's boolean mask at full size (16 MB) is the most
    assert time.perf_counter() - start < 30
    np.testing.assert_allclose(images.images.reshape(-1, 3).mean(axis=0), (200, 100, 50), atol=2)
    assert images.masks[:, 2:47, 2:31].all()
    assert not images.masks[:, 49:, 33:].any()


def test_a_large_image_is_decoded_once_per_run_and_again_when_it_changes(tmp_path: Path, monkeypatch) -> None:
    """Every pass over the set reads a large image (check, predictions, maps, deletion, gallery):
    its resized pixels are kept, so it is decoded once; a small one is simply decoded again."""
    from heatcheck.data import loaders

    Image.new("RGB", (1200, 1200), (200, 100, 50)).save(tmp_path / "big.png")
    save(tmp_path / "small.png", photo(64, 64))
    rows = [{"image": "big.png", "label": "0", "box": "100,100,900,900"},
            {"image": "small.png", "label": "0", "box": "1,1,40,40"}]
    manifest = write_manifest(tmp_path, rows)
    decoded: list[str] = []
    real = loaders._decode
    monkeypatch.setattr(loaders, "_decode", lambda path, *a: decoded.append(path.name) or real(path, *a))
    loaders._kept.clear()
    images = load_labelled_images(str(manifest), input_size=(64, 64), strict=True)
    for _ in range(3):
        images.take()
    assert decoded.count("big.png") == 1
    assert decoded.count("small.png") == 4
    Image.new("RGB", (1200, 1200), (10, 20, 30)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match="changed after it was checked"):  # a stamp check, not a stale copy
        images.take()


def test_image_over_the_pixel_limit_is_a_bad_row_naming_the_limit(tmp_path: Path) -> None:
    save(tmp_path / "a.png", photo(40, 40))
    manifest = write_manifest(tmp_path, [{"image": "a.png", "label": "0", "box": "1,1,5,5"}])
    with pytest.raises(ImageError) as raised:
        load_labelled_images(str(manifest), input_size=SIZE, strict=True, max_image_pixels=1000)
    assert str(raised.value) == (
        f"{manifest} row 2 (a.png): image is 40x40 = 1,600 pixels, over the limit of 1,000 "
        "(max_image_pixels in [tool.heatcheck] or --hc-max-image-pixels raises it, for files you trust)")
    assert len(load_labelled_images(str(manifest), input_size=SIZE, max_image_pixels=1600)) == 1


def test_image_over_pillows_own_limit_is_refused_by_ours_not_by_a_warning(tmp_path: Path) -> None:
    """Pillow warns (an error here: warnings are errors) above 89,478,485 pixels and refuses
    above twice that, whatever the user allows; heatcheck checks its own limit instead."""
    Image.new("1", (10_000, 9_000)).save(tmp_path / "huge.png")  # 90 Mpx, a few kB
    save(tmp_path / "a.png", photo())
    manifest = write_manifest(tmp_path, [{"image": "huge.png", "label": "0", "box": "1,1,5,5"},
                                         {"image": "a.png", "label": "0", "box": "1,1,5,5"}])
    lines: list[str] = []
    images = load_labelled_images(str(manifest), input_size=SIZE, log=lines.append)
    assert len(images) == 1
    assert lines == [f"{manifest} row 2 (huge.png): image is 10000x9000 = 90,000,000 pixels, over the limit "
                     "of 89,478,485 (max_image_pixels in [tool.heatcheck] or --hc-max-image-pixels "
                     "raises it, "
                     "for files you trust)"]
    with pytest.raises(ImageError, match="90,000,000 pixels, over the limit of 10"):
        load_labelled_images(str(manifest), input_size=SIZE, strict=True, max_image_pixels=10)
