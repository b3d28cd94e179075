"""The bench generator: deterministic, exact masks, tags that mean what the docs say."""

import hashlib

import numpy as np
import pytest

from fixtures.bench import CLASS_NAMES, SIZE, TAG_COLOURS, TAG_MARGIN, make_bench, make_image


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
