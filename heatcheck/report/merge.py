"""Merge shards' partial results into one results.json and one report, as one process writes them.

``python -m heatcheck merge reports/shard-*/ -o reports/`` (and the pytest-xdist controller,
with its workers' partials) checks that the shards belong together (one line naming the first
difference: model, image set, settings, heatcheck version, a shard missing or given twice),
then builds the whole run's ResultStore:

* per-image values are put back in set order (the shards' blocks are contiguous, in order) and
  the whole-set checks are decided again from them by their own test functions
  (heatcheck.plugin.replay): means, rates, controls and bootstrap intervals are never averaged from
  the shards' own;
* the sample audits' checks (sanity, stability) come whole from the shard that ran them;
* images' rows, errors and model passes are put together, the gallery is chosen again among
  the shards' candidates (heatcheck.report.gallery_choice).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from heatcheck.checks.faithfulness import SetCurves
from heatcheck.checks.localisation import LocalisationRun, fraction_summary
from heatcheck.data.sharding import SAMPLE_FAMILIES
from heatcheck.errors import HeatcheckError
from heatcheck.report.gallery_choice import is_gallery_key, merge_galleries
from heatcheck.report.partial import (
    LOCAL_SETTINGS,
    Partial,
    PartialError,
    find_partials,
    read_partial,
    settings_from_json,
)
from heatcheck.report.results import Check, ResultStore
from heatcheck.settings import Settings


class MergeError(HeatcheckError, ValueError):
    """Shards that cannot be merged; the message is one line saying why."""


@dataclasses.dataclass
class Merged:
    """The whole run put together from its shards."""

    store: ResultStore
    settings: Settings
    shards: int


# Outcomes of a whole-set test on a shard that contributed its block's values to the merge.
CONTRIBUTED = ("computed", "empty")


def merge_folders(folders: Iterable[Path], *, replay: bool = True) -> Merged:
    """Read, check and merge the partials in ``folders`` (see the module docstring)."""
    try:
        partials = [read_partial(path) for path in find_partials(folders)]
    except PartialError as exc:
        raise MergeError(str(exc)) from None
    return merge(partials, replay=replay)


def merge(partials: Sequence[Partial], *, replay: bool = True) -> Merged:
    """The whole run from its shards' partials (``replay=False`` skips deciding the whole-set
    checks again: for tests of the bookkeeping)."""
    ordered = check_compatible(partials)
    first = next((p for p in ordered if not p.idle), ordered[0])
    settings = settings_from_json(first.settings)
    store = _store(ordered, settings)
    values = _values(ordered, store)
    for item in first.items:
        if item.family in SAMPLE_FAMILIES:
            _copy_outcome(store, item.nodeid, [p for p in ordered if item.nodeid in p.outcomes])
            continue
        outcomes = [p.outcomes.get(item.nodeid, {}).get("outcome") for p in ordered]
        if replay and all(o in CONTRIBUTED for o in outcomes) and "computed" in outcomes:
            from heatcheck.plugin.replay import ReplayError
            from heatcheck.plugin.replay import replay as run_again

            try:
                run_again(item, first.rootdir, values, store, settings)
            except ReplayError as exc:
                raise MergeError(str(exc)) from None
        elif replay:
            _copy_outcome(store, item.nodeid, [p for p in ordered if p.outcomes.get(item.nodeid, {})
                                               .get("outcome") not in CONTRIBUTED])
    _session_errors(store, ordered, {i.nodeid for i in first.items})
    store.input_errors = list(dict.fromkeys(line for p in ordered for line in p.input_errors))
    store.seal([i.family for i in first.items])
    return Merged(store, settings, first.shard.count)


def check_compatible(partials: Sequence[Partial]) -> list[Partial]:
    """The partials in shard order, or MergeError naming the first reason they do not belong together."""
    if not partials:
        raise MergeError("no shards to merge")
    first = partials[0]
    for p in partials[1:]:
        if p.shard.count != first.shard.count:
            raise MergeError(f"shards come from different splits: {first.name} ({_where(first)}) and "
                             f"{p.name} ({_where(p)})")
    seen: dict[int, Partial] = {}
    for p in partials:
        if p.shard.index in seen:
            raise MergeError(f"{p.name} given twice: {_where(seen[p.shard.index])} and {_where(p)}")
        seen[p.shard.index] = p
    missing = [i for i in range(first.shard.count) if i not in seen]
    if missing:
        raise MergeError(f"shard{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(f'{i}/{first.shard.count}' for i in missing)} missing "
                         f"(have {', '.join(str(p.shard) for p in sorted(partials, key=_index))})")
    ordered = [seen[i] for i in range(first.shard.count)]
    reference = next((p for p in ordered if not p.idle), ordered[0])
    for p in ordered:
        if p is not reference:
            _same(reference, p)
    for p in ordered:
        if p.results["status"] == "incomplete" or p.results["not_run"]:
            raise MergeError(f"{p.name} did not finish ({_where(p)}): run it again before merging")
    return ordered


def _index(p: Partial) -> int:
    return p.shard.index


def _where(p: Partial) -> str:
    return str(p.source.parent if p.source is not None else "?")


def _same(a: Partial, b: Partial) -> None:
    """MergeError when ``b`` was not made by the same audit as ``a``."""
    commits = {a.git_commit, b.git_commit} - {"unknown"}
    if a.heatcheck != b.heatcheck or len(commits) > 1:
        raise MergeError(f"shards come from different heatcheck versions: {a.name} {a.heatcheck} "
                         f"(commit {a.git_commit[:12]}) vs {b.name} {b.heatcheck} "
                         f"(commit {b.git_commit[:12]})")
    if not b.idle:  # a shard left with no test loaded no model and no image: its settings tell
        ma, mb = a.results["model"], b.results["model"]
        if (ma.get("spec"), ma.get("sha256")) != (mb.get("spec"), mb.get("sha256")):
            raise MergeError(f"shards audit different models: {a.name} {_model(ma)} vs {b.name} {_model(mb)}")
        ia, ib = a.results["images"], b.results["images"]
        if (ia.get("spec"), ia.get("count"), a.images_fingerprint) != (ib.get("spec"), ib.get("count"),
                                                                       b.images_fingerprint):
            raise MergeError(f"shards audit different image sets: {a.name} {ia.get('spec')} "
                             f"({ia.get('count')} images) vs {b.name} {ib.get('spec')} "
                             f"({ib.get('count')} images)")
    _same_settings(a, b)
    if [i.nodeid for i in a.items] != [i.nodeid for i in b.items]:
        only = sorted({i.nodeid for i in a.items} ^ {i.nodeid for i in b.items}) or ["(the same tests, "
                                                                                     "in another order)"]
        raise MergeError(f"shards ran different audits: {a.name} and {b.name} differ in {only[0]}")


def _same_settings(a: Partial, b: Partial) -> None:
    """MergeError naming the first setting that differs (of those that can change a number)."""
    for key in sorted(set(a.settings) | set(b.settings)):
        if key not in LOCAL_SETTINGS and a.settings.get(key) != b.settings.get(key):
            raise MergeError(f"shards ran with different settings: {key} is {_short(a.settings.get(key))} "
                             f"on {a.name} but {_short(b.settings.get(key))} on {b.name}")


def _model(model: dict[str, Any]) -> str:
    return f"{model.get('spec')} (sha256 {str(model.get('sha256'))[:12]}…)"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _store(ordered: Sequence[Partial], settings: Settings) -> ResultStore:
    """The whole run's ResultStore, checks aside: model, images, environment, passes, arrays."""
    first = ordered[0].results
    images = {k: v for k, v in first["images"].items() if k not in ("items", "mask_fraction")}
    if any("items" in p.results["images"] for p in ordered):
        images["items"] = [row for p in ordered for row in p.results["images"].get("items", [])]
    environment = dict(first["environment"])
    walls = [p.results["environment"].get("wall_s") for p in ordered]
    starts = [p.results["environment"].get("started_utc") for p in ordered]
    environment.update(shards=len(ordered), wall_s=max((w for w in walls if w is not None), default=None),
                       started_utc=min((s for s in starts if s), default=None))
    passes: dict[str, int] = {}
    for p in ordered:
        for key, count in p.results["passes"].items():
            if key != "unshared":
                passes[key] = passes.get(key, 0) + int(count)
    fatal = next((p.results["fatal"] for p in ordered if p.results["fatal"]), None)
    return ResultStore(model=dict(first["model"]), images=images, environment=environment, passes=passes,
                       arrays=_arrays(ordered, images.get("items", [])), fatal=fatal,
                       fail_inconclusive=settings.fail_inconclusive, fail_on_caveats=settings.fail_on_caveats)


