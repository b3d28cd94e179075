"""The map pass over a lazily read set: maps and masks written batch by batch, read in chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from heatcheck.fixtures.audit_fixtures import gallery_rows

from heatcheck.data import ImageSet, LabelledImages
from heatcheck.explain import mapset
from heatcheck.explain.mapset import MapStorageError, compute_map_set
from heatcheck.metrics.pointing import energy_pointing_game, mask_fraction


class FakeProvider:
    """Maps that depend on each image alone (as the real engines' do): a method's offset plus
    the image's red channel."""

    def explain_many(self, methods, pixels, labels, *, normalise):
        return {m: pixels[..., 0].astype(np.float32) / 255 + k for k, m in enumerate(methods)}


def image_set(n: int = 10, batch_size: int = 4, reads: list[int] | None = None) -> ImageSet:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8)
    masks = np.zeros((n, 6, 6), bool)
    for i in range(n):
        masks[i, : 1 + i % 5, :3] = True
    labelled = LabelledImages("set", images, np.zeros(n, np.int64), masks, tuple(f"im{i}" for i in range(n)))
    memory = ImageSet.in_memory(labelled, batch_size)
    if reads is None:
        return memory

    def counting(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reads.append(len(rows))
        return memory.reader(rows)

    return ImageSet("set", memory.labels, memory.ids, counting, batch_size)


def test_maps_on_disk_equal_maps_in_memory_whatever_the_batch(tmp_path: Path) -> None:
    reads: list[int] = []
    on_disk = compute_map_set(FakeProvider(), image_set(batch_size=3, reads=reads), ("a", "b"), tmp_path)
    in_memory = compute_map_set(FakeProvider(), image_set(batch_size=10), ("a", "b"))
    assert reads == [3, 3, 3, 1]  # never more than a batch at once
    assert isinstance(on_disk["a"], np.memmap)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map-a.npy", "map-b.npy", "masks.npy"]
    for m in ("a", "b"):
        np.testing.assert_array_equal(on_disk[m], in_memory[m])
    np.testing.assert_array_equal(on_disk.masks, image_set().take().masks)


def test_per_image_scores_in_chunks_equal_scores_of_the_whole_set() -> None:
    maps = compute_map_set(FakeProvider(), image_set(batch_size=3), ("a",))
    whole = image_set().take()
    np.testing.assert_array_equal(maps.per_image("a", energy_pointing_game),
                                  energy_pointing_game(maps["a"][:], whole.masks))
    np.testing.assert_array_equal(maps.per_mask(mask_fraction), mask_fraction(whole.masks))


def test_rows_fill_images_outside_the_set_with_nan() -> None:
    maps = compute_map_set(FakeProvider(), image_set().subset(np.array([2, 5])), ("a",))
    rows = maps.rows(["im5", "im0", "im2"], "a")
    np.testing.assert_array_equal(rows[0], maps["a"][1])
    assert np.isnan(rows[1]).all()
    np.testing.assert_array_equal(rows[2], maps["a"][0])


def test_no_runnable_method_reads_no_image() -> None:
    reads: list[int] = []
    maps = compute_map_set(FakeProvider(), image_set(reads=reads), ())
    assert reads == []
    assert maps.maps == {}


def test_a_disk_too_small_for_the_maps_stops_before_the_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mapset.shutil, "disk_usage", lambda folder: type("Usage", (), {"free": 1000})())
    message = r"the maps need 0.0 MB in .* but only 0.0 MB are free: point TMPDIR"
    with pytest.raises(MapStorageError, match=message):
        compute_map_set(FakeProvider(), image_set(), ("a",), tmp_path)


def test_gallery_keeps_misclassified_images_first_in_set_order() -> None:
    correct = np.array([True, False, True, True, False, True])
    assert gallery_rows(correct, limit=3).tolist() == [0, 1, 4]
    assert gallery_rows(correct, limit=10).tolist() == [0, 1, 2, 3, 4, 5]
