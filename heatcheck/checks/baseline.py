"""The model-validation gate: compare a run with the last accepted one (its results.json).

A new model version is judged against the version that was accepted, not only against fixed
thresholds: every check of the baseline is compared with the same check of the new run, image
by image on the images both runs scored (paired), and the mean change gets the same seeded
percentile bootstrap interval as the calibrated gates (:func:`heatcheck.checks.decision.bootstrap_interval`).
A regression check is

- **passed** when the interval's lower end is no worse than the metric's tolerance,
- **failed** when its upper end is worse than the tolerance (confidently worse), and
- **inconclusive** when the interval straddles the tolerance or too few images were scored
  in both runs.

A check recorded without per-image values (the stability search's worst SSIM) is compared value
to value. A baseline must describe the same audit: the same image set (ids, labels and content
hashes) and the settings that change what is measured (:func:`audit_settings`); only the model
may differ. Pure Python and numpy: no pytest, no TensorFlow.
"""

from __future__ import annotations

import functools
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heatcheck.checks.decision import Interval, Outcome, bootstrap_interval
from heatcheck.errors import HeatcheckError
from heatcheck.report import schema
from heatcheck.report.results import Check
from heatcheck.report.schema import SCHEMA, CheckRecord, Results
from heatcheck.report.schema import mapping as _mapping
from heatcheck.settings import Settings, Thresholds

AUDIT = "regression"  # the audit name of the regression checks in results.json
WORST_SHOWN = 3  # images named in a regression's message
WORST_KEPT = 5  # images kept in its details for the report


class BaselineError(HeatcheckError, ValueError):
    """A baseline that cannot be compared with this run; the message is one line saying why."""


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class Baseline:
    """An accepted run's results.json, checked to be comparable; ``notes`` say what could not
    be checked (an older heatcheck's file without settings or content hashes)."""

    path: Path
    results: Results
    notes: tuple[str, ...] = ()

    @property
    def checks(self) -> list[CheckRecord]:
        """The checks that ran in the baseline (not its own regression checks)."""
        return [c for c in self.results["checks"] if c["audit"] != AUDIT and c["status"] != "skipped"
                and c["value"] is not None]

    def describe(self) -> dict[str, Any]:
        """What results.json records about the baseline it was compared with."""
        model, env = self.results["model"], self.results["environment"]
        return {"path": str(self.path), "model": model.get("spec"), "model_sha256": model.get("sha256"),
                "verdict": self.results["verdict"], "started_utc": env.get("started_utc"),
                "heatcheck": env.get("heatcheck"), "git_commit": env.get("git_commit"),
                "notes": list(self.notes)}


