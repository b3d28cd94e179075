"""What a shard writes, and reading it back: a shard's partial results.

A shard (``--hc-shard I/N``, or a pytest-xdist worker) does not decide the whole-set checks: it
keeps what they are decided from. Its partial is two files in its report folder,
``heatcheck-partial-I-of-N.json`` and ``.npz``:

* the shard's ResultStore as results.json would hold it (model, images, environment, the
  checks of the sample audits it ran whole, errors, passes), with the per-image rows of its
  block (``images.items``);
* every collected audit test (its file, function and parameters, in run order) and what it
  did on this shard (``computed``, ``passed``, ``failed``, ``skipped``, ``error``, ``empty``);
* the per-image values of the session fixtures that the whole-set tests read (the model's
  outputs, the localisation scores and controls, the deletion curves) for the shard's block,
  at full precision (arrays in the .npz, never rounded as results.json rounds them);
* the Settings, the heatcheck version and commit and a fingerprint of the image set, which
  heatcheck.report.merge compares before it merges anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from heatcheck.data.sharding import Shard
from heatcheck.errors import HeatcheckError
from heatcheck.report import schema
from heatcheck.report.results import atomic_write
from heatcheck.settings import Profile, Settings, Thresholds

SCHEMA = "heatcheck-partial/1"
PREFIX = "heatcheck-partial-"
# Settings that change where files go or how the page looks, never a number: shards may differ.
LOCAL_SETTINGS = frozenset({"report_dir", "cache_dir", "cache_max_mb", "compare", "colormap"})


class PartialError(HeatcheckError, ValueError):
    """A partial that cannot be read; the message names the file."""


def file_stem(shard: Shard) -> str:
    return f"{PREFIX}{shard.index}-of-{shard.count}"


@dataclass(frozen=True)
class AuditItem:
    """One collected audit test, enough to run its function again on merged values."""

    nodeid: str
    path: str  # the test module's file, absolute
    function: str
    params: dict[str, Any]
    family: str
    metric: str
    method: str | None


@dataclass
class Partial:
    """A shard's partial results (see the module docstring)."""

    shard: Shard
    heatcheck: str
    git_commit: str
    rootdir: str  # the audits' project (its folder goes on sys.path to import their modules again)
    settings: dict[str, Any]
    results: schema.Results
    items: list[AuditItem]
    outcomes: dict[str, dict[str, str]]
    values: dict[str, Any]  # fixture name → its value for the block (arrays unpacked)
    provider: dict[str, Any]  # the map provider's answers the test functions ask for
    blocks: dict[str, list[int]]  # "labelled" / "audited" → [start, stop) in the whole set
    images_fingerprint: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # the report's arrays (gallery, sanity)
    input_errors: list[str] = field(default_factory=list)  # the one-line input errors it met
    source: Path | None = None  # the file it was read from

    @property
    def name(self) -> str:
        return f"shard {self.shard}"

    @property
    def idle(self) -> bool:
        """Whether the shard ran no audit test (they all fell to other shards)."""
        return not self.outcomes


def images_fingerprint(ids: Iterable[str], labels: Iterable[int]) -> str:
    """A hash of an image set's ids and labels, in order: shards of one set share it."""
    digest = hashlib.sha256()
    for image_id, label in zip(ids, labels, strict=True):
        digest.update(f"{image_id}\0{int(label)}\n".encode())
    return digest.hexdigest()


def settings_to_json(settings: Settings) -> dict[str, Any]:
    """Every Settings field as JSON (profiles and threshold tables spelled out)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        if isinstance(value, Profile):
            value = dataclasses.asdict(value)
        elif isinstance(value, Thresholds):
            value = {"values": {k: dict(v) for k, v in value.values.items()}, "source": dict(value.source),
                     "kind": value.kind}
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def settings_from_json(data: Mapping[str, Any]) -> Settings:
    """The Settings :func:`settings_to_json` wrote (each field read back as the type of its default)."""
    defaults = Settings()
    values = dict(data)
    for name, value in data.items():
        default = getattr(defaults, name, None)
        if isinstance(default, Profile):
            values[name] = Profile(**value)
        elif isinstance(default, Thresholds):
            values[name] = Thresholds(
                MappingProxyType({k: MappingProxyType(dict(v)) for k, v in value["values"].items()}),
                MappingProxyType(dict(value["source"])), kind=value["kind"])
        elif isinstance(default, tuple):
            values[name] = tuple(value)
        elif isinstance(default, Path) or name in ("report_dir", "cache_dir"):
            values[name] = None if value is None else Path(value)
    return Settings(**values)


def pack(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON, its arrays moved into ``arrays`` (referred to by key); dataclasses of
    heatcheck are kept with their class so that :func:`unpack` rebuilds them."""
    if isinstance(value, np.ndarray):
        key = f"value/{len(arrays)}"
        arrays[key] = value
        return {"__array__": key}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: pack(getattr(value, f.name), arrays) for f in dataclasses.fields(value)}}
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise PartialError(f"cannot keep a mapping with keys {sorted(map(repr, value))[:3]} in a partial")
        return {"__dict__": {k: pack(v, arrays) for k, v in value.items()}}
    if isinstance(value, tuple | list):
        return {"__list__": [pack(v, arrays) for v in value], "tuple": isinstance(value, tuple)}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise PartialError(f"cannot keep a {type(value).__name__} in a partial")


