"""Baseline tolerances measured on your own models: the largest change between equally good ones.

A tolerance says how much worse than the accepted run a check may get before the baseline gate
(heatcheck.checks.baseline) calls it a regression. Its only honest source is measurement:
retrain the accepted model with other seeds (same data, same recipe), audit each on the same
images, and take the largest |mean paired change| between any two of them. heatcheck's own
table (defaults.toml) was measured this way on the bench; ``heatcheck tolerances RUN...`` does
the same arithmetic on a user's runs:

- runs are grouped by image set and audit settings (one group per image seed, say), and every
  two runs of one group are compared with the baseline gate's own comparison
  (``compare_check``: the mean paired change over the images both scored, or value to value
  for a check without per-image values);
- each tolerance is the largest |change| over all those comparisons, rounded up to 0.01;
- per metric, the default is the largest over the CAM methods (whose maps move least between
  retrained models), and every other method gets its own entry where its number is larger;
- the table is printed as TOML for ``[tool.heatcheck.tolerances]``, each default with the
  numbers it came from.

Hold one image seed out, and gate the models against each other on it, before trusting it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from heatcheck.checks.baseline import LABEL_AGREEMENT, check_key, compare_check, tolerance_key
from heatcheck.errors import HeatcheckError
from heatcheck.explain import methods as method_registry
from heatcheck.report.schema import CheckRecord, Results, load_results


class ToleranceRunsError(HeatcheckError, ValueError):
    """The runs given cannot measure tolerances; the message names the runs and says why."""


@dataclass(frozen=True)
class Run:
    """One audited model's results.json, and what it is compared with others by."""

    path: Path
    results: Results

    @property
    def model(self) -> str:
        model = self.results["model"]
        return str(model.get("sha256") or model.get("spec") or self.path)

    @property
    def group(self) -> str:
        """Runs compare only when they audited the same images with the same settings."""
        images = [item.get("id") for item in self.results["images"].get("items", [])]
        settings = self.results["environment"].get("audit_settings", {})
        return json.dumps({"images": images, "settings": settings}, sort_keys=True, default=str)


def load_runs(folders: Sequence[Path]) -> list[Run]:
    """Each folder's (or file's) results.json; ResultsFileError names one that cannot be read."""
    runs = []
    for folder in folders:
        path = folder / "results.json" if folder.is_dir() else folder
        runs.append(Run(path, load_results(path)))
    return runs


def group_runs(runs: Sequence[Run]) -> list[list[Run]]:
    """Runs on the same images with the same settings, each group holding two models or more."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    for members in groups.values():
        seen: dict[str, Path] = {}
        for run in members:
            if run.model in seen:
                raise ToleranceRunsError(f"{seen[run.model]} and {run.path} audited the same model on the "
                                         f"same images: tolerances need runs of different, equally good "
                                         f"models")
            seen[run.model] = run.path
        if len(members) < 2:
            raise ToleranceRunsError(f"{members[0].path} has no partner: every image set (and audit "
                                     f"settings) needs runs of at least two models")
    return list(groups.values())


def spread(groups: Sequence[Sequence[Run]]) -> dict[tuple[str, str | None], float]:
    """(tolerance key, method) → the largest |mean paired change| over every pair of runs of a
    group. Checks skipped in either run, and regression checks, are not compared."""
    largest: dict[tuple[str, str | None], float] = {}
    for members in groups:
        for a, b in itertools.combinations(members, 2):
            others = {check_key(c): c for c in b.results["checks"]}
            for check in a.results["checks"]:
                other = others.get(check_key(check))
                if not _comparable(check) or other is None or not _comparable(other):
                    continue
                change = compare_check(check, other, tolerance=0.0, seed=0, min_images=1).change
                if math.isfinite(change):
                    key = (tolerance_key(check), check["method"])
                    largest[key] = max(largest.get(key, 0.0), abs(change))
    return largest


def _comparable(check: CheckRecord) -> bool:
    return check["status"] != "skipped" and check["audit"] != "regression"


def _rounded_up(value: float) -> float:
    return math.ceil(round(value * 100, 6)) / 100


def tolerance_table(measured: dict[tuple[str, str | None], float]) -> str:
    """The TOML table of ``[tool.heatcheck.tolerances]`` for ``measured`` (see the module doc)."""
    lines = ["[tool.heatcheck.tolerances]"]
    if (LABEL_AGREEMENT, None) in measured:
        value = measured[LABEL_AGREEMENT, None]
        lines.append(f"{LABEL_AGREEMENT} = {_rounded_up(value):.2f}   # largest change measured: {value:.3f}")
    metrics = sorted({metric for metric, method in measured if method is not None})
    for metric in metrics:
        by_method = {method: v for (m, method), v in measured.items() if m == metric and method is not None}
        ordered = method_registry.in_order(list(by_method))
        cams = [by_method[m] for m in ordered
                if (entry := method_registry.REGISTRY.get(m)) is not None and entry.family == "cam"]
        default = _rounded_up(max(cams or by_method.values()))
        numbers = ", ".join(f"{m} {by_method[m]:.3f}" for m in ordered)
        lines += [f"[tool.heatcheck.tolerances.{metric}]", f"default = {default:.2f}   # {numbers}"]
        lines += [f"{m} = {_rounded_up(by_method[m]):.2f}" for m in ordered
                  if _rounded_up(by_method[m]) > default]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``heatcheck tolerances RUN...``: the tolerance table measured on runs of equally good models."""
    parser = argparse.ArgumentParser(
        prog="heatcheck tolerances", description=main.__doc__,
        epilog="Audit each retrained model on the same images (e.g. `pytest audits/ --hc-model m11.keras "
               "--hc-seed 0 --hc-report-dir runs/m11-seed0`), then pass all the report folders.")
    parser.add_argument("runs", nargs="+", type=Path,
                        help="report folders (or results.json files) of the runs")
    args = parser.parse_args(argv)
    try:
        groups = group_runs(load_runs(args.runs))
    except HeatcheckError as exc:
        print(f"heatcheck tolerances: {exc}", file=sys.stderr)
        return 2
    pairs = sum(len(g) * (len(g) - 1) // 2 for g in groups)
    print(f"# {len(args.runs)} runs, {len(groups)} image set(s), {pairs} pair(s) compared: each tolerance is "
          f"the largest |mean paired change|, rounded up to 0.01")
    print(tolerance_table(spread(groups)), end="")
    return 0
