"""Settings: one frozen dataclass built once per session from pyproject and the command line."""

from __future__ import annotations

import math
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from heatcheck.errors import HeatcheckError
from heatcheck.explain.methods import CONTROLS, METHODS

ENGINES = ("compiled", "tf-keras-vis")
FAITHFULNESS_BASELINES = ("blur", "zeros", "mean")  # heatcheck.checks.faithfulness.BASELINES
# Pillow's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS): 89,478,485 pixels, about
# 256 MiB as RGBA. Larger images are refused with one line unless max_image_pixels is raised.
MAX_IMAGE_PIXELS = 89_478_485
# Options that only a model file, factory or keras.applications name takes: a bench model is a
# committed .keras file with its own input, output, preprocessing and class names.
NOT_FOR_BENCH = (("preprocess", "--hc-preprocess"), ("output", "--hc-output"), ("weights", "--hc-weights"),
                 ("unsafe_model", "--hc-unsafe-model"), ("class_names_file", "--hc-class-names"))


@dataclass(frozen=True)
class Profile:
    """A named budget: how much work each audit may do (cf. Hypothesis settings profiles)."""

    name: str
    bench_images: int  # images for the bare `bench` spec
    smooth_samples: int
    sanity_images: int
    stability_images: int
    hypothesis_examples: int


PROFILES = {
    # smoke's samples are heatcheck.checks.decision's minimum of 5 images: fewer make every sanity and
    # stability check inconclusive
    "smoke": Profile("smoke", bench_images=8, smooth_samples=20, sanity_images=5,
                     stability_images=5, hypothesis_examples=5),
    # Profiles change how many images and examples, never the methods' own parameters (the
    # seed's SmoothGrad: 20 samples, noise 0.2), so thresholds mean the same in every profile.
    "ci": Profile("ci", bench_images=64, smooth_samples=20, sanity_images=8,
                  stability_images=8, hypothesis_examples=10),
    "full": Profile("full", bench_images=200, smooth_samples=20, sanity_images=16,
                    stability_images=16, hypothesis_examples=50),
}


class SettingsError(HeatcheckError, ValueError):
    """A setting that cannot be used; the message names the setting and the fix."""


@dataclass(frozen=True)
class Thresholds:
    """Gate thresholds: per metric a default plus per-method overrides, with where each came from."""

    values: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    source: Mapping[str, str] = field(default_factory=dict)
    # The same shape serves the baseline's tolerances ([tool.heatcheck.tolerances], --hc-tolerance):
    # what the table is called, for the error messages.
    kind: str = "threshold"

    def get(self, metric: str, method: str | None = None) -> float:
        table = self.values.get(metric)
        if table is None:
            raise SettingsError(f"no {self.kind} for '{metric}' in [tool.heatcheck.{self.kind}s] "
                                f"or --{self.kind}")
        if method is not None and method in table:
            return float(table[method])
        if "default" not in table:
            raise SettingsError(f"no {self.kind} for '{metric}.{method}' and no '{metric}.default'")
        return float(table["default"])

    def source_of(self, metric: str, method: str | None = None) -> str:
        key = f"{metric}.{method}" if method else metric
        return self.source.get(key, self.source.get(metric, "pyproject"))


