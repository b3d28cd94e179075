"""The ResultStore: every number behind every verdict, written as results.json ("heatcheck/1",
typed in heatcheck.report.schema)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heatcheck.report.schema import (
    SCHEMA,
    CheckRecord,
    Direction,
    ErrorRecord,
    Results,
    Status,
    Summary,
    Verdict,
    summary_of,
)


def _finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: a number that is not finite is written as null."""
    if value is None:
        return None
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (anywhere inside) replaced by None."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return _finite_or_none(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass
class Check:
    """One gated number: an audit × metric × method, its value, threshold and verdict."""

    audit: str
    metric: str
    method: str | None
    value: float | None
    threshold: float | None
    direction: Direction | None  # None for a check that did not run: it has no direction to report
    passed: bool | None
    status: Status
    reason: str | None = None
    per_image: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    threshold_source: str | None = None
    # A calibrated check (heatcheck.checks.decision): its threshold is a margin over the strongest
    # control; ``effect`` is the method's mean paired difference to that control (oriented so
    # that higher is better) and ``interval`` its bootstrap interval; ``controls`` holds every
    # control's mean score on the same images.
    effect: float | None = None
    interval: list[float] | None = None
    control: str | None = None
    controls: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, record: CheckRecord) -> Check:
        """The check a record describes (a value results.json wrote as null is NaN again)."""
        nan = math.nan
        return cls(
            audit=record["audit"], metric=record["metric"], method=record["method"],
            value=record["value"], threshold=record["threshold"], direction=record["direction"],
            passed=record["passed"], status=record["status"], reason=record["reason"],
            per_image={k: nan if v is None else v for k, v in record["per_image"].items()},
            details=dict(record["details"]), threshold_source=record["threshold_source"],
            effect=record["effect"], control=record["control"],
            interval=None if record["interval"] is None
            else [nan if v is None else v for v in record["interval"]],
            controls={k: nan if v is None else v for k, v in record["controls"].items()})

    def to_json(self) -> CheckRecord:
        return {
            "audit": self.audit, "metric": self.metric, "method": self.method,
            "value": _finite_or_none(self.value), "threshold": self.threshold,
            "direction": self.direction, "passed": self.passed, "status": self.status,
            "reason": self.reason, "threshold_source": self.threshold_source,
            "per_image": {k: _finite_or_none(v) for k, v in self.per_image.items()},
            "details": json_safe(self.details),
            "effect": _finite_or_none(self.effect),
            "interval": json_safe(self.interval), "control": self.control,
            "controls": json_safe(self.controls),
        }


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        # mkstemp creates 0600; a report is meant to be read by others (CI artefacts, auditors).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class ResultStore:
    """Collects a session's results; the plugin writes them at session end."""

    model: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    passes: dict[str, int] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    interrupted: bool = False
    input_errors: list[str] = field(default_factory=list)  # one line per rejected input, for the terminal
    fail_inconclusive: bool = False  # strict gates: an inconclusive check fails the verdict
    fatal: str | None = None  # a whole-run error (model or image set unusable): the run stopped on it
    # What a pass does not cover (audits not selected or that audited nothing, rejected rows,
    # few images); with fail_on_caveats such a run fails the gate instead of passing with them.
    caveats: list[str] = field(default_factory=list)
    fail_on_caveats: bool = False
    baseline: dict[str, Any] | None = None  # the accepted run compared with (heatcheck.checks.baseline)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def seal(self, families: list[str]) -> None:
        """Derive what the checks imply before writing: the caveats of a pass (``families``: the
        audit family of every collected audit test) and the passes running each check on its
        own with fresh maps would have cost (per-metric toolkits)."""
        from heatcheck.report.coverage import caveats

        self.caveats = [] if self.fatal else caveats(families, [(c.audit, c.status) for c in self.checks],
                                                     self.images)
        self.passes["unshared"] = sum(int(c.details.get("passes_alone", 0)) for c in self.checks)

    def verdict(self) -> Verdict:
        if self.fatal is not None:
            return "fail"
        if self.interrupted or self.not_run:
            return "incomplete"
        failing = {"failed", "inconclusive"} if self.fail_inconclusive else {"failed"}
        failed = any(c.status in failing for c in self.checks)
        return "fail" if failed or self.errors or (self.caveats and self.fail_on_caveats) else "pass"

    def summary(self) -> Summary:
        return summary_of([c.status for c in self.checks], len(self.errors))

    def to_json(self) -> Results:
        return {
            "schema": SCHEMA, "verdict": self.verdict(),
            "status": "incomplete" if self.verdict() == "incomplete" else "complete",
            "model": self.model, "images": self.images, "environment": self.environment,
            "checks": [c.to_json() for c in self.checks], "summary": self.summary(),
            "errors": self.errors, "not_run": self.not_run, "passes": self.passes, "fatal": self.fatal,
            "caveats": self.caveats, "baseline": self.baseline,
        }

    def write(self, report_dir: Path, *, arrays: bool = True) -> Path:
        """Write results.json (and maps.npz for the report's galleries) atomically."""
        path = report_dir / "results.json"
        atomic_write(path, (json.dumps(self.to_json(), indent=1, allow_nan=False) + "\n").encode())
        if arrays and self.arrays:
            import io

            buffer = io.BytesIO()
            np.savez_compressed(buffer, **self.arrays)  # type: ignore[arg-type]
            atomic_write(report_dir / "maps.npz", buffer.getvalue())
        return path
