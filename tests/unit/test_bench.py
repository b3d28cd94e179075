"""The bench generator: deterministic, exact masks, tags that mean what the docs say."""

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest
from heatcheck.fixtures.audit_fixtures import load_labelled_images
from heatcheck.fixtures.bench import (
    CLASS_NAMES,
    LARGE_FRACTION,
    OBJECT_HUES,
    SIZE,
    TAG_COLOURS,
    TAG_MARGIN,
    make_bench,
    make_image,
    tag_slice,
)
from skimage import measure
from skimage.color import rgb2hsv

from heatcheck.settings import PROFILES, Settings


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_same_seed_same_bytes():
    assert _digest(make_bench(12, seed=5)[:3]) == _digest(make_bench(12, seed=5)[:3])


def test_other_seed_other_images():
    assert _digest(make_bench(4, seed=5)[:1]) != _digest(make_bench(4, seed=6)[:1])


def test_bench_n_is_a_prefix_of_bench_m():
    small, large = make_bench(3, seed=0), make_bench(7, seed=0)
    assert np.array_equal(small[0], large[0][:3])
    assert small[3] == large[3][:3]


def test_shapes_dtypes_and_all_classes_present():
    images, labels, masks, ids = make_bench(40)
    assert images.shape == (40, SIZE, SIZE, 3)
    assert images.dtype == np.uint8
    assert masks.shape == (40, SIZE, SIZE)
    assert masks.dtype == bool
    assert set(labels) == set(range(len(CLASS_NAMES)))
    assert len(set(ids)) == 40


def test_masks_are_exact_objects_clear_of_the_tag():
    for i in range(20):
        item = make_image(0, i, tag="none")
        assert 0.01 < item.mask.mean() < 0.5
        assert not item.mask[:12, :12].any()  # the corner tag never overlaps the object
        inside = item.image[item.mask].astype(int)
        # the object is one flat colour: every mask pixel has it
        assert (inside == inside[0]).all()


@pytest.mark.parametrize("tag", ["label", "random", "none", "lie"])
def test_tag_modes(tag):
    told: list[bool] = []
    for i in range(12):
        item = make_image(0, i, tag=tag)
        corner = item.image[TAG_MARGIN + 2, TAG_MARGIN + 2]
        matches = [k for k, c in enumerate(TAG_COLOURS) if np.array_equal(c, corner)]
        if tag == "label":
            assert matches == [item.label]
        elif tag == "lie":
            assert matches
            assert matches[0] != item.label
        elif tag == "random":
            assert len(matches) == 1
            told.append(matches[0] == item.label)
        else:  # "none": no tag colour in the corner
            assert matches == []
    if tag == "random":
        assert not all(told)  # random colours, not the label's


def test_tag_mode_changes_only_the_tag():
    a, b = make_image(0, 3, tag="label"), make_image(0, 3, tag="none")
    differ = np.any(a.image != b.image, axis=-1)
    assert differ[:12, :12].any()
    assert not differ[12:, :].any()
    assert not differ[:, 12:].any()
    assert np.array_equal(a.mask, b.mask)
    assert a.label == b.label


# Digest of make_bench(8)'s images, labels and masks before the large layout was added: the
# small layout (the committed models' training data and the default audit set) must not move.
SMALL_BENCH_8 = "a53f714dfc54bdba2cb88e3655e60fa03ffcd3f63a3c6164f5a4b99cf1ea03d0"


def test_small_layout_is_unchanged():
    assert _digest(make_bench(8)[:3]) == SMALL_BENCH_8
    assert _digest(make_bench(8, layout="small")[:3]) == SMALL_BENCH_8
    assert make_bench(8)[3] == [f"bench-{i}" for i in range(8)]


@pytest.fixture(scope="module")
def large():
    return make_bench(240, seed=3, tag="none", layout="large")


def test_large_fractions_span_the_range_evenly(large):
    fractions = large[2].mean(axis=(1, 2))
    lo, hi = LARGE_FRACTION
    assert lo <= fractions.min()
    assert fractions.max() <= hi
    # Drawn uniformly: each quarter of the range holds about a quarter of the images.
    counts, _ = np.histogram(fractions, bins=4, range=(lo, hi))
    assert (counts >= 0.15 * len(fractions)).all(), counts
    for k in range(len(CLASS_NAMES)):  # and no class is confined to one end of it
        assert np.median(fractions[large[1] == k]) == pytest.approx((lo + hi) / 2, abs=0.06)


def test_large_objects_keep_clear_of_the_tag(large):
    masks = large[2]
    tag = tag_slice("large")
    assert not masks[:, tag, tag].any()
    assert not masks[:, : tag.stop + 2, : tag.stop + 2].any()  # a 2-pixel gap, at least