@dataclass(frozen=True)
class Settings:
    """Everything an audit run needs to know, fixed for the session."""

    model: str = "bench:clean"
    images: str = "bench"
    methods: tuple[str, ...] = METHODS
    layer: str | None = None
    profile: Profile = PROFILES["ci"]
    seed: int = 0
    report_dir: Path = Path("reports")
    only_correct: bool = False
    top_k: int = 1
    smooth_noise: float = 0.2
    pointing_tolerance: int | None = None  # None: 15 px at 224², scaled with the input size
    batch_size: int = 32
    engine: str = "compiled"
    unsafe_model: bool = False
    weights: str | None = None  # keras.applications: "imagenet" or a weights file
    allow_download: bool = False
    output: str | None = None  # which output of a multi-output model: index or name
    preprocess: str | None = None  # None: the model's own (applications) or "raw" (files)
    class_names_file: str | None = None
    strict: bool = False  # stop at the first bad input row instead of rejecting it
    compare: str | None = None  # a results.json to show side by side in the report
    colormap: str = "jet"
    cache_dir: Path | None = Path(".heatcheck_cache")  # None: no disk cache (--hc-no-cache)
    cache_max_mb: int = 512
    sanity_images: int | None = None  # None: the profile's
    sanity_grouping: str = "block"  # randomisation steps: "block" (the architecture's blocks) or "layer"
    random_label_model: str | None = None
    stability_images: int | None = None  # None: the profile's
    # The perturbation budget hypothesis searches within (relative to the image's range).
    stability_max_sigma: float = 0.01
    stability_max_brightness: float = 0.05
    stability_search: str = "ci"  # hypothesis search depth: "ci" (derandomized, bounded) or "deep"
    max_image_pixels: int = MAX_IMAGE_PIXELS  # larger images are refused (decompression bombs)
    thresholds: Thresholds = field(default_factory=Thresholds)
    # Calibrated gates (heatcheck.checks.decision): an inconclusive check fails the run only when
    # this is set (strict gates); localisation audits only images whose mask covers less
    # than max_mask_fraction of the image (None: all).
    faithfulness_steps: int = 16  # points on the deletion and insertion curves (RISE runs the whole range)
    faithfulness_baseline: str = "blur"  # what a deleted pixel becomes: blur, zeros or mean
    fail_inconclusive: bool = False
    fail_on_caveats: bool = False  # a run that audited less than a full audit fails the gate
    max_mask_fraction: float | None = None
    # A control that beats chance by more than this (chance-corrected) is strong: the set
    # cannot then tell a good map from a prior, and "not better" is inconclusive, not failed.
    weak_control: float = 0.25
    min_images: int = 5  # fewer scored images: every calibrated check is inconclusive
    # The model-validation gate (heatcheck.checks.baseline): an accepted run's results.json to compare
    # with, how much worse each metric may get, and where to store this run as the next one.
    baseline: str | None = None
    tolerances: Thresholds = field(default_factory=lambda: Thresholds(kind="tolerance"))
    save_baseline: str | None = None

    def __post_init__(self) -> None:
        # Every check here is cheap and needs no model: a bad setting stops the run before
        # TensorFlow loads, with one line naming the option.
        # Counts below 1 would read no batch or sample nothing.
        for option, value in (("--hc-batch-size", self.batch_size), ("--hc-top-k", self.top_k),
                              ("--hc-sanity-images", self.sanity_images),
                              ("--hc-stability-images", self.stability_images),
                              ("--hc-max-image-pixels", self.max_image_pixels)):
            if value is not None and value < 1:
                raise SettingsError(f"{option} must be at least 1, not {value}")
        if self.seed < 0:  # numpy's generators refuse negative seeds, deep inside the run
            raise SettingsError(f"--hc-seed must be 0 or more, not {self.seed}")
        for name in ("smooth_noise", "stability_max_sigma", "stability_max_brightness"):
            if not math.isfinite(getattr(self, name)):
                raise SettingsError(f"{name} must be a finite number, not {getattr(self, name)}")
        if self.images.startswith("bench:"):
            bench_count(self.images)
        if self.model.startswith("bench:"):
            for name, option in NOT_FOR_BENCH:
                if getattr(self, name) not in (None, False):
                    raise SettingsError(
                        f"{option} does not apply to bench model {self.model}: bench models take none "
                        f"of {', '.join(option for _, option in NOT_FOR_BENCH)}")
        if self.faithfulness_steps < 1:
            raise SettingsError(f"--hc-faithfulness-steps must be at least 1, not {self.faithfulness_steps}")
        if self.faithfulness_baseline not in FAITHFULNESS_BASELINES:
            raise SettingsError(f"--hc-faithfulness-baseline {self.faithfulness_baseline!r}: choose from "
                                f"{', '.join(FAITHFULNESS_BASELINES)}")
        if self.max_mask_fraction is not None and not 0.0 < self.max_mask_fraction <= 1.0:
            raise SettingsError(f"--hc-max-mask-fraction must be in (0, 1], not {self.max_mask_fraction}")

    @property
    def smooth_samples(self) -> int:
        return self.profile.smooth_samples

    @property
    def stability_count(self) -> int:
        return self.stability_images or self.profile.stability_images

    @property
    def sanity_count(self) -> int:
        return self.sanity_images or self.profile.sanity_images


def bench_count(spec: str) -> int:
    """N of an image spec ``bench:N``; SettingsError unless it is a whole number ≥ 1."""
    text = spec.split(":", 1)[1]
    if not text.isdigit() or int(text) < 1:
        raise SettingsError(f"--hc-images {spec}: N must be a whole number of at least 1 (bench:N)")
    return int(text)


def check_colormap(name: str) -> None:
    """Refuse a colormap matplotlib does not know (matplotlib is imported only here)."""
    import matplotlib

    if name not in matplotlib.colormaps:
        raise SettingsError(f"--hc-colormap {name}: unknown colormap; try jet, viridis or cividis "
                            f"(any name in matplotlib.colormaps)")


