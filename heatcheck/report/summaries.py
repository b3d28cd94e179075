"""The report's plain-words summary of each audit family: what its checks say, in a sentence
an auditor reads before any table (results.json records, no live objects)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from heatcheck.report.schema import STATUSES, CheckRecord

# What a failure of each family means, and where on the page to look.
FAILED_MEANS = {
    "labels": "the model disagrees with some labels: their maps explain a class it does not predict "
              "(see the label table)",
    "localisation": "the maps avoid the labelled object or do no better than maps without information; "
                    "the top gallery rows show where they point instead",
    "sanity": "the maps barely change when the model's weights are randomised: they do not depend on "
              "what the model learned",
    "stability": "the maps change under small input perturbations that keep the model's decision",
    "faithfulness": "removing what the maps call important takes the decision away no faster than a "
                    "random order",
    "regression": "checks got worse than in the accepted baseline by more than their tolerance; the "
                  "baseline section names the images that got worst",
}
ORDER = ("labels", "localisation", "sanity", "stability", "faithfulness")


def family_summaries(checks: Sequence[CheckRecord]) -> list[dict[str, Any]]:
    """One entry per audit family present: counts, a sentence, and the section to jump to."""
    families: dict[str, list[CheckRecord]] = {}
    for check in checks:
        families.setdefault(check["audit"], []).append(check)
    rank = {f: i for i, f in enumerate(ORDER)}
    out = []
    for family in sorted(families, key=lambda f: (rank.get(f, len(rank)), f)):
        statuses = [c["status"] for c in families[family]]
        ran = [s for s in statuses if s != "skipped"]
        counts: dict[str, int] = {s: statuses.count(s) for s in STATUSES}
        out.append({"family": family, "anchor": family, "ran": len(ran), **counts,
                    "status": _status(counts), "sentence": _sentence(family, families[family])})
    return out


def _status(counts: Mapping[str, int]) -> str:
    if counts["failed"]:
        return "failed"
    if counts["inconclusive"]:
        return "inconclusive"
    return "passed" if counts["passed"] else "skipped"


def _sentence(family: str, checks: Sequence[CheckRecord]) -> str:
    by_status: dict[str, list[CheckRecord]] = {}
    for c in checks:
        by_status.setdefault(c["status"], []).append(c)
    if "failed" in by_status:
        methods = sorted({c["method"] for c in by_status["failed"] if c["method"]})
        who = f"{', '.join(methods)}: " if methods else ""
        return who + FAILED_MEANS.get(family, "some checks failed") + "."
    if "inconclusive" in by_status:
        reasons = [c["reason"] for c in by_status["inconclusive"] if c["reason"]]
        common = max(set(reasons), key=reasons.count) if reasons else "the image set cannot tell"
        return f"This image set cannot tell: {common}."
    if "passed" in by_status:
        return "Every check that ran passed."
    reasons = sorted({c["reason"] for c in checks if c["reason"]})
    return "Nothing ran: " + ("; ".join(reasons[:2]) if reasons else "no reason recorded") + "."