@pytest.mark.parametrize("tag", ["label", "lie"])
def test_large_tag_is_whole_and_says_what_it_should(tag):
    sl = tag_slice("large")
    for i in range(12):
        item = make_image(0, i, tag=tag, layout="large")
        patch = item.image[sl, sl].reshape(-1, 3)
        assert (patch == patch[0]).all()
        named = [k for k, c in enumerate(TAG_COLOURS) if np.array_equal(c, patch[0])]
        assert (named == [item.label]) == (tag == "label")
        assert len(named) == 1


def test_large_layout_is_deterministic_and_prefix_stable():
    a, b = make_bench(6, seed=5, layout="large"), make_bench(9, seed=5, layout="large")
    assert _digest(a[:3]) == _digest(make_bench(6, seed=5, layout="large")[:3])
    assert np.array_equal(a[0], b[0][:6])
    assert np.array_equal(a[2], b[2][:6])
    assert a[3] == [f"bench-large-{i}" for i in range(6)]
    assert _digest(a[:1]) != _digest(make_bench(6, seed=6, layout="large")[:1])


def test_large_tag_mode_changes_only_the_tag():
    a, b = make_image(0, 5, tag="label", layout="large"), make_image(0, 5, tag="none", layout="large")
    differ = np.any(a.image != b.image, axis=-1)
    sl = tag_slice("large")
    assert differ[sl, sl].all()
    differ[sl, sl] = False
    assert not differ.any()
    assert np.array_equal(a.mask, b.mask)


def test_large_objects_are_flat_single_shapes(large):
    images, _, masks, _ = large
    for image, mask in zip(images[:40], masks[:40], strict=True):
        inside = image[mask].astype(int)
        assert (inside == inside[0]).all()
        assert measure.label(mask, connectivity=1).max() == 1


def _first_line_width(mask: np.ndarray) -> int:
    """Pixels in the first row holding the mask, from the top or from the left (fewer wins)."""
    return min(int(m[np.flatnonzero(m.any(axis=1))[0]].sum()) for m in (mask, mask.T))


def test_large_shapes_stay_recognisable(large):
    """Circles stay round (not cut into squares by the frame), crosses keep their four notches,
    squares and triangles are convex, and a triangle's apex is in view."""
    _, labels, masks, _ = large
    for label, mask in zip(labels, masks, strict=True):
        props = measure.regionprops(mask.astype(np.uint8))[0]
        name = CLASS_NAMES[label]
        rows, cols = props.bbox[2] - props.bbox[0], props.bbox[3] - props.bbox[1]
        if name == "circle":
            assert abs(rows - cols) <= 1
            assert props.extent == pytest.approx(np.pi / 4, abs=0.035)  # area ÷ bounding box
        elif name == "cross":
            assert props.solidity < 0.93
        else:
            assert props.solidity > 0.95
        if name == "triangle":
            assert _first_line_width(mask) <= 3


@pytest.mark.parametrize(("spec", "count", "prefix"), [
    ("bench:3", 3, "bench-"), ("bench-large:3", 3, "bench-large-"), ("bench-large", 8, "bench-large-"),
])
def test_image_specs_name_the_layout(spec, count, prefix):
    model = SimpleNamespace(spec="bench:clean", input_shape=(SIZE, SIZE, 3), num_classes=len(CLASS_NAMES))
    images = load_labelled_images(Settings(images=spec, profile=PROFILES["smoke"]), model)
    assert images.spec == f"{spec.split(':')[0]}:{count}"
    assert list(images.ids) == [f"{prefix}{i}" for i in range(count)]
    layout = "large" if "large" in spec else "small"
    batch = images.take(np.arange(count))
    assert np.array_equal(batch.masks, make_bench(count, layout=layout)[2])


# Digest of make_bench(8, layout="large")'s images, labels and masks before the large layout's
# objects took their class's hue: with random fills it must not move (bench:large-shortcut was
# trained on it).
LARGE_RANDOM_FILL_8 = "b4776921b8cc164b87f84465aa7f859ae4c4ad2c476eefa0ea46c9820a868c0d"


def test_large_layout_with_random_fills_is_unchanged():
    assert _digest(make_bench(8, layout="large", colour="random")[:3]) == LARGE_RANDOM_FILL_8


def test_large_objects_are_filled_with_their_class_hue(large):
    images, labels, masks, _ = large
    for image, label, mask in zip(images, labels, masks, strict=True):
        hue = 360.0 * rgb2hsv(image[mask][:1].reshape(1, 1, 3) / 255.0)[0, 0, 0]
        off = (hue - OBJECT_HUES[label] + 180.0) % 360.0 - 180.0
        assert abs(off) <= 12.5, (label, hue)  # the jitter, plus rounding to 8-bit pixels


def test_fill_mode_changes_only_the_object():
    for i in range(6):
        a = make_image(0, i, layout="large", colour="class")
        b = make_image(0, i, layout="large", colour="random")
        assert a.label == b.label
        assert np.array_equal(a.mask, b.mask)
        differ = np.any(a.image != b.image, axis=-1)
        assert not differ[~a.mask].any()
        assert make_image(0, i).image.tobytes() == make_image(0, i, colour="random").image.tobytes()
