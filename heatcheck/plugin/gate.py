"""The gate: record a metric's value against its threshold, then pass or fail the test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from heatcheck.checks.decision import Decision
from heatcheck.metrics.base import Direction
from heatcheck.report.results import Check, ResultStore
from heatcheck.settings import Settings

# Carried on the test's report (user_properties) so the plugin can show an inconclusive check
# as its own outcome in the terminal, not as a plain pass.
INCONCLUSIVE_PROPERTY = ("heatcheck_outcome", "inconclusive")


class Gate:
    """Turns metric values into recorded checks and assertion failures.

    Failure messages name the audit, the method, the value, the threshold and the worst
    images, so that the pytest line alone tells an auditor where to look.
    """

    def __init__(self, store: ResultStore, settings: Settings, test_id: str,
                 user_properties: list[tuple[str, object]] | None = None, *,
                 audit: str = "custom", method: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.test_id = test_id
        self.user_properties = user_properties if user_properties is not None else []
        self.audit = audit  # the test's audit family (its module's name), for check()
        self.method = method  # the test's heatcheck_method, if it takes one

    def check(self, metric: str, value: float, *, threshold: float | None = None,
              direction: Direction = "higher", per_image: np.ndarray | None = None,
              ids: Sequence[str] = (), details: dict[str, Any] | None = None) -> Check:
        """The public way to write an audit: gate ``value`` of ``metric`` for this test's audit
        and method, against ``threshold`` (else ``[tool.heatcheck.thresholds]``), and record it
        in the verdict, results.json and the report like every built-in check."""
        __tracebackhide__ = True
        return self.record(self.audit, metric, self.method, value, direction=direction,
                           per_image=per_image, ids=ids, details=details, threshold=threshold)

    def record(self, audit: str, metric: str, method: str | None, value: float, *,
               direction: Direction, per_image: np.ndarray | None = None,
               ids: Sequence[str] = (), threshold_key: str | None = None,
               details: dict[str, Any] | None = None, threshold: float | None = None) -> Check:
        """Record ``value`` for (audit, metric, method) and raise AssertionError if it fails."""
        __tracebackhide__ = True
        key = threshold_key or metric
        if threshold is None:
            threshold, source = self.settings.thresholds.get(key, method), None
        else:
            source = "test"
        meets = value >= threshold if direction == "higher" else value <= threshold
        passed = bool(np.isfinite(value)) and bool(meets)
        scores = {} if per_image is None else {i: float(v) for i, v in zip(ids, per_image, strict=True)}
        check = self.store.add(Check(
            audit=audit, metric=metric, method=method, value=float(value), threshold=threshold,
            direction=direction, passed=passed, status="passed" if passed else "failed",
            per_image=scores, details={"test": self.test_id, **(details or {})},
            threshold_source=source or self.settings.thresholds.source_of(key, method)))
        if not passed:
            raise AssertionError(self._message(check))
        return check

    def decide(self, audit: str, metric: str, method: str | None, decision: Decision, *,
               direction: Direction, per_image: np.ndarray, ids: Sequence[str],
               controls: dict[str, float], details: dict[str, Any] | None = None) -> Check:
        """Record a calibrated check (heatcheck.checks.decision) and fail the test when it failed.

        ``value`` is the method's mean score in the metric's own direction; the threshold is
        the margin over the strongest control. An inconclusive check does not fail the test
        unless the settings make inconclusive checks fail the gate.
        """
        __tracebackhide__ = True
        sign = 1.0 if direction == "higher" else -1.0
        scores = {i: float(v) for i, v in zip(ids, per_image, strict=True)}
        check = self.store.add(Check(
            audit=audit, metric=metric, method=method, value=sign * decision.score,
            threshold=decision.margin, direction=direction, passed=decision.outcome == "passed",
            status=decision.outcome, reason=decision.reason, per_image=scores,
            details={"test": self.test_id, "images_scored": decision.images,
                     "score_interval": sorted([sign * decision.score_interval.low,
                                               sign * decision.score_interval.high]),
                     "interval_level": decision.interval.level, **(details or {})},
            threshold_source=self.settings.thresholds.source_of(metric, method),
            effect=decision.effect, interval=decision.interval.as_list(), control=decision.control,
            controls=controls))
        if decision.outcome == "inconclusive":
            self.user_properties.append(INCONCLUSIVE_PROPERTY)
        if decision.outcome == "failed" or (
                decision.outcome == "inconclusive" and self.settings.fail_inconclusive):
            raise AssertionError(self._message(check))
        return check

    def require(self, reason: str | None, metric: str) -> None:
        """Skip this test's check of ``metric`` (for its audit and method), recording why, when
        ``reason`` says it cannot run; a skipped check is never silent."""
        __tracebackhide__ = True
        if reason is not None:
            self.skip(self.audit, metric, self.method, reason)
            pytest.skip(reason)

    def skip(self, audit: str, metric: str, method: str | None, reason: str) -> Check:
        """Record a check that could not run; the caller then skips the test with ``reason``."""
        return self.store.add(Check(
            audit=audit, metric=metric, method=method, value=None, threshold=None,
            direction=None, passed=None, status="skipped", reason=reason,
            details={"test": self.test_id}))

    @staticmethod
    def _message(check: Check) -> str:
        op = "≥" if check.direction == "higher" else "≤"
        worst = sorted(check.per_image.items(), key=lambda kv: kv[1],
                       reverse=check.direction == "lower")[:3]
        worst_text = ", ".join(f"{k}={v:.3g}" for k, v in worst)
        method = f" {check.method}" if check.method else ""
        extra = check.details.get("message")
        if check.interval is not None:  # a calibrated check: a margin over the strongest control
            low, high = check.interval
            head = (f"{check.audit}/{check.metric}{method} {check.status.upper()}: {check.value:.3f}, "
                    f"leads {check.control or 'chance'} by {check.effect:.3f} "
                    f"[{low:.3f}, {high:.3f}], needs ≥ {check.threshold:g}")
            return head + (f"; {check.reason}" if check.reason else "") + (
                f"; worst images: {worst_text}" if worst_text else "")
        return (f"{check.audit}/{check.metric}{method}: {check.value:.3f}, needs {op} "
                f"{check.threshold:g}" + (f"; worst images: {worst_text}" if worst_text else "")
                + (f"; {extra}" if extra else ""))
