"""The pytest side of the model-validation gate (heatcheck.checks.baseline): ``--hc-baseline`` checked
before TensorFlow loads, one regression test per compared check after every audit, the image
set checked once predictions are made, ``--hc-save-baseline``, and the terminal summary.

Part of the pytest plugin (it goes to heatcheck/plugin/ when the package is split); the
comparisons themselves are plain functions in heatcheck.checks.baseline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from heatcheck.checks.baseline import (
    AUDIT,
    Baseline,
    BaselineError,
    CheckKey,
    as_check,
    audit_settings,
    check_key,
    check_settings,
    compare_check,
    image_set_difference,
    image_set_notes,
    load_baseline,
    save_baseline,
    tolerance_key,
    tolerance_table_problems,
    unknown_metrics,
)
from heatcheck.plugin import AUDIT_INFO_KEY, AUDIT_ITEMS_KEY, SETTINGS_KEY, STORE_KEY
from heatcheck.plugin.gate import INCONCLUSIVE_PROPERTY
from heatcheck.report.results import Check
from heatcheck.report.schema import CheckRecord

BASELINE_KEY = pytest.StashKey[Baseline]()


def configure_baseline(config: pytest.Config) -> None:
    """Load and check ``--hc-baseline`` (file, schema, settings, tolerances) before anything imports
    TensorFlow, refusing with one usage-error line; register the session's hooks."""
    settings = config.stash[SETTINGS_KEY]
    if not settings.baseline and not settings.save_baseline:
        return
    baseline = None
    if settings.baseline:
        try:
            baseline = check_settings(load_baseline(_resolve(config, settings.baseline)),
                                      audit_settings(settings))
        except BaselineError as exc:
            raise pytest.UsageError(f"heatcheck: {exc}") from None
        # With both refusals every check the baseline holds has a tolerance: its metric has a
        # threshold, and every metric with a threshold has a default tolerance.
        problems = tolerance_table_problems(settings.thresholds, settings.tolerances)
        if problems:
            raise pytest.UsageError("heatcheck: --hc-baseline: [tool.heatcheck.tolerances] needs "
                                    f"one tolerance "
                                    f"per gated metric: {'; '.join(problems)}")
        unknown = unknown_metrics(baseline, settings.thresholds)
        if unknown:
            raise pytest.UsageError(f"heatcheck: --hc-baseline {baseline.path}: records "
                                    f"{', '.join(unknown)}, "
                                    f"which this heatcheck's audits do not (an older heatcheck?): accept a "
                                    f"run of this one")
        config.stash[BASELINE_KEY] = baseline
        config.stash[STORE_KEY].baseline = baseline.describe()
    config.pluginmanager.register(BaselineSession(config, baseline), "heatcheck-baseline")


def _resolve(config: pytest.Config, path: str) -> Path:
    # Like --hc-report-dir: a relative path is read from the rootdir, whoever invokes pytest.
    given = Path(path)
    return given if given.is_absolute() else config.rootpath / given


def refuse_other_image_set(config: pytest.Config, items: Sequence[Mapping[str, Any]]) -> None:
    """Raise BaselineError (one line) when the baseline audited other images than ``items``
    (results.json's images.items, with their content hashes); note what could not be checked."""
    baseline = config.stash.get(BASELINE_KEY, None)
    if baseline is None:
        return
    difference = image_set_difference(baseline, items)
    if difference is not None:
        raise BaselineError(f"--hc-baseline {baseline.path}: {difference}")
    store = config.stash[STORE_KEY]
    if store.baseline is not None:
        store.baseline["notes"] = [*store.baseline.get("notes", []), *image_set_notes(baseline)]


class RegressionFound(AssertionError):
    """A regression check that failed; its message is the whole report line."""


