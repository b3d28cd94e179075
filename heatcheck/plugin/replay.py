"""Run a whole-set audit test's function again, on values merged from shards.

A merged check must be exactly the check one process would have recorded: the same means,
the same calibrated decision from the same per-image values in the same order, the same
details. Rather than restate each audit's arithmetic, heatcheck.report.merge calls the audit's own
test function with the merged session-fixture values (the model's outputs, the localisation
run, the deletion curves) and the plain stand-ins below, and the function's Gate records the
check into the merged ResultStore, as it does in a pytest session. Part of the pytest plugin:
it imports pytest to tell a skip from a failure.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heatcheck.errors import HeatcheckError
from heatcheck.plugin.gate import Gate
from heatcheck.report.partial import AuditItem
from heatcheck.report.results import Check, ResultStore
from heatcheck.settings import Settings


class ReplayError(HeatcheckError, RuntimeError):
    """A test that cannot be run again on merged values; the message says which and why."""


@dataclass(frozen=True)
class ReplayImages:
    """Stands in for an ImageSet in a merged run: ids and labels, no pixels."""

    spec: str
    ids: tuple[str, ...]
    labels: np.ndarray
    class_names: tuple[str, ...] = ()
    rejected: tuple[dict[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class ReplayProvider:
    """Stands in for the MapProvider: what the shards' provider answered, per method."""

    unavailable_reasons: Mapping[str, str | None] = field(default_factory=dict)
    passes: Mapping[str, int] = field(default_factory=dict)

    def unavailable(self, method: str) -> str | None:
        return self.unavailable_reasons.get(method)

    def passes_per_map(self, method: str) -> int:
        return int(self.passes[method])


_MODULES: dict[str, Any] = {}


def audit_function(item: AuditItem, rootdir: str) -> Callable[..., Any]:
    """The function of ``item``, its module imported from its file (once per file): where the
    shard ran it, or else under the current folder (a merge on another machine, run from a
    checkout of the same commit)."""
    relative = item.nodeid.split("::", 1)[0]
    candidates = [(Path(item.path), Path(rootdir)), (Path.cwd() / relative, Path.cwd())]
    path, root = next(((f, r) for f, r in candidates if f.is_file()), candidates[-1])
    if str(path) not in _MODULES:
        if not path.is_file():
            raise ReplayError(f"{item.nodeid}: its file is neither at {item.path} nor under the current "
                              f"folder: run the merge from the audits' project (the same commit)")
        if str(root) not in sys.path:  # the audits import their fixtures package from the project
            sys.path.insert(0, str(root))
        name = f"heatcheck_replay_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ReplayError(f"{item.nodeid}: {path} cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _MODULES[str(path)] = module
    function: Callable[..., Any] | None = getattr(_MODULES[str(path)], item.function, None)
    if function is None:
        raise ReplayError(f"{item.nodeid}: {path} has no function {item.function}")
    return function


def replay(item: AuditItem, rootdir: str, values: Mapping[str, Any], store: ResultStore,
           settings: Settings) -> None:
    """Call ``item``'s test function with merged ``values``; its outcome lands in ``store`` as
    the plugin records it in a session (a check, a recorded skip, or an error)."""
    function = audit_function(item, rootdir)
    gate = Gate(store, settings, item.nodeid, [], audit=item.family, method=item.method)
    available = {**values, "heatcheck_gate": gate, "heatcheck_settings": settings,
                 "heatcheck_results": store, **item.params}
    missing = [name for name in inspect.signature(function).parameters if name not in available]
    if missing:
        raise ReplayError(f"{item.nodeid} cannot be decided from the shards' values: it needs the "
                          f"fixture '{missing[0]}', which shards do not keep (heatcheck.plugin.shards.KEPT)")
    try:
        function(**{name: available[name] for name in inspect.signature(function).parameters})
    except AssertionError as exc:
        if not _recorded(store, item.nodeid, "failed"):
            _error(store, item, exc)
    except pytest.skip.Exception as exc:
        if not _recorded(store, item.nodeid):
            store.add(Check(audit=item.family, metric=item.metric, method=item.method, value=None,
                            threshold=None, direction=None, passed=None, status="skipped",
                            reason=str(exc.msg), details={"test": item.nodeid}))
    except (Exception, pytest.fail.Exception) as exc:  # noqa: BLE001 -- recorded as the test's error, as pytest does
        _error(store, item, exc)


def _recorded(store: ResultStore, nodeid: str, status: str | None = None) -> bool:
    return any(c.details.get("test") == nodeid and (status is None or c.status == status)
               for c in store.checks)


def _error(store: ResultStore, item: AuditItem, exc: BaseException) -> None:
    message = (str(getattr(exc, "msg", "")) or f"{type(exc).__name__}: {exc}").strip().splitlines()
    store.errors.append({"test": item.nodeid, "when": "call", "message": (message or ["error"])[-1][:500]})