def _arrays(ordered: Sequence[Partial], items: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The gallery chosen again among the shards' candidates; other arrays (the sanity figure)
    from the one shard that made them."""
    out = merge_galleries([p.arrays for p in ordered], [row["id"] for row in items],
                          np.array([bool(row["correct"]) for row in items], bool)) if items else {}
    owners: dict[str, Partial] = {}
    for p in ordered:
        for key, value in p.arrays.items():
            if is_gallery_key(key):
                continue
            if key in owners:
                raise MergeError(f"the report's array {key!r} comes from two shards: {owners[key].name} "
                                 f"and {p.name}")
            owners[key] = p
            out[key] = value
    return out


# What a merged session fixture does to results.json besides its value, as its fixture does in
# one process (audits/test_localisation.py summarises the set's mask fractions).
FINISHERS: dict[str, Callable[[Any, ResultStore], None]] = {}


def _finish_localisation(run: LocalisationRun, store: ResultStore) -> None:
    run.settle_shuffled()
    store.images["mask_fraction"] = fraction_summary(run.fractions)


FINISHERS["localisation_run"] = _finish_localisation


def _values(ordered: Sequence[Partial], store: ResultStore) -> dict[str, Any]:
    """Every kept fixture value, its shards' parts put together in set order, and the stand-ins
    for the image sets and the map provider (heatcheck.plugin.replay)."""
    from heatcheck.plugin.replay import ReplayImages, ReplayProvider

    values: dict[str, Any] = {}
    names = {name for p in ordered for name in p.values}
    for name in sorted(names):
        parts = [p.values[name] for p in ordered if name in p.values]
        values[name] = combine(parts, name)
        if name in FINISHERS:
            FINISHERS[name](values[name], store)
    images = store.images
    items = images.get("items", [])
    spec = str(images.get("spec"))
    values["heatcheck_labelled_images"] = ReplayImages(spec, tuple(r["id"] for r in items),
                                             np.array([r["label"] for r in items], np.int64))
    if "audit_ids" in values:
        audited = ReplayImages(spec, tuple(values.pop("audit_ids")), np.asarray(values.pop("audit_labels")))
        values["heatcheck_images"] = values["heatcheck_audit_set"] = audited
    provider = next((p.provider for p in ordered if p.provider), None)
    if provider is not None:
        values["heatcheck_provider"] = ReplayProvider(provider["unavailable"], provider["passes_per_map"])
    return values


# Fields of kept values that are not one entry per image (the same on every shard), besides
# scalars and strings, which always must be.
SHARED_FIELDS: dict[type, tuple[str, ...]] = {SetCurves: ("fractions",)}


def combine(parts: Sequence[Any], where: str) -> Any:
    """Shards' parts of one value as the whole set's: arrays and sequences (one entry per image)
    joined in shard order, mappings and dataclasses field by field, anything else (and the
    fields in :data:`SHARED_FIELDS`) the same on every shard."""
    first = parts[0]
    if isinstance(first, np.ndarray):
        shapes = {p.shape[1:] for p in parts}
        if len(shapes) > 1:
            raise MergeError(f"{where} has rows of different shapes on different shards: {sorted(shapes)}")
        return np.concatenate(parts)
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        shared = SHARED_FIELDS.get(type(first), ())
        return type(first)(**{f.name: (_same_everywhere if f.name in shared else combine)(
            [getattr(p, f.name) for p in parts], f"{where}.{f.name}") for f in dataclasses.fields(first)})
    if isinstance(first, dict):
        keys = [list(p) for p in parts]
        if any(k != keys[0] for k in keys):
            raise MergeError(f"{where} has different keys on different shards: {keys[0]} vs "
                             f"{next(k for k in keys if k != keys[0])}")
        return {k: combine([p[k] for p in parts], f"{where}.{k}") for k in keys[0]}
    if isinstance(first, tuple | list):
        joined = [v for p in parts for v in p]
        return tuple(joined) if isinstance(first, tuple) else joined
    if any(p != first for p in parts):
        other = next(p for p in parts if p != first)
        raise MergeError(f"{where} differs between shards: {first!r} vs {other!r}")
    return first


def _same_everywhere(parts: Sequence[Any], where: str) -> Any:
    """The one value every shard has (arrays compared element by element)."""
    first = parts[0]
    for other in parts[1:]:
        same = np.array_equal(first, other) if isinstance(first, np.ndarray) else other == first
        if not same:
            raise MergeError(f"{where} differs between shards: {first!r} vs {other!r}")
    return first


def _copy_outcome(store: ResultStore, nodeid: str, sources: Sequence[Partial]) -> None:
    """A test's checks and errors as the shard that ran it (or first stopped it) recorded them."""
    for p in sources[:1]:
        for c in p.results["checks"]:
            if c["details"].get("test") == nodeid:
                store.add(Check.from_json(c))
        store.errors.extend(e for e in p.results["errors"] if e["test"] == nodeid)


def _session_errors(store: ResultStore, ordered: Sequence[Partial], tests: set[str]) -> None:
    """Errors that belong to no audit test (a whole-run error), once each."""
    for p in ordered:
        for error in p.results["errors"]:
            if error["test"] not in tests and error not in store.errors:
                store.errors.append(error)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m heatcheck merge SHARD_DIR... -o OUT``: one results.json and report from shards."""
    parser = argparse.ArgumentParser(prog="python -m heatcheck merge", description=main.__doc__)
    parser.add_argument("shards", nargs="+", type=Path,
                        help="the shards' report folders (each holding heatcheck-partial-I-of-N.json)")
    parser.add_argument("-o", "--output", dest="output", type=Path, default=Path("reports"),
                        help="where results.json and index.html go (default: reports)")
    args = parser.parse_args(argv)
    try:
        merged = merge_folders(args.shards)
    except MergeError as exc:
        print(f"heatcheck merge: {exc}", file=sys.stderr)
        return 2
    write_merged(merged, args.output)
    store = merged.store
    print(f"heatcheck verdict: {store.verdict().upper()} ({merged.shards} shards merged) — report: "
          f"{args.output / 'index.html'}")
    return 0 if store.verdict() == "pass" else 1


def write_merged(merged: Merged, report_dir: Path) -> None:
    """results.json, maps.npz and index.html of a merged run."""
    from heatcheck.report import write_report

    merged.store.write(report_dir)
    compare = merged.settings.compare
    write_report(report_dir, colormap=merged.settings.colormap,
                 compare_path=Path(compare) if compare else None)