def check_report_dir(folder: Path) -> None:
    """Refuse a report folder that cannot be created or written, before anything runs.

    The check creates the missing folders and a probe file, then removes what it created, so
    that a session that writes no report (the project's own tests) leaves nothing behind.
    """
    created: list[Path] = []
    try:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        for path in reversed(missing):
            path.mkdir()
            created.append(path)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".heatcheck-probe-"):
            pass
    except OSError as err:
        raise SettingsError(f"--hc-report-dir {folder}: cannot write there "
                            f"({err.strerror or type(err).__name__})") from None
    finally:
        for path in reversed(created):
            try:
                os.rmdir(path)
            except OSError:  # something else wrote there meanwhile: leave it
                break


def read_pyproject(path: Path | None) -> dict[str, Any]:
    """The ``[tool.heatcheck]`` table of a pyproject.toml (empty when there is none)."""
    if path is None or not path.is_file():
        return {}
    with path.open("rb") as f:
        table = tomllib.load(f).get("tool", {}).get("heatcheck", {})
    return dict(table)


def read_defaults() -> dict[str, Any]:
    """The gate settings heatcheck ships (``heatcheck/defaults.toml``, package data)."""
    from importlib import resources

    return tomllib.loads(resources.files("heatcheck").joinpath("defaults.toml").read_text("utf-8"))


def with_defaults(project: Mapping[str, Any]) -> dict[str, Any]:
    """The shipped defaults overridden key by key by a project's ``[tool.heatcheck]`` table: a
    threshold or tolerance table merges per metric and per method, any other key replaces."""
    merged = read_defaults()
    for key, value in project.items():
        if key in ("thresholds", "tolerances") and isinstance(value, Mapping):
            tables = merged.setdefault(key, {})
            for metric, spec in value.items():
                spec = dict(spec) if isinstance(spec, Mapping) else {"default": spec}
                base = tables.get(metric)
                tables[metric] = {**(dict(base) if isinstance(base, Mapping) else
                                     {} if base is None else {"default": base}), **spec}
        else:
            merged[key] = value
    return merged


def label_sources(table: Thresholds, project: Mapping[str, Any]) -> Thresholds:
    """``table`` with each key's source saying whether it came from the project's pyproject or
    from heatcheck's defaults (command-line keys keep their label)."""
    def from_project(key: str) -> bool:
        metric, _, method = key.partition(".")
        spec = project.get(metric)
        return spec is not None and (not isinstance(spec, Mapping) or (method or "default") in spec)

    source = {key: ("heatcheck defaults" if label == "pyproject" and not from_project(key) else label)
              for key, label in table.source.items()}
    return Thresholds(table.values, MappingProxyType(source), table.kind)


def parse_methods(text: str) -> tuple[str, ...]:
    names = tuple(m.strip().lower() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METHODS + CONTROLS]
    if unknown or not names:
        raise SettingsError(f"--hc-methods: unknown method {', '.join(unknown) or '(none)'}; "
                            f"choose from {', '.join(METHODS + CONTROLS)}")
    return names


def _threshold_problem(method: str, value: Any, kind: str = "threshold") -> str | None:
    """Why a threshold (or tolerance) for ``method`` cannot be used, or None."""
    if method not in (*METHODS, *CONTROLS, "default"):
        return (f"unknown method '{method}'; choose from {', '.join(METHODS + CONTROLS)} or default")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "expected a number"
    if not math.isfinite(value):
        return f"a {kind} must be a finite number"
    return None


def build_thresholds(table: Mapping[str, Any], overrides: list[str], kind: str = "threshold") -> Thresholds:
    """Thresholds from pyproject's table, then ``--hc-threshold metric[.method]=value`` overrides
    (``kind="tolerance"``: the baseline's tolerances and ``--hc-tolerance``)."""
    values: dict[str, dict[str, float]] = {}
    source: dict[str, str] = {}
    for metric, spec in table.items():
        values[metric] = dict(spec) if isinstance(spec, Mapping) else {"default": spec}
        for method, value in values[metric].items():
            key = f"{metric}.{method}" if isinstance(spec, Mapping) else metric
            if (problem := _threshold_problem(method, value, kind)) is not None:
                raise SettingsError(f"[tool.heatcheck.{kind}s] {key} = {value!r}: {problem}")
            source[metric if method == "default" else f"{metric}.{method}"] = "pyproject"
    for item in overrides:
        key, sep, raw = item.partition("=")
        metric, _, method = key.strip().partition(".")
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"--hc-{kind} {item!r}: expected metric[.method]=number") from None
        if not sep or metric not in values:
            raise SettingsError(f"--hc-{kind} {item!r}: unknown metric '{metric}'; known: "
                                f"{', '.join(sorted(values))}")
        if (problem := _threshold_problem(method or "default", value, kind)) is not None:
            raise SettingsError(f"--hc-{kind} {item!r}: {problem}")
        values[metric][method or "default"] = value
        source[key.strip()] = "command line"
    frozen = {k: MappingProxyType(v) for k, v in values.items()}
    return Thresholds(MappingProxyType(frozen), MappingProxyType(source), kind)
