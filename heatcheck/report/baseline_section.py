"""The report's view of the model-validation gate: the baseline's and this run's values side by
side, and per image what got worse, from results.json's "baseline" and its regression checks.

Reads results.json records only (heatcheck.report.schema), so a page can be rebuilt from files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from heatcheck.report.schema import CheckRecord, Results
from heatcheck.report.schema import mapping as _mapping
from heatcheck.report.schema import number as _number

AUDIT = "regression"  # heatcheck.checks.baseline.AUDIT; not imported, so that the report needs no numpy stack
ORDER = {"failed": 0, "inconclusive": 1, "passed": 2, "skipped": 3}
WORST_SHOWN = 5


def _fmt(value: Any) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:.4g}"


def _regression_checks(checks: Sequence[CheckRecord]) -> list[CheckRecord]:
    return [c for c in checks if c["audit"] == AUDIT]


def _row(check: CheckRecord) -> dict[str, Any]:
    details = check["details"]
    interval = check["interval"]
    change = _fmt(check["value"])
    if interval is not None:
        change += f" [{_fmt(interval[0])}, {_fmt(interval[1])}]"
    worst = [f"{w.get('id')} {_fmt(w.get('baseline'))} → {_fmt(w.get('new'))}"
             for w in details.get("worst") or [] if isinstance(w, Mapping)][:WORST_SHOWN]
    status = check["status"]
    return {"metric": check["metric"], "method": check["method"] or "—",
            "baseline": _fmt(details.get("baseline")), "new": _fmt(details.get("new")),
            "better": str(details.get("metric_direction") or "higher"), "change": change,
            "tolerance": _fmt(details.get("tolerance")), "status": status,
            "images": details.get("images_paired", 0), "worst": worst,
            "note": str(details.get("status_change") or ""),
            "reason": (check["reason"] or "") if status in ("inconclusive", "skipped") else ""}


def regressions(results: Results) -> dict[str, Any] | None:
    """The baseline section: which run, the counts, one row per compared check (regressed
    first), the checks that newly fail or became inconclusive; None without a baseline."""
    described = results["baseline"]
    if described is None:
        return None
    rows = sorted((_row(c) for c in _regression_checks(results["checks"])), key=lambda r: ORDER[r["status"]])
    counts = {status: sum(r["status"] == status for r in rows) for status in ORDER}
    return {"path": str(described.get("path")), "model": str(described.get("model")),
            "verdict": str(described.get("verdict") or "unknown").upper(),
            "started": str(described.get("started_utc")), "rows": rows, "counts": counts,
            "newly": [f"{r['metric']} {r['method']}: {r['note']}" for r in rows if r["note"]],
            "notes": [str(n) for n in described.get("notes") or []]}


def image_changes(checks: Sequence[CheckRecord]) -> dict[str, tuple[float, str]]:
    """Per image, its worst change over the failed regression checks (oriented: negative =
    worse) and a caption such as "vs baseline: energy_pointing_game gradcam 0.63 → 0.05"."""
    worst: dict[str, tuple[float, str]] = {}
    for check in _regression_checks(checks):
        if check["status"] != "failed":
            continue
        pairs = _mapping(check["details"].get("pairs"))
        name = f"{check['metric'].split('/', 1)[-1]} {check['method'] or ''}".strip()
        for image_id, number in check["per_image"].items():
            pair = pairs.get(image_id)
            if number is None or not isinstance(pair, list) or len(pair) != 2:
                continue
            if image_id not in worst or number < worst[image_id][0]:
                worst[image_id] = (number, f"vs baseline: {name} {_fmt(pair[0])} → {_fmt(pair[1])}")
    return worst