class RegressionItem(pytest.Item):
    """One baseline check compared with the same check of this run, after every audit ran."""

    def __init__(self, *, baseline_check: CheckRecord, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.baseline_check = baseline_check
        self.key: CheckKey = check_key(baseline_check)
        self.add_marker("heatcheck_audit")

    def runtest(self) -> None:
        __tracebackhide__ = True
        store, settings = self.config.stash[STORE_KEY], self.config.stash[SETTINGS_KEY]
        new = next((c for c in store.checks if c.audit != AUDIT
                    and (c.audit, c.metric, c.method) == self.key), None)
        if new is None:
            reason = "not run in this session (deselected, or its test errored): nothing to compare"
            self._skip(reason)
        name, method = tolerance_key(self.baseline_check), self.key[2]
        regression = compare_check(self.baseline_check, None if new is None else new.to_json(),
                                   tolerance=settings.tolerances.get(name, method),
                                   seed=settings.seed, min_images=settings.min_images)
        check = store.add(as_check(self.key, regression, test_id=self.nodeid,
                                   tolerance_source=settings.tolerances.source_of(name, method)))
        if check.status == "inconclusive":
            self.user_properties.append(INCONCLUSIVE_PROPERTY)
        if check.status == "failed" or (check.status == "inconclusive" and settings.fail_inconclusive):
            raise RegressionFound(check.reason)

    def _skip(self, reason: str) -> None:
        audit, metric, method = self.key
        self.config.stash[STORE_KEY].add(Check(
            audit=AUDIT, metric=f"{audit}/{metric}", method=method, value=None, threshold=None,
            direction=None, passed=None, status="skipped", reason=reason, details={"test": self.nodeid}))
        pytest.skip(reason)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> Any:
        if isinstance(excinfo.value, RegressionFound):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        audit, metric, method = self.key
        return self.path, None, f"regression {audit}/{metric}{f' {method}' if method else ''}"


class BaselineSession:
    """Session hooks of the gate: add the regression tests, save the run, summarise."""

    def __init__(self, config: pytest.Config, baseline: Baseline | None) -> None:
        self.config = config
        self.baseline = baseline
        self.saved: str | None = None

    @pytest.hookimpl(trylast=True)  # after deselection and after the plugin recorded the audits
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        if self.baseline is None or not config.stash[AUDIT_ITEMS_KEY]:
            return
        info = config.stash[AUDIT_INFO_KEY]
        selected = {(family, method) for family, _, method in info.values()}
        families = {family for family, _ in selected}
        for base in self.baseline.checks:
            audit, metric, method = check_key(base)
            if (audit, method) not in selected and not (method is None and audit in families):
                continue
            name = f"{audit}/{metric}" + (f"[{method}]" if method else "")
            item = RegressionItem.from_parent(session, name=name, nodeid=f"regression::{name}",
                                              path=config.rootpath / AUDIT, baseline_check=base)
            items.append(item)
            config.stash[AUDIT_ITEMS_KEY].append(item.nodeid)
            info[item.nodeid] = (AUDIT, f"{audit}/{metric}", method)

    @pytest.hookimpl(trylast=True)  # after the plugin wrote the final results.json
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        target = self.config.stash[SETTINGS_KEY].save_baseline
        if not target or not self.config.stash[AUDIT_ITEMS_KEY]:
            return
        store = self.config.stash[STORE_KEY]
        if store.verdict() == "incomplete" or store.fatal:
            self.saved = "not saved: the run is incomplete; a baseline must be a complete run"
            return
        report_dir = self.config.stash[SETTINGS_KEY].report_dir
        path = save_baseline(report_dir / "results.json", _resolve(self.config, target))
        self.saved = f"saved to {path} (verdict {store.verdict().upper()})"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        store = self.config.stash[STORE_KEY]
        for line in summary_lines(store.checks, store.baseline):
            terminalreporter.write_line(f"heatcheck baseline: {line}")
        if self.saved:
            terminalreporter.write_line(f"heatcheck baseline: {self.saved}")


def summary_lines(checks: Sequence[Check], described: Mapping[str, Any] | None) -> list[str]:
    """What the comparison found: counts, then the new failures and newly inconclusive checks.

    Args:
        described: results.json's "baseline" (None: no baseline was given).
    """
    if described is None:
        return []
    compared = [c for c in checks if c.audit == AUDIT]
    counts = {s: sum(c.status == s for c in compared)
              for s in ("failed", "inconclusive", "passed", "skipped")}
    not_run = f", {counts['skipped']} not run" if counts["skipped"] else ""
    lines = [f"{described['path']} ({described['model']}, {described['started_utc']}): {len(compared)} "
             f"checks compared, {counts['failed']} regressed, {counts['inconclusive']} inconclusive, "
             f"{counts['passed']} within tolerance{not_run}"]
    changes: dict[str, list[str]] = {}
    for check in compared:
        note = check.details.get("status_change")
        if note:
            kind = note.split(" (")[0]
            changes.setdefault(kind, []).append(f"{check.metric}{f' {check.method}' if check.method else ''} "
                                                f"({note.split(' (', 1)[1]}")
    lines += [f"{kind}: {', '.join(names)}" for kind, names in changes.items()]
    return lines + [f"note: {note}" for note in described["notes"]]
