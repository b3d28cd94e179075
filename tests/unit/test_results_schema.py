"""results.json has one typed schema (heatcheck.report.schema) for writing and reading it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import get_type_hints

import pytest

from heatcheck.report import schema
from heatcheck.report.results import Check, ResultStore


def _store() -> ResultStore:
    store = ResultStore(model={"spec": "bench:clean"}, images={"count": 2, "items": [{"id": "a"}]},
                        environment={"seed": 0})
    store.add(Check("localisation", "pointing_game", "gradcam", 0.4, 0.1, "higher", True, "passed",
                    per_image={"a": 0.5, "b": math.nan}, details={"raw": 0.9},
                    threshold_source="heatcheck defaults",
                    effect=0.3, interval=[0.2, math.inf], control="centre", controls={"centre": 0.1}))
    store.add(Check("sanity", "ssim", "saliency", None, 0.2, None, None, "skipped", reason="no conv layer"))
    store.errors.append({"test": "audits/test_x.py::t", "when": "call", "message": "boom"})
    return store


def test_the_writer_and_the_reader_share_one_set_of_keys() -> None:
    written = _store().to_json()
    assert set(written) == set(get_type_hints(schema.Results))
    assert set(written["checks"][0]) == set(get_type_hints(schema.CheckRecord))
    assert set(written["summary"]) == set(get_type_hints(schema.Summary))
    assert set(written["errors"][0]) == set(get_type_hints(schema.ErrorRecord))


def test_reading_back_what_was_written_changes_nothing(tmp_path: Path) -> None:
    store = _store()
    path = store.write(tmp_path, arrays=False)
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    read = schema.load_results(path)
    assert read == on_disk
    assert read["checks"][0]["per_image"] == {"a": 0.5, "b": None}  # NaN is written (and read) as null
    assert read["checks"][0]["interval"] == [0.2, None]
    assert read["summary"] == {"passed": 1, "failed": 0, "inconclusive": 0, "skipped": 1, "errors": 1}
    again = Check.from_json(read["checks"][0])
    assert math.isnan(again.per_image["b"])
    assert again.to_json() == read["checks"][0]


@pytest.mark.parametrize("raw", [None, [], "text", {}, {"checks": None, "errors": "x", "summary": []}])
def test_anything_reads_as_a_complete_empty_run(raw: object) -> None:
    read = schema.read_results(raw)
    assert set(read) == set(get_type_hints(schema.Results))
    assert read["checks"] == []
    assert read["verdict"] == "incomplete"
    assert read["status"] == "incomplete"


def test_an_older_or_hand_written_file_is_read_tolerantly() -> None:
    read = schema.read_results({
        "verdict": "PASS", "not_run": ["audits/test_sanity.py"],
        "checks": [{"audit": "labels", "metric": "agreement", "passed": False, "value": "0.5"},
                   {"metric": "m", "status": "error", "value": float("nan"), "interval": [1]},
                   "not a check"],
        "errors": ["audits/test_x.py::t"], "summary": {"passed": True}})
    first, second = read["checks"]
    assert first["status"] == "failed"
    assert first["value"] is None
    assert first["method"] is None
    assert second["status"] == "failed"  # an unknown recorded status is never hidden as a pass
    assert second["audit"] == "unknown"
    assert second["interval"] is None
    assert read["verdict"] == "incomplete"  # a recorded pass with a test that did not run
    assert read["errors"] == [
        {"test": "audits/test_x.py::t", "when": "unknown", "message": "no message recorded"}]
    assert read["summary"]["passed"] == 0
    assert read["summary"]["failed"] == 2


def test_an_unreadable_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(schema.ResultsFileError, match=r"results.json: not a results.json \(a JSON list\)"):
        schema.load_results(path)
    with pytest.raises(schema.ResultsFileError, match="cannot read it as results.json"):
        schema.load_results(tmp_path / "missing.json")
