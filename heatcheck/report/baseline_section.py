"""The report's view of the model-validation gate: the baseline's and this run's values side by
side, and per image what got worse, from results.json's "baseline" and its regression checks.

Reads results.json-shaped data only (like heatcheck.report), so a page can be rebuilt from files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from heatcheck.report.reading import mapping as _mapping
from heatcheck.report.reading import number as _number

AUDIT = "regression"  # heatcheck.checks.baseline.AUDIT; not imported, so that the report needs no numpy stack
ORDER = {"failed": 0, "inconclusive": 1, "passed": 2, "skipped": 3}
WORST_SHOWN = 5






def _fmt(value: Any) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:.4g}"


def _regression_checks(checks: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [c for c in checks if c.get("audit") == AUDIT]


def _row(check: Mapping[str, Any]) -> dict[str, Any]:
    details = _mapping(check.get("details"))
    interval = check.get("interval")
    change = _fmt(check.get("value"))
    if isinstance(interval, list) and len(interval) == 2:
        change += f" [{_fmt(interval[0])}, {_fmt(interval[1])}]"
    worst = [f"{w.get('id')} {_fmt(w.get('baseline'))} → {_fmt(w.get('new'))}"
             for w in details.get("worst") or [] if isinstance(w, Mapping)][:WORST_SHOWN]
    status = str(check.get("status"))
    return {"metric": str(check.get("metric")), "method": str(check.get("method") or "—"),
            "baseline": _fmt(details.get("baseline")), "new": _fmt(details.get("new")),
            "better": str(details.get("metric_direction") or "higher"), "change": change,
            "tolerance": _fmt(details.get("tolerance")), "status": status if status in ORDER else "failed",
            "images": details.get("images_paired", 0), "worst": worst,
            "note": str(details.get("status_change") or ""),
            "reason": str(check.get("reason") or "") if status in ("inconclusive", "skipped") else ""}


def regressions(results: Mapping[str, Any]) -> dict[str, Any] | None:
    """The baseline section: which run, the counts, one row per compared check (regressed
    first), the checks that newly fail or became inconclusive; None without a baseline."""
    described = results.get("baseline")
    if not isinstance(described, Mapping):
        return None
    checks = [c for c in results.get("checks") or [] if isinstance(c, Mapping)]
    rows = sorted((_row(c) for c in _regression_checks(checks)), key=lambda r: ORDER[r["status"]])
    counts = {status: sum(r["status"] == status for r in rows) for status in ORDER}
    return {"path": str(described.get("path")), "model": str(described.get("model")),
            "verdict": str(described.get("verdict") or "unknown").upper(),
            "started": str(described.get("started_utc")), "rows": rows, "counts": counts,
            "newly": [f"{r['metric']} {r['method']}: {r['note']}" for r in rows if r["note"]],
            "notes": [str(n) for n in described.get("notes") or []]}


def image_changes(checks: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, str]]:
    """Per image, its worst change over the failed regression checks (oriented: negative =
    worse) and a caption such as "vs baseline: energy_pointing_game gradcam 0.63 → 0.05"."""
    worst: dict[str, tuple[float, str]] = {}
    for check in _regression_checks(checks):
        if check.get("status") != "failed":
            continue
        details = _mapping(check.get("details"))
        pairs = _mapping(details.get("pairs"))
        name = f"{str(check.get('metric')).split('/', 1)[-1]} {check.get('method') or ''}".strip()
        for image_id, change in _mapping(check.get("per_image")).items():
            number = _number(change)
            pair = pairs.get(image_id)
            if number is None or not isinstance(pair, list) or len(pair) != 2:
                continue
            if image_id not in worst or number < worst[image_id][0]:
                worst[image_id] = (number, f"vs baseline: {name} {_fmt(pair[0])} → {_fmt(pair[1])}")
    return worst