def load_baseline(path: str | Path) -> Baseline:
    """The baseline at ``path`` (a results.json or a folder holding one), or BaselineError."""
    given = Path(path)
    file = given / "results.json" if given.is_dir() else given
    if not file.is_file():
        missing = "no results.json in this folder" if given.is_dir() else "file not found"
        raise BaselineError(f"--hc-baseline {given}: {missing}")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON
        raise BaselineError(f"--hc-baseline {file}: cannot read it as results.json "
                            f"({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise BaselineError(f"--hc-baseline {file}: not a results.json (a JSON {type(raw).__name__})")
    if raw.get("schema") != SCHEMA:
        raise BaselineError(f"--hc-baseline {file}: schema {raw.get('schema')!r}, this heatcheck "
                            f"reads {SCHEMA!r}")
    if not isinstance(raw.get("checks"), list):
        raise BaselineError(f"--hc-baseline {file}: has no checks")
    results = schema.read_results(raw)
    if results["fatal"]:
        raise BaselineError(f"--hc-baseline {file}: that run stopped ({results['fatal']}); "
                            f"accept a complete run")
    if results["status"] == "incomplete" or results["not_run"]:
        raise BaselineError(f"--hc-baseline {file}: that run is incomplete "
                            f"({len(results['not_run'])} test(s) did not run); accept a complete run")
    return Baseline(file, results)


def save_baseline(results_file: Path, target: str | Path) -> Path:
    """Copy a run's results.json to ``target`` (a file, or a folder that gets a results.json)."""
    from heatcheck.report.results import atomic_write

    path = Path(target)
    if path.is_dir() or path.suffix != ".json":
        path = path / "results.json"
    atomic_write(path, results_file.read_bytes())
    return path


# --------------------------------------------------------------------------- same audit?
def audit_settings(settings: Settings) -> dict[str, Any]:
    """The settings that change what is measured, resolved (profile sizes as numbers).

    Left out on purpose: the model and everything about it (file, weights, layer, output,
    preprocessing, class names, the random-label partner), since a different model is the
    point; the engine (the compiled engine gives the reference library's maps within 1e-4,
    tests/models/test_engine_equivalence.py); batch size, cache and report options; thresholds,
    margins and strictness, which change verdicts, not values.
    """
    return {
        "seed": settings.seed, "profile": settings.profile.name, "methods": list(settings.methods),
        "top_k": settings.top_k, "only_correct": settings.only_correct,
        "max_mask_fraction": settings.max_mask_fraction,
        "smooth_noise": settings.smooth_noise, "smooth_samples": settings.smooth_samples,
        "pointing_tolerance": settings.pointing_tolerance,
        "sanity_images": settings.sanity_count, "sanity_grouping": settings.sanity_grouping,
        "stability_images": settings.stability_count,
        "faithfulness_steps": settings.faithfulness_steps,
        "faithfulness_baseline": settings.faithfulness_baseline,
        "stability_examples": settings.profile.hypothesis_examples
        * (10 if settings.stability_search == "deep" else 1),
        "stability_max_sigma": settings.stability_max_sigma,
        "stability_max_brightness": settings.stability_max_brightness,
    }


def check_settings(baseline: Baseline, current: Mapping[str, Any]) -> Baseline:
    """``baseline`` if it was run with the same :func:`audit_settings`, else BaselineError naming
    every difference. An older results.json without them is compared on seed and profile."""
    env = _mapping(baseline.results.get("environment"))
    recorded = env.get("audit_settings")
    if isinstance(recorded, Mapping):
        differ = [f"{key} {_text(recorded.get(key))} (baseline) vs {_text(value)} (this run)"
                  for key, value in current.items() if _jsonable(recorded.get(key)) != _jsonable(value)]
        notes = baseline.notes
    else:
        known = {"seed": current["seed"], "profile": current.get("profile")}
        differ = [f"{key} {_text(env.get(key))} (baseline) vs {_text(value)} (this run)"
                  for key, value in known.items() if value is not None and key in env and env[key] != value]
        notes = (*baseline.notes, "the baseline records no audit settings (an older heatcheck): only the "
                                  "seed and profile were checked")
    if differ:
        raise BaselineError(f"--hc-baseline {baseline.path}: other settings: {'; '.join(differ)}")
    return Baseline(baseline.path, baseline.results, notes)


def image_set_difference(baseline: Baseline, items: Sequence[Mapping[str, Any]]) -> str | None:
    """None when the baseline audited the same images (ids, labels, content hashes), else one
    line saying how the sets differ. Hashes are compared where both runs recorded them."""
    base_items = _mapping(baseline.results.get("images")).get("items")
    if not isinstance(base_items, list):
        return None  # nothing to compare with: noted by image_set_notes
    base = {str(i.get("id")): i for i in base_items if isinstance(i, Mapping)}
    new = {str(i.get("id")): i for i in items}
    only_base = [k for k in base if k not in new]
    only_new = [k for k in new if k not in base]
    changed = [k for k in base if k in new and _differs(base[k], new[k])]
    parts = [f"{len(ids)} {what} (first: {ids[0]})" for ids, what in (
        (changed, "image(s) with other pixels, mask or label"), (only_base, "image(s) only in the baseline"),
        (only_new, "image(s) only in this run")) if ids]
    return f"another image set: {'; '.join(parts)}" if parts else None


def image_set_notes(baseline: Baseline) -> list[str]:
    """What the image-set check could not check on an older baseline."""
    items = _mapping(baseline.results.get("images")).get("items")
    if not isinstance(items, list):
        return ["the baseline records no images: the image set was not checked"]
    if any(isinstance(i, Mapping) and "content_hash" not in i for i in items):
        return ["the baseline records no content hashes (an older heatcheck): images were matched by id "
                "and label only"]
    return []


def _differs(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.get("label") != b.get("label"):
        return True
    return "content_hash" in a and "content_hash" in b and a["content_hash"] != b["content_hash"]


# --------------------------------------------------------------------------- tolerances
LABEL_AGREEMENT = "label_agreement"  # label consistency's key in the tolerance table


def tolerance_key(check: CheckRecord) -> str:
    """The tolerance table's name for a check's metric: label consistency's metric is named
    after k (top_1_agreement), its threshold and tolerance are ``label_agreement``."""
    return LABEL_AGREEMENT if check["audit"] == "labels" else check["metric"]


def tolerance_table_problems(thresholds: Thresholds, tolerances: Thresholds) -> list[str]:
    """Why the tolerance table cannot serve every check a run can compare, or [] when it can.

    Every metric an audit records is gated, so it has a threshold (an audit stops with a
    SettingsError without one): the metrics of the threshold table are the metrics a baseline
    can hold. Each needs a tolerance with a default (methods without their own value use it),
    and a tolerance for a metric without a threshold is stale (no audit records it).
    """
    gated, tolerated = set(thresholds.values), set(tolerances.values)
    problems = []
    if missing := sorted(gated - tolerated):
        problems.append(f"no tolerance for {', '.join(missing)}")
    if no_default := sorted(m for m in gated & tolerated if "default" not in tolerances.values[m]):
        problems.append(f"no default tolerance for {', '.join(no_default)}")
    if stale := sorted(tolerated - gated):
        problems.append(f"a tolerance for {', '.join(stale)}, which no audit records (no threshold)")
    return problems


def unknown_metrics(baseline: Baseline, thresholds: Thresholds) -> list[str]:
    """The baseline's metrics that no audit of this heatcheck records (they have no threshold):
    a baseline from audits whose metrics were renamed or rebuilt."""
    return sorted({tolerance_key(c) for c in baseline.checks} - set(thresholds.values))


# --------------------------------------------------------------------------- comparing
CheckKey = tuple[str, str, str | None]


def check_key(check: CheckRecord) -> CheckKey:
    return check["audit"], check["metric"], check["method"]


@dataclass(frozen=True)
class Regression:
    """One baseline check compared with the same check of the new run.

    ``change`` is the mean paired change, oriented so that higher is better (new − baseline for
    a higher-is-better metric); ``interval`` its bootstrap interval (None when compared value
    to value); ``pairs`` the per-image (baseline, new) values in the check's value units.
    """

    outcome: Outcome
    baseline_value: float | None
    new_value: float | None
    change: float
    interval: Interval | None
    tolerance: float
    pairs: dict[str, tuple[float, float]] = field(default_factory=dict)
    direction: str = "higher"
    reason: str | None = None
    status_change: str | None = None

    def changes(self) -> dict[str, float]:
        """Per image, the oriented change (negative = worse)."""
        sign = 1.0 if self.direction == "higher" else -1.0
        return {k: sign * (new - base) for k, (base, new) in self.pairs.items()}

    def worst(self, count: int) -> list[tuple[str, float, float]]:
        """(id, baseline, new) of the ``count`` images whose value got worst, worst first."""
        changes = self.changes()
        ids = sorted(changes, key=lambda k: changes[k])[:count]
        return [(k, *self.pairs[k]) for k in ids if changes[k] < 0]


def per_image_values(check: CheckRecord) -> dict[str, float]:
    """A check's finite per-image values, in the units of its value."""
    return {k: v for k, v in check["per_image"].items() if v is not None}


def compare_check(base: CheckRecord, new: CheckRecord | None, *, tolerance: float,
                  seed: int, min_images: int) -> Regression:
    """Compare one baseline check with the new run's same check (None: not recorded)."""
    direction = "lower" if base["direction"] == "lower" else "higher"
    sign = 1.0 if direction == "higher" else -1.0
    b_value = base["value"]
    n_value = new["value"] if new else None
    made = functools.partial(Regression, baseline_value=b_value, new_value=n_value, tolerance=tolerance,
                             direction=direction, status_change=status_change(base, new))
    if new is None or new["status"] == "skipped" or n_value is None:
        why = (new["reason"] if new else None) or "no value recorded"
        return made("failed", change=math.nan, interval=None,
                    reason=f"ran in the baseline ({_text(b_value)}), not in this run: {why}")
    b_images, n_images = per_image_values(base), per_image_values(new)
    pairs = {k: (v, n_images[k]) for k, v in b_images.items() if k in n_images}
    if not b_images and not n_images and b_value is not None:  # no per-image values: value to value
        change = sign * (n_value - b_value)
        return made("passed" if change >= -tolerance else "failed", change=change, interval=None)
    if len(pairs) < min_images:
        return made("inconclusive", change=math.nan, interval=None, pairs=pairs,
                    reason=f"only {len(pairs)} image(s) scored in both runs, need at least {min_images}")
    diffs = sign * (np.array([p[1] for p in pairs.values()]) - np.array([p[0] for p in pairs.values()]))
    stream = zlib.crc32("/".join(map(str, check_key(base))).encode())  # one bootstrap stream per check
    interval = bootstrap_interval(diffs, seed=[seed, stream])
    change = float(diffs.mean())
    if interval.low >= -tolerance:
        return made("passed", change=change, interval=interval, pairs=pairs)
    if interval.high < -tolerance:
        return made("failed", change=change, interval=interval, pairs=pairs)
    return made("inconclusive", change=change, interval=interval, pairs=pairs,
                reason=f"the change {change:+.3g} [{interval.low:+.3g}, {interval.high:+.3g}] straddles the "
                       f"tolerance -{tolerance:g} with {len(pairs)} images: audit more images")


def status_change(base: CheckRecord, new: CheckRecord | None) -> str | None:
    """"newly failing (was passed)" and the like, or None when the outcome did not get worse."""
    before, after = base["status"], new["status"] if new else "not recorded"
    if after == before:
        return None
    if after == "failed":
        return f"newly failing (was {before})"
    if after == "inconclusive" and before == "passed":
        return "newly inconclusive (was passed)"
    if after in ("skipped", "not recorded"):
        return f"newly {after} (was {before})"
    return None


def regression_message(key: CheckKey, regression: Regression) -> str:
    """The failure line: metric, method, both values, the tolerance, the images that got worst."""
    audit, metric, method = key
    head = (f"regression: {audit}/{metric}{f' {method}' if method else ''} "
            f"{_text(regression.baseline_value)} → {_text(regression.new_value)} "
            f"(tolerance {regression.tolerance:g}{_change_text(regression)})")
    worst = regression.worst(WORST_SHOWN)
    more = ", …" if len(regression.worst(WORST_SHOWN + 1)) > WORST_SHOWN else ""
    text = head + (f"; worst: {', '.join(f'{k} {_text(b)} → {_text(n)}' for k, b, n in worst)}{more}"
                   if worst else "")
    extras = [e for e in (regression.reason, regression.status_change) if e]
    return text + "".join(f"; {e}" for e in extras)


def _change_text(regression: Regression) -> str:
    change, interval = regression.change, regression.interval
    if not math.isfinite(change):
        return ""
    word = "worse" if change < 0 else "better"
    size = abs(change)
    if interval is None:
        return f"; {word} by {size:.3g}"
    low, high = (-interval.high, -interval.low) if change < 0 else (interval.low, interval.high)
    return f"; {word} by {size:.3g} [{low:.3g}, {high:.3g}] over {len(regression.pairs)} images"


def as_check(key: CheckKey, regression: Regression, *, test_id: str, tolerance_source: str) -> Check:
    """The regression as a check of its own (audit "regression"), counted in the verdict like any."""
    audit, metric, method = key
    change = regression.change if math.isfinite(regression.change) else None
    return Check(
        audit=AUDIT, metric=f"{audit}/{metric}", method=method, value=change, threshold=-regression.tolerance,
        direction="higher", passed=regression.outcome == "passed", status=regression.outcome,
        reason=regression_message(key, regression) if regression.outcome != "passed"
        else regression.status_change,
        per_image=regression.changes(), threshold_source=tolerance_source,
        effect=change, interval=regression.interval.as_list() if regression.interval else None,
        control="baseline",
        controls={} if regression.baseline_value is None else {"baseline": regression.baseline_value},
        details={"test": test_id, "compared": {"audit": audit, "metric": metric, "method": method},
                 "metric_direction": regression.direction, "baseline": regression.baseline_value,
                 "new": regression.new_value, "tolerance": regression.tolerance,
                 "images_paired": len(regression.pairs), "status_change": regression.status_change,
                 "pairs": {k: [b, n] for k, (b, n) in regression.pairs.items()},
                 "worst": [{"id": k, "baseline": b, "new": n} for k, b, n in regression.worst(WORST_KEPT)]})


# --------------------------------------------------------------------------- small helpers




def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def _jsonable(value: Any) -> Any:
    """A value as results.json holds it (tuples are lists), so recorded and live settings compare."""
    return json.loads(json.dumps(value))
