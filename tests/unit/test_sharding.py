"""Which images a shard audits (heatcheck.data.sharding) and the per-image work that must not depend on
how the set is split: the localisation scores and controls, the deletion tie-breaks."""

from __future__ import annotations

import numpy as np
import pytest

from heatcheck.checks.localisation import METRICS, score_localisation
from heatcheck.data import ImageSet, LabelledImages
from heatcheck.data.sharding import (
    SAMPLE_FAMILIES,
    Shard,
    ShardError,
    block,
    block_view,
    offset_of,
    prediction_rows,
    runs_family,
    whole_of,
)
from heatcheck.explain.mapset import MapSet
from heatcheck.report.merge import combine
from heatcheck.settings import PROFILES, Settings


@pytest.mark.parametrize(("total", "batch", "count"), [(12, 4, 3), (12, 4, 2), (10, 3, 4), (12, 32, 3),
                                                     (1, 1, 1), (100, 7, 8), (5, 1, 5)])
def test_blocks_cover_the_set_once_in_order_on_whole_batches(total: int, batch: int, count: int) -> None:
    rows = [block(total, batch, Shard(i, count)) for i in range(count)]
    assert [r.start for r in rows[1:]] == [r.stop for r in rows[:-1]]
    assert rows[0].start == 0
    assert rows[-1].stop == total
    for r in rows:
        assert r.start % batch == 0
        assert (r.stop % batch == 0 or r.stop == total)
    sizes = [r.stop - r.start for r in rows]
    batches = -(-total // batch)
    if batches >= count:  # batches dealt evenly: no shard idle while another has two more
        assert max(sizes) - min(sizes) <= 2 * batch


def test_a_set_of_fewer_batches_than_shards_leaves_some_shards_empty() -> None:
    rows = [block(12, 32, Shard(i, 3)) for i in range(3)]
    assert sorted(r.stop - r.start for r in rows) == [0, 0, 12]


@pytest.mark.parametrize("text", ["3/3", "-1/3", "a/b", "1", "0/0", "1/3/4"])
def test_a_shard_outside_0_to_n_minus_1_is_refused_with_the_fix(text: str) -> None:
    with pytest.raises(ShardError, match="--hc-shard"):
        Shard.parse(text)


def test_shards_parse_and_split_over_workers() -> None:
    assert Shard.parse(" 1 / 3 ") == Shard(1, 3)
    assert str(Shard(1, 3)) == "1/3"
    # worker 1 of 2 inside shard 1/3 is shard 3/6 of the whole set
    assert Shard(1, 3).split(2, 1) == Shard(3, 6)
    splits = {Shard(i, 3).split(2, w) for i in range(3) for w in range(2)}
    assert splits == {Shard(k, 6) for k in range(6)}


def test_each_sample_audit_runs_on_exactly_one_shard() -> None:
    for count in (1, 2, 3, 5):
        for family in SAMPLE_FAMILIES:
            assert sum(runs_family(Shard(i, count), family) for i in range(count)) == 1
        assert all(runs_family(Shard(i, count), "localisation") for i in range(count))
    # with two shards or more the two sample audits do not share one
    assert not runs_family(Shard(0, 2), "stability")
    assert runs_family(Shard(1, 2), "stability")


def test_a_test_that_runs_once_has_exactly_one_owner() -> None:
    for name in ("tests/a.py::t", "tests/b.py::u[1]", "x"):
        assert sum(Shard(i, 4).owns(name) for i in range(4)) == 1


def test_a_shard_predicts_its_block_and_what_its_audits_read() -> None:
    settings = Settings(profile=PROFILES["smoke"], batch_size=4)  # samples: 4 sanity, 2 stability
    assert [r.tolist() for r in prediction_rows(12, settings, None)] == [list(range(12))]
    # shard 2/3 runs no sample audit: its block only
    assert [r.tolist() for r in prediction_rows(12, settings, Shard(2, 3))] == [[8, 9, 10, 11]]
    # shard 1/3 runs stability, which reads the model's class of the sampled images
    assert [r.tolist() for r in prediction_rows(12, settings, Shard(1, 3))] == [[4, 5, 6, 7], [0, 1, 2, 3]]
    # --hc-only-correct: which images are audited depends on every prediction
    strict = Settings(profile=PROFILES["smoke"], batch_size=4, only_correct=True)
    rows = prediction_rows(12, strict, Shard(2, 3))
    assert rows[0].tolist() == [8, 9, 10, 11]
    assert sorted(np.concatenate(rows).tolist()) == list(range(12))


def _set(n: int = 13, size: int = 16, batch: int = 3) -> tuple[ImageSet, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        y, x = rng.integers(0, size - 5, 2)
        masks[i, y:y + 5, x:x + 4] = True
    images = rng.integers(0, 255, (n, size, size, 3)).astype(np.uint8)
    maps = rng.random((n, size, size)).astype(np.float32)
    maps[masks] += 0.5  # informative maps, so that the shuffled control differs from the method
    labelled = LabelledImages("t", images, np.zeros(n, np.int64), masks, tuple(f"i{i}" for i in range(n)))
    return ImageSet.in_memory(labelled, batch), masks, maps


def test_a_block_knows_its_place_in_the_whole_set() -> None:
    images, _, _ = _set()
    view = block_view(images, slice(6, 9))
    assert offset_of(view) == 6
    assert whole_of(view) is images
    assert view.ids == images.ids[6:9]
    assert offset_of(images) == 0
    assert whole_of(images) is images


@pytest.mark.parametrize("count", [2, 3, 5])
def test_localisation_scores_of_blocks_put_together_are_the_whole_sets(count: int) -> None:
    images, masks, maps = _set()
    whole = score_localisation(MapSet(images.ids, masks, {"m": maps}, 3), images, ("m",), seed=4, tolerance=1)
    parts = []
    for i in range(count):
        rows = block(len(images), images.batch_size, Shard(i, count))
        if rows.start == rows.stop:
            continue
        view = block_view(images, rows)
        block_maps = MapSet(view.ids, masks[rows], {"m": maps[rows]}, 3)
        parts.append(score_localisation(block_maps, view, ("m",), seed=4, tolerance=1))
    assert any(len(p.shuffled_positions) for p in parts)  # maps paired across blocks
    merged = combine(parts, "localisation_run")
    merged.settle_shuffled()
    assert merged.ids == whole.ids
    np.testing.assert_array_equal(merged.fractions, whole.fractions)
    for metric in METRICS:
        np.testing.assert_array_equal(merged.raw[metric]["m"], whole.raw[metric]["m"])
        for name, values in whole.controls(metric, "m").items():
            np.testing.assert_array_equal(merged.controls(metric, "m")[name], values, err_msg=name)
    assert np.isfinite(merged.shuffled_raw["pointing_game"]["m"]).all()