def unpack(tree: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """The value :func:`pack` wrote."""
    if not isinstance(tree, dict):
        return tree
    if "__array__" in tree:
        return arrays[tree["__array__"]]
    if "__dict__" in tree:
        return {k: unpack(v, arrays) for k, v in tree["__dict__"].items()}
    if "__list__" in tree:
        items = [unpack(v, arrays) for v in tree["__list__"]]
        return tuple(items) if tree.get("tuple") else items
    module, _, name = tree["__dataclass__"].partition(":")
    if not module.startswith("heatcheck."):  # a partial names classes: only heatcheck's own
        raise PartialError(f"a partial names the class {module}:{name}, which is not heatcheck's")
    cls = getattr(importlib.import_module(module), name)
    return cls(**{k: unpack(v, arrays) for k, v in tree["fields"].items()})


def write_partial(folder: Path, partial: Partial) -> Path:
    """Write ``partial`` into ``folder``; returns the JSON file's path."""
    arrays: dict[str, np.ndarray] = {f"store/{k}": v for k, v in partial.arrays.items()}
    document = {
        "schema": SCHEMA, "shard": [partial.shard.index, partial.shard.count],
        "heatcheck": partial.heatcheck, "git_commit": partial.git_commit,
        "rootdir": partial.rootdir, "settings": partial.settings,
        "images_fingerprint": partial.images_fingerprint, "blocks": partial.blocks,
        "results": partial.results, "items": [dataclasses.asdict(i) for i in partial.items],
        "outcomes": partial.outcomes, "provider": partial.provider, "input_errors": partial.input_errors,
        "values": {name: pack(v, arrays) for name, v in partial.values.items()},
    }
    stem = folder / file_stem(partial.shard)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    atomic_write(stem.with_suffix(".npz"), buffer.getvalue())
    atomic_write(stem.with_suffix(".json"), (json.dumps(document) + "\n").encode())
    return stem.with_suffix(".json")


def read_partial(path: Path) -> Partial:
    """The partial at ``path`` (its .json; the .npz beside it)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            raise PartialError(f"{path}: not a heatcheck partial ({SCHEMA})")
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        if isinstance(exc, PartialError):
            raise
        raise PartialError(f"{path}: cannot read the partial ({type(exc).__name__}: {exc})") from None
    return Partial(
        shard=Shard(*document["shard"]), heatcheck=document["heatcheck"], git_commit=document["git_commit"],
        rootdir=document["rootdir"], settings=document["settings"],
        results=schema.read_results(document["results"]),
        items=[AuditItem(**i) for i in document["items"]], outcomes=document["outcomes"],
        values={name: unpack(v, arrays) for name, v in document["values"].items()},
        provider=document["provider"], blocks=document["blocks"],
        images_fingerprint=document["images_fingerprint"], input_errors=list(document["input_errors"]),
        arrays={k.removeprefix("store/"): v for k, v in arrays.items() if k.startswith("store/")},
        source=path)


def find_partials(folders: Iterable[Path]) -> list[Path]:
    """The partials' JSON files in ``folders`` (each a shard's report folder, or one holding
    several shards' files, as a controller with --hc-shard leaves them)."""
    found = []
    for folder in folders:
        folder = Path(folder)
        files = [folder] if folder.is_file() else sorted(folder.glob(f"{PREFIX}*.json"))
        if not files:
            raise PartialError(f"{folder}: no heatcheck partial ({PREFIX}I-of-N.json) here")
        found.extend(files)
    return found
