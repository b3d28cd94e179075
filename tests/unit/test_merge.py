"""Shards' partial results (heatcheck.report.partial) and merging them
(heatcheck.report.merge): files read back exactly, shards that do not belong together refused
with one line, stores put together."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heatcheck.checks.localisation import LocalisationRun
from heatcheck.data.sharding import Shard
from heatcheck.report import schema
from heatcheck.report.gallery_choice import gallery_rows, merge_galleries
from heatcheck.report.merge import MergeError, check_compatible, main, merge
from heatcheck.report.partial import (
    AuditItem,
    Partial,
    find_partials,
    pack,
    read_partial,
    settings_from_json,
    settings_to_json,
    unpack,
    write_partial,
)
from heatcheck.settings import PROFILES, Settings, build_thresholds

SETTINGS = Settings(
    profile=PROFILES["smoke"],
    seed=3,
    methods=("saliency", "gradcam"),
    thresholds=build_thresholds({"map_ssim": {"default": 0.7, "saliency": 0.5}}, ["map_ssim.gradcam=0.6"]),
)
SANITY = AuditItem(
    "audits/test_sanity.py::test_cascading[ssim-saliency]",
    "/x/audits/test_sanity.py",
    "test_cascading",
    {"measure": "ssim", "method": "saliency"},
    "sanity",
    "cascading_ssim",
    "saliency",
)

LABELS = "audits/test_labels.py::test_label_consistency"


def _partial(index: int, count: int = 2, **changes: Any) -> Partial:
    ids = [f"img-{i}" for i in range(4 * index, 4 * index + 4)]
    results = {
        "status": "complete",
        "not_run": [],
        "model": {"spec": "bench:clean", "sha256": "a" * 64},
        "images": {
            "spec": "bench:8",
            "count": 8,
            "rejected": [],
            "audited": 8,
            "items": [{"id": i, "label": 0, "correct": k != 1} for k, i in enumerate(ids)],
        },
        "environment": {"wall_s": 10.0 + index, "started_utc": f"2026-01-0{index + 1}T00:00:00Z"},
        "checks": [],
        "errors": [],
        "passes": {"run": 5 + index, "unshared": 99},
    }
    if index == 0:  # the sanity audit ran here, whole
        results["checks"] = [
            {
                "audit": "sanity",
                "metric": "cascading_ssim",
                "method": "saliency",
                "value": 0.2,
                "threshold": 0.6,
                "direction": "lower",
                "passed": True,
                "status": "passed",
                "reason": None,
                "threshold_source": "pyproject",
                "per_image": {"img-0": 0.2},
                "details": {"test": SANITY.nodeid},
                "effect": None,
                "interval": None,
                "control": None,
                "controls": {},
            }
        ]
    partial = Partial(
        shard=Shard(index, count),
        heatcheck="0.1.0",
        git_commit="c0ffee",
        rootdir="/x",
        settings=settings_to_json(SETTINGS),
        results=schema.read_results(results),
        items=[SANITY],
        outcomes={SANITY.nodeid: {"outcome": "passed", "reason": ""}}
        if index == 0
        else {LABELS: {"outcome": "computed", "reason": ""}},
        values={"heatcheck_predictions": np.full((4, 2), float(index))},
        provider={},
        blocks={"labelled": [4 * index, 4 * index + 4]},
        images_fingerprint="f" * 64,
        arrays={"ids": np.array(ids), "images": np.full((4, 2, 2, 3), index, np.uint8)},
        input_errors=["manifest.csv row 3 (cat.png): image file not found"],
    )
    return dataclasses.replace(partial, **changes)


def test_settings_survive_a_partial_exactly() -> None:
    back = settings_from_json(settings_to_json(SETTINGS))
    assert back == SETTINGS
    assert back.thresholds.get("map_ssim", "gradcam") == 0.6
    assert back.thresholds.source_of("map_ssim", "gradcam") == "command line"


def test_values_are_packed_at_full_precision_with_their_types() -> None:
    run = LocalisationRun(
        ("a", "b"),
        np.array([0.1, 1 / 3]),
        2,
        chance={"pg": np.array([np.nan, 1e-300])},
        raw={"pg": {"m": np.array([math.pi, -0.0])}},
    )
    arrays: dict[str, np.ndarray] = {}
    back = unpack(pack({"run": run, "n": [1, 2.5, None], "ids": ("x",)}, arrays), arrays)
    assert isinstance(back["run"], LocalisationRun)
    assert back["run"].ids == ("a", "b")
    np.testing.assert_array_equal(back["run"].fractions, [0.1, 1 / 3])
    np.testing.assert_array_equal(back["run"].chance["pg"], [np.nan, 1e-300])
    assert back["n"] == [1, 2.5, None]
    assert back["ids"] == ("x",)


def test_a_partial_file_reads_back_what_was_written(tmp_path: Path) -> None:
    written = _partial(1)
    path = write_partial(tmp_path, written)
    assert path.name == "heatcheck-partial-1-of-2.json"
    assert path.with_suffix(".npz").exists()
    back = read_partial(path)
    assert back.shard == Shard(1, 2)
    assert back.items == [SANITY]
    assert back.source == path
    np.testing.assert_array_equal(
        back.values["heatcheck_predictions"], written.values["heatcheck_predictions"]
    )
    np.testing.assert_array_equal(back.arrays["images"], written.arrays["images"])
    assert find_partials([tmp_path]) == [path]


def test_a_folder_without_a_partial_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no heatcheck partial"):
        find_partials([tmp_path])


def _results(partial: Partial, **changes: Any) -> Partial:
    return dataclasses.replace(partial, results=schema.read_results({**partial.results, **changes}))


@pytest.mark.parametrize(
    ("shards", "line"),
    [
        (
            lambda: [
                _partial(0),
                _results(_partial(1), model={"spec": "bench:shortcut", "sha256": "b" * 64}),
            ],
            "shards audit different models: shard 0/2 bench:clean (sha256 aaaaaaaaaaaa…) vs shard 1/2 "
            "bench:shortcut (sha256 bbbbbbbbbbbb…)",
        ),
        (
            lambda: [_partial(0), _partial(1, heatcheck="0.2.0")],
            "shards come from different heatcheck versions",
        ),
        (
            lambda: [_partial(0), _partial(1, git_commit="beef")],
            "shards come from different heatcheck versions",
        ),
        (
            lambda: [_partial(0), _partial(1, images_fingerprint="e" * 64)],
            "shards audit different image sets",
        ),
        (
            lambda: [_partial(0), _partial(1, settings={**settings_to_json(SETTINGS), "seed": 4})],
            "shards ran with different settings: seed is 3 on shard 0/2 but 4 on shard 1/2",
        ),
        (lambda: [_partial(0), _partial(0)], "shard 0/2 given twice"),
        (lambda: [_partial(0)], "shard 1/2 missing (have 0/2)"),
        (lambda: [_partial(0, 3), _partial(1), _partial(2, 3)], "shards come from different splits"),
        (lambda: [_partial(0), _results(_partial(1), status="incomplete")], "shard 1/2 did not finish"),
    ],
)
def test_shards_that_do_not_belong_together_are_refused_with_one_line(shards: Any, line: str) -> None:
    with pytest.raises(MergeError, match="^" + line.replace("(", r"\(").replace(")", r"\)")) as info:
        check_compatible(shards())
    assert "\n" not in str(info.value)


def test_settings_that_change_no_number_may_differ() -> None:
    local = {
        **settings_to_json(SETTINGS),
        "report_dir": "/elsewhere",
        "cache_dir": None,
        "colormap": "cividis",
    }
    assert [p.shard.index for p in check_compatible([_partial(1), _partial(0, settings=local)])] == [0, 1]


def test_a_shard_left_with_no_test_is_merged_without_its_model_or_images() -> None:
    idle = _results(
        _partial(1, outcomes={}, images_fingerprint=""),
        model={"spec": "bench:clean"},
        images={"spec": "bench"},
    )
    assert check_compatible([idle, _partial(0)])[1].idle
    with pytest.raises(MergeError, match="shards ran with different settings"):  # still the same audit
        check_compatible([_partial(0), dataclasses.replace(idle, settings={**idle.settings, "seed": 9})])


def test_the_merged_store_puts_rows_passes_and_sample_checks_together() -> None:
    merged = merge([_partial(1), _partial(0)], replay=False)
    store = merged.store
    assert [row["id"] for row in store.images["items"]] == [f"img-{i}" for i in range(8)]
    assert store.passes == {"run": 11, "unshared": 0}  # unshared: recomputed from the checks' own
    assert [c.metric for c in store.checks] == ["cascading_ssim"]  # from the shard that ran it
    assert store.environment["shards"] == 2
    assert store.environment["wall_s"] == 11.0
    assert store.environment["started_utc"] == "2026-01-01T00:00:00Z"
    assert merged.settings == SETTINGS
    assert store.input_errors == ["manifest.csv row 3 (cat.png): image file not found"]  # once


def test_merge_on_the_command_line_prints_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_partial(tmp_path / "a", _partial(0))
    write_partial(tmp_path / "b", _results(_partial(1), model={"spec": "bench:shortcut", "sha256": "b" * 64}))
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("heatcheck merge: shards audit different models:")
    assert "\n" not in err
    assert not (tmp_path / "out").exists()


def test_the_merged_gallery_is_the_whole_sets_choice() -> None:
    correct = np.array([True, False, True, True, False, True])
    ids = [f"i{k}" for k in range(6)]
    parts = []
    for rows in (slice(0, 3), slice(3, 6)):  # each block keeps its own first 2 by the same rule
        mine = np.arange(6)[rows]
        pick = mine[gallery_rows(correct[rows], limit=2)]
        parts.append({"ids": np.array([ids[k] for k in pick]), "images": pick.astype(np.float32)[:, None]})
    merged = merge_galleries(parts, ids, correct, limit=2)
    assert merged["ids"].tolist() == ["i1", "i4"]  # the two wrong ones, in set order
    assert merged["images"][:, 0].tolist() == [1.0, 4.0]
