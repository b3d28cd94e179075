"""results.json ("heatcheck/1"): one typed schema for writing it and reading it back.

The writer (heatcheck.report.results: ``Check.to_json``, ``ResultStore.to_json``) returns these
types, and every reader (the report, its baseline section, the baseline gate) gets them from
``read_results``, so mypy checks both sides against one declaration. Reading is tolerant: a
section may be absent, null or of another type in a hand-written file or one from an older
heatcheck, and the page must still be drawn; ``read_results`` turns whatever it is given into
a complete ``Results`` (derived values where a file has none: a check's status from its
``passed`` field, the summary from the checks, the verdict from both).

The free-form parts stay mappings: ``model``, ``images`` and ``environment`` describe the run,
and each check's ``details`` holds what its audit measured (read them through ``mapping``,
``sequence`` and ``number``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypedDict, cast, get_args

from heatcheck.errors import HeatcheckError

SCHEMA = "heatcheck/1"

Status = Literal["passed", "failed", "inconclusive", "skipped"]
STATUSES: tuple[Status, ...] = get_args(Status)
Verdict = Literal["pass", "fail", "incomplete"]
RunStatus = Literal["complete", "incomplete"]  # incomplete: some selected test did not run
Direction = Literal["higher", "lower"]


class CheckRecord(TypedDict):
    """One gated number: an audit × metric × method, its value, threshold and outcome."""

    audit: str
    metric: str
    method: str | None
    value: float | None  # None: not finite, or not measured
    threshold: float | None
    direction: Direction | None  # None for a check that did not run
    passed: bool | None
    status: Status
    reason: str | None
    threshold_source: str | None
    per_image: dict[str, float | None]
    details: dict[str, Any]
    # A calibrated check (heatcheck.checks.decision): the mean paired lead over the strongest
    # control, its bootstrap interval [low, high], that control, every control's mean score.
    effect: float | None
    interval: list[float | None] | None
    control: str | None
    controls: dict[str, float | None]


class Summary(TypedDict):
    passed: int
    failed: int
    inconclusive: int
    skipped: int
    errors: int


class ErrorRecord(TypedDict):
    """A test that errored: its node id, the phase (setup, call, teardown) and the message."""

    test: str
    when: str
    message: str


class Results(TypedDict):
    schema: str
    verdict: Verdict
    status: RunStatus
    model: dict[str, Any]
    images: dict[str, Any]
    environment: dict[str, Any]
    checks: list[CheckRecord]
    summary: Summary
    errors: list[ErrorRecord]
    not_run: list[str]
    passes: dict[str, int]
    fatal: str | None
    caveats: list[str]
    baseline: dict[str, Any] | None


class ResultsFileError(HeatcheckError, ValueError):
    """A results.json that cannot be read at all; the message names the file and says why."""


# --------------------------------------------------------------------------- tolerant values
def mapping(value: Any) -> dict[str, Any]:
    """``value`` as a dict with str keys if it is a mapping, else an empty one."""
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else {}


def sequence(value: Any) -> list[Any]:
    """``value`` as a list if it is a list or tuple, else an empty list."""
    return list(value) if isinstance(value, list | tuple) else []


def number(value: Any) -> float | None:
    """A finite float, or None for anything else (None, NaN, strings, booleans)."""
    if isinstance(value, bool | str):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --------------------------------------------------------------------------- reading
def status_of(raw: Mapping[str, Any]) -> Status:
    """A check's status; older results only carry ``passed`` (None = skipped). Any other
    recorded status (an error) counts as failed: a reader must not hide it."""
    status = raw.get("status")
    if status is None:
        passed = raw.get("passed")
        return "passed" if passed is True else "failed" if passed is False else "skipped"
    return cast(Status, status) if status in ("passed", "inconclusive", "skipped") else "failed"


def read_check(raw: Any) -> CheckRecord | None:
    """One check as the schema says, or None for an entry that is not an object."""
    if not isinstance(raw, Mapping):
        return None
    direction = raw.get("direction")
    passed = raw.get("passed")
    interval = sequence(raw.get("interval"))
    return {
        "audit": str(raw.get("audit", "unknown")), "metric": str(raw.get("metric", "unknown")),
        "method": _text(raw.get("method")), "value": number(raw.get("value")),
        "threshold": number(raw.get("threshold")),
        "direction": direction if direction in ("higher", "lower") else None,
        "passed": passed if isinstance(passed, bool) else None, "status": status_of(raw),
        "reason": _text(raw.get("reason")), "threshold_source": _text(raw.get("threshold_source")),
        "per_image": {k: number(v) for k, v in mapping(raw.get("per_image")).items()},
        "details": mapping(raw.get("details")), "effect": number(raw.get("effect")),
        "interval": [number(v) for v in interval] if len(interval) == 2 else None,
        "control": _text(raw.get("control")),
        "controls": {k: number(v) for k, v in mapping(raw.get("controls")).items()},
    }


def _error(entry: Any) -> ErrorRecord:
    # Tolerate a bare node id string from a hand-written or older results file.
    error = mapping(entry) if isinstance(entry, Mapping) else {"test": entry}
    return {"test": str(error.get("test", "unknown")), "when": str(error.get("when", "unknown")),
            "message": str(error.get("message") or "no message recorded")}


def summary_of(statuses: list[Status], errors: int, recorded: Any = None) -> Summary:
    """Checks per status and the error count: the recorded summary where it has a count."""
    given = mapping(recorded)

    def pick(key: str, counted: int) -> int:
        value = _count(given.get(key))
        return counted if value is None else value

    return {"passed": pick("passed", statuses.count("passed")),
            "failed": pick("failed", statuses.count("failed")),
            "inconclusive": pick("inconclusive", statuses.count("inconclusive")),
            "skipped": pick("skipped", statuses.count("skipped")), "errors": pick("errors", errors)}


def _verdict(raw: Mapping[str, Any], summary: Summary, not_run: list[str]) -> Verdict:
    """The recorded verdict, or one derived from the checks when an older run has none. A
    recorded "pass" with tests that did not run is "incomplete": never call a partial run a pass."""
    incomplete = raw.get("status") == "incomplete" or bool(not_run)
    recorded = raw.get("verdict")
    if isinstance(recorded, str) and recorded.lower() in ("pass", "fail", "incomplete"):
        verdict = cast(Verdict, recorded.lower())
        return "incomplete" if verdict == "pass" and incomplete else verdict
    if summary["failed"] or summary["errors"]:
        return "fail"
    return "incomplete" if incomplete or not summary["passed"] else "pass"


def _status(raw: Mapping[str, Any], verdict: Verdict, not_run: list[str]) -> RunStatus:
    """Whether every selected test ran: as recorded, else as the verdict says."""
    recorded = raw.get("status")
    if recorded not in ("complete", "incomplete"):
        recorded = "incomplete" if verdict == "incomplete" else "complete"
    return "incomplete" if recorded == "incomplete" or not_run else "complete"


def read_results(raw: Any) -> Results:
    """Any JSON value as a complete ``Results`` (a non-object reads as an empty run)."""
    document = mapping(raw)
    checks = [c for c in (read_check(entry) for entry in sequence(document.get("checks"))) if c is not None]
    errors = [_error(e) for e in sequence(document.get("errors"))]
    not_run = [str(n) for n in sequence(document.get("not_run"))]
    summary = summary_of([c["status"] for c in checks], len(errors), document.get("summary"))
    verdict = _verdict(document, summary, not_run)
    baseline = document.get("baseline")
    return {
        "schema": str(document.get("schema", "unknown")), "verdict": verdict,
        "status": _status(document, verdict, not_run),
        "model": mapping(document.get("model")), "images": mapping(document.get("images")),
        "environment": mapping(document.get("environment")), "checks": checks, "summary": summary,
        "errors": errors, "not_run": not_run,
        "passes": {k: v for k, v in mapping(document.get("passes")).items() if _count(v) is not None},
        "fatal": _text(document.get("fatal")) or None,
        "caveats": [str(c) for c in sequence(document.get("caveats"))],
        "baseline": mapping(baseline) if isinstance(baseline, Mapping) else None,
    }


def load_results(path: Path) -> Results:
    """``path`` (a results.json) read and checked to be a JSON object, or ResultsFileError."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # missing, unreadable, not UTF-8, not JSON
        raise ResultsFileError(f"{path}: cannot read it as results.json "
                               f"({type(exc).__name__}: {exc})") from None
    if not isinstance(document, dict):
        raise ResultsFileError(f"{path}: not a results.json (a JSON {type(document).__name__})")
    return read_results(document)
