"""The gate: record a metric's value against its threshold, then pass or fail the test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from heatcheck.metrics.base import Direction
from heatcheck.results import Check, ResultStore
from heatcheck.settings import Settings


class Gate:
    """Turns metric values into recorded checks and assertion failures.

    Failure messages name the audit, the method, the value, the threshold and the worst
    images, so that the pytest line alone tells an auditor where to look.
    """

    def __init__(self, store: ResultStore, settings: Settings, test_id: str) -> None:
        self.store = store
        self.settings = settings
        self.test_id = test_id

    def check(self, audit: str, metric: str, method: str | None, value: float, *,
              direction: Direction, per_image: np.ndarray | None = None,
              ids: Sequence[str] = (), threshold_key: str | None = None,
              details: dict[str, Any] | None = None) -> Check:
        """Record ``value`` for (audit, metric, method) and raise AssertionError if it fails."""
        __tracebackhide__ = True
        key = threshold_key or metric
        threshold = self.settings.thresholds.get(key, method)
        meets = value >= threshold if direction == "higher" else value <= threshold
        passed = bool(np.isfinite(value)) and bool(meets)
        scores = {} if per_image is None else {i: float(v) for i, v in zip(ids, per_image, strict=True)}
        check = self.store.add(Check(
            audit=audit, metric=metric, method=method, value=float(value), threshold=threshold,
            direction=direction, passed=passed, status="passed" if passed else "failed",
            per_image=scores, details={"test": self.test_id, **(details or {})},
            threshold_source=self.settings.thresholds.source_of(key, method)))
        if not passed:
            raise AssertionError(self._message(check))
        return check

    def skip(self, audit: str, metric: str, method: str | None, reason: str) -> Check:
        """Record a check that could not run; the caller then skips the test with ``reason``."""
        return self.store.add(Check(
            audit=audit, metric=metric, method=method, value=None, threshold=None,
            direction="higher", passed=None, status="skipped", reason=reason,
            details={"test": self.test_id}))

    @staticmethod
    def _message(check: Check) -> str:
        op = "≥" if check.direction == "higher" else "≤"
        worst = sorted(check.per_image.items(), key=lambda kv: kv[1],
                       reverse=check.direction == "lower")[:3]
        worst_text = ", ".join(f"{k}={v:.3g}" for k, v in worst)
        method = f" {check.method}" if check.method else ""
        extra = check.details.get("message")
        return (f"{check.audit}/{check.metric}{method}: {check.value:.3f}, needs {op} "
                f"{check.threshold:g}" + (f"; worst images: {worst_text}" if worst_text else "")
                + (f"; {extra}" if extra else ""))
