"""The pytest plugin: options, the session's Settings and ResultStore, and the report hook.

Nothing here imports TensorFlow: `pytest --help` and collection stay fast.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import heatcheck
from heatcheck.checks.baseline import audit_settings
from heatcheck.plugin import shards
from heatcheck.plugin.gate import INCONCLUSIVE_PROPERTY
from heatcheck.report.coverage import family_of, scope
from heatcheck.report.results import Check, ResultStore
from heatcheck.settings import (
    CONTROLS,
    ENGINES,
    METHODS,
    PROFILES,
    Settings,
    SettingsError,
    build_thresholds,
    check_colormap,
    check_report_dir,
    label_sources,
    parse_methods,
    read_pyproject,
    with_defaults,
)

# The audit fixtures (the model, the images, their maps, the gate), registered with the plugin.
pytest_plugins = ("heatcheck.fixtures.audit_fixtures",)

SETTINGS_KEY = pytest.StashKey[Settings]()
STORE_KEY = pytest.StashKey[ResultStore]()
START_KEY = pytest.StashKey[float]()
AUDIT_ITEMS_KEY = pytest.StashKey[list[str]]()
# node id → (audit family, metric, method) of every collected audit test
AUDIT_INFO_KEY = pytest.StashKey[dict[str, tuple[str, str, str | None]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("heatcheck", "heatcheck model audits")
    add = group.addoption
    add("--hc-model", dest="hc_model", default=None,
        help="model to audit: bench:clean|bench:shortcut|bench:random-labels, or a .keras/.h5 path")
    add("--hc-images", dest="hc_images", default=None,
        help="labelled images: bench or bench:N (built-in)")
    add("--hc-methods", dest="hc_methods", default=None,
        help=f"comma-separated methods: {','.join(METHODS)}, controls {','.join(CONTROLS)}")
    add("--hc-layer", dest="hc_layer", default=None, help="conv layer for Grad-CAM(++) (default: last conv)")
    add("--hc-profile", dest="hc_profile", default=None, choices=sorted(PROFILES),
        help="budget profile: smoke, ci (default), full")
    add("--hc-seed", dest="hc_seed", default=None, type=int, help="seed for every random draw (default 0)")
    add("--hc-report-dir", dest="hc_report_dir", default=None, help="where results.json and index.html go")
    add("--hc-only-correct", dest="hc_only_correct", action="store_true", default=None,
        help="audit maps only on images the model classifies correctly")
    add("--hc-top-k", dest="hc_top_k", default=None, type=int,
        help="label consistency: the label must be in the model's top-k (default 1)")
    add("--hc-threshold", dest="hc_thresholds", action="append", default=[], metavar="METRIC[.METHOD]=VALUE",
        help="override a threshold from [tool.heatcheck.thresholds]; repeatable")
    add("--hc-engine", dest="hc_engine", default=None, choices=ENGINES,
        help="attribution engine: compiled (default) or tf-keras-vis (the reference)")
    add("--hc-batch-size", dest="hc_batch_size", default=None, type=int, help="images per model call")
    add("--hc-sanity-images", dest="hc_sanity_images", default=None, type=int,
        help="images for the randomisation audits (default: the profile's)")
    add("--hc-random-label-model", dest="hc_random_label_model", default=None,
        help="a model trained on permuted labels, for the data randomisation test")
    add("--hc-stability-images", dest="hc_stability_images", default=None, type=int,
        help="images for the stability audits (default: the profile's)")
    add("--hc-stability-search", dest="hc_stability_search", default=None, choices=["ci", "deep"],
        help="hypothesis search for breaking perturbations: ci (derandomized, bounded) "
             "or deep (10× the examples)")
    add("--hc-weights", dest="hc_weights", default=None,
        help="weights for a keras.applications model: imagenet (Keras cache) or a file path")
    add("--hc-allow-download", dest="hc_allow_download", action="store_true", default=None,
        help="let Keras download ImageNet weights when they are not in the cache")
    add("--hc-output", dest="hc_output", default=None, help="output of a multi-output model (index or name)")
    add("--hc-preprocess", dest="hc_preprocess", default=None,
        help="input preprocessing: raw (0-255), unit, caffe, tf, torch or module:function")
    add("--hc-class-names", dest="hc_class_names", default=None,
        help="class names file: a JSON list or one name per line")
    add("--hc-strict-inputs", dest="hc_strict", action="store_true", default=None,
        help="stop at the first bad input row instead of rejecting it and going on")
    add("--hc-compare", dest="hc_compare", default=None,
        help="another run's results.json to show side by side in the report")
    add("--hc-colormap", dest="hc_colormap", default=None,
        help="map colours in the report: jet (as the seed) or a colour-blind-safe one such as cividis")
    add("--hc-no-cache", dest="hc_no_cache", action="store_true", default=None,
        help="compute every map afresh; do not read or write the on-disk map cache")
    add("--hc-cache-dir", dest="hc_cache_dir", default=None, help="map cache folder (default "
                                                                  ".heatcheck_cache)")
    add("--hc-unsafe-model", dest="hc_unsafe_model", action="store_true", default=None,
        help="load model files with Keras safe mode off (only for files you trust)")
    add("--hc-faithfulness-steps", dest="hc_faithfulness_steps", default=None, type=int, metavar="N",
        help="points on the deletion and insertion curves (default 16)")
    add("--hc-faithfulness-baseline", dest="hc_faithfulness_baseline", default=None,
        choices=["blur", "zeros", "mean"], help="what a deleted pixel becomes (default blur)")
    add("--hc-max-mask-fraction", dest="hc_max_mask_fraction", default=None, type=float, metavar="F",
        help="localisation: audit only images whose object covers less than F of the image")
    add("--hc-fail-inconclusive", dest="hc_fail_inconclusive", action="store_true", default=None,
        help="strict gate: an inconclusive check fails the run")
    add("--hc-shard", dest="hc_shard", default=None, metavar="I/N",
        help="audit shard I of N (0-based) of the images and write partial results; "
             "python -m heatcheck merge puts the shards together")
    add("--hc-baseline", dest="hc_baseline", default=None, metavar="PATH",
        help="an accepted run's results.json (or its folder): fail checks that got worse than it by "
             "more than their tolerance")
    add("--hc-tolerance", dest="hc_tolerances", action="append", default=[], metavar="METRIC[.METHOD]=VALUE",
        help="override a tolerance from [tool.heatcheck.tolerances]; repeatable")
    add("--hc-save-baseline", dest="hc_save_baseline", default=None, metavar="PATH",
        help="store this run's results.json at PATH (a file or folder) as the next accepted baseline")
    add("--hc-fail-on-caveats", dest="hc_fail_on_caveats", action="store_true", default=None,
        help="strict gate: a run that audited less than a full audit (audits not selected or that "
             "audited no image, rejected rows, few images) fails instead of passing with caveats")
    add("--hc-max-image-pixels", dest="hc_max_image_pixels", default=None, type=int,
        help="refuse larger images (decompression bombs); default 89478485, Pillow's limit")


def _pyproject(config: pytest.Config) -> Path | None:
    if config.inipath is not None and config.inipath.name == "pyproject.toml":
        return config.inipath
    candidate = config.rootpath / "pyproject.toml"
    return candidate if candidate.is_file() else None


# Settings field ← its command-line dest and how to read it; in [tool.heatcheck] the key is the
# field's name. Fields without a dest are pyproject-only.
FIELDS: dict[str, tuple[str | None, Callable[[Any], Any]]] = {
    "model": ("hc_model", str), "images": ("hc_images", str), "layer": ("hc_layer", str),
    "seed": ("hc_seed", int), "only_correct": ("hc_only_correct", bool), "top_k": ("hc_top_k", int),
    "batch_size": ("hc_batch_size", int), "engine": ("hc_engine", str),
    "unsafe_model": ("hc_unsafe_model", bool), "weights": ("hc_weights", str),
    "allow_download": ("hc_allow_download", bool), "output": ("hc_output", str),
    "preprocess": ("hc_preprocess", str), "class_names_file": ("hc_class_names", str),
    "strict": ("hc_strict", bool), "compare": ("hc_compare", str), "colormap": ("hc_colormap", str),
    "sanity_images": ("hc_sanity_images", int),
    "stability_images": ("hc_stability_images", int),
    "stability_search": ("hc_stability_search", str),
    "random_label_model": ("hc_random_label_model", str),
    "smooth_noise": (None, float), "pointing_tolerance": (None, int), "cache_max_mb": (None, int),
    "stability_max_sigma": (None, float), "stability_max_brightness": (None, float),
    "sanity_grouping": (None, str), "max_image_pixels": ("hc_max_image_pixels", int),
    "max_mask_fraction": ("hc_max_mask_fraction", float),
    "faithfulness_steps": ("hc_faithfulness_steps", int),
    "faithfulness_baseline": ("hc_faithfulness_baseline", str),
    "fail_inconclusive": ("hc_fail_inconclusive", bool),
    "fail_on_caveats": ("hc_fail_on_caveats", bool),
    "weak_control": (None, float), "min_images": (None, int),
    "baseline": ("hc_baseline", str), "save_baseline": ("hc_save_baseline", str),
}


def build_settings(config: pytest.Config) -> Settings:
    """Settings from heatcheck's defaults, overridden by [tool.heatcheck], then by the command line."""
    project = read_pyproject(_pyproject(config))
    table = with_defaults(project)

    def pick(dest: str | None, key: str) -> Any:
        value = config.getoption(dest) if dest else None
        return value if value is not None else table.get(key)

    values: dict[str, Any] = {}
    for name, (dest, convert) in FIELDS.items():
        if (raw := pick(dest, name)) is None:
            continue
        wrong = isinstance(raw, bool) or not isinstance(raw, int | float) or (
            convert is int and isinstance(raw, float))
        if convert in (int, float) and wrong:
            # TOML values come typed; int("7") would quietly accept a quoted number and
            # int("zero") would end in a traceback.
            raise SettingsError(f"[tool.heatcheck] {name} = {raw!r}: expected {convert.__name__}")
        values[name] = convert(raw)
    profile = str(pick("hc_profile", "profile") or "ci")
    if profile not in PROFILES:
        raise SettingsError(f"profile '{profile}' unknown; choose from {', '.join(PROFILES)}")
    methods = pick("hc_methods", "methods")
    if methods is not None:
        values["methods"] = parse_methods(methods if isinstance(methods, str) else ",".join(methods))
    report_dir = Path(str(pick("hc_report_dir", "report_dir") or "reports"))
    cache_dir = Path(str(pick("hc_cache_dir", "cache_dir") or ".heatcheck_cache"))
    settings = Settings(
        **values, profile=PROFILES[profile],
        report_dir=report_dir if report_dir.is_absolute() else config.rootpath / report_dir,
        cache_dir=None if config.getoption("hc_no_cache") else (
            cache_dir if cache_dir.is_absolute() else config.rootpath / cache_dir),
        thresholds=label_sources(build_thresholds(table.get("thresholds", {}),
                                                  config.getoption("hc_thresholds")),
                                 project.get("thresholds", {})),
        tolerances=label_sources(build_thresholds(table.get("tolerances", {}),
                                                  config.getoption("hc_tolerances"), kind="tolerance"),
                                 project.get("tolerances", {})),
    )
    # Checks that look outside the settings, still before any model or image is loaded.
    check_colormap(settings.colormap)
    check_report_dir(settings.report_dir)
    return settings


def pytest_configure(config: pytest.Config) -> None:
    # TensorFlow's C++ start-up logs drown the test output; set before TensorFlow is imported.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        settings = build_settings(config)
    except SettingsError as exc:
        raise pytest.UsageError(f"heatcheck: {exc}") from None
    config.stash[SETTINGS_KEY] = settings
    config.addinivalue_line("markers", "heatcheck_audit: a model audit whose outcome goes in the report")
    config.addinivalue_line("markers", "heatcheck_first: runs before every other audit")
    config.stash[STORE_KEY] = ResultStore(fail_inconclusive=settings.fail_inconclusive,
                                          fail_on_caveats=settings.fail_on_caveats,
                                          model={"spec": settings.model}, images={"spec": settings.images})
    config.stash[START_KEY] = time.perf_counter()
    if _audit_run(config) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # ends the run like Ctrl-C, from the start
    config.stash[AUDIT_ITEMS_KEY] = []
    config.stash[AUDIT_INFO_KEY] = {}
    config.pluginmanager.register(AuditSession(config), "heatcheck-session")
    if _audit_run(config) and not hasattr(config, "workerinput"):
        set_aside_previous_report(settings.report_dir)
    from heatcheck.plugin.baseline_gate import configure_baseline  # it imports this module's keys

    configure_baseline(config)
    # Past one process (--hc-shard, pytest-xdist): heatcheck.plugin.shards
    shards.configure(config, settings, config.getoption("hc_shard"))


PREVIOUS = ("results.json", "index.html", "maps.npz")  # the files a run writes in its report folder


def _audit_run(config: pytest.Config) -> bool:
    """Whether this session was asked to audit (known before collection): it names the audits
    (``audits/…``, ``heatcheck.suite``) or sets a heatcheck option on the command line."""
    args = [str(a) for a in config.invocation_params.args]
    return any(a.startswith("--hc-") or "heatcheck.suite" in a or "audits" in Path(a.split("::")[0]).parts
               for a in args)


def set_aside_previous_report(report_dir: Path) -> None:
    """Rename the last run's report to ``*.previous.*`` as this run starts: a run stopped before
    its first checkpoint (SIGTERM in the first seconds) must not leave another run's PASS in
    place of its own report."""
    for name in PREVIOUS:
        path = report_dir / name
        if path.is_file():
            stem, _, suffix = name.rpartition(".")
            os.replace(path, report_dir / f"{stem}.previous.{suffix}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash[SETTINGS_KEY]
    return [f"heatcheck {heatcheck.__version__}: profile={s.profile.name} model={s.model} "
            f"images={s.images} methods={','.join(s.methods)} engine={s.engine} seed={s.seed}"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per audit × method: every audit test (marked heatcheck_audit) that takes
    ``heatcheck_method`` runs for each chosen one. Other tests in the session are left alone."""
    if metafunc.definition.get_closest_marker("heatcheck_audit") is None:
        return
    if "heatcheck_method" in metafunc.fixturenames:
        methods = metafunc.config.stash[SETTINGS_KEY].methods
        metafunc.parametrize("heatcheck_method", methods, ids=list(methods))


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    """An inconclusive check is its own outcome in the terminal (``I``, "N inconclusive"), not a pass."""
    if report.when == "call" and report.passed and INCONCLUSIVE_PROPERTY in report.user_properties:
        return "inconclusive", "I", "INCONCLUSIVE"
    return shards.computed_status(report)


def _is_audit(item: pytest.Item) -> bool:
    return item.get_closest_marker("heatcheck_audit") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Label consistency runs before any map audit: an auditor must know first when a map
    # explains a class the model does not predict.
    items.sort(key=lambda it: 0 if it.get_closest_marker("heatcheck_first") else 1)
    config.stash[AUDIT_ITEMS_KEY] = [it.nodeid for it in items if _is_audit(it)]
    config.stash[AUDIT_INFO_KEY] = {it.nodeid: _audit_info(it) for it in items if _is_audit(it)}


def _audit_info(item: pytest.Item) -> tuple[str, str, str | None]:
    """(family, metric, method) of an audit test, from its module and parameters."""
    params = getattr(item, "callspec", None)
    values = dict(params.params) if params is not None else {}
    metric = values.get("metric") or values.get("measure") or getattr(item, "originalname", item.name)
    method = values.get("heatcheck_method")
    return (family_of(item.path.name), str(getattr(metric, "__name__", metric)),
            None if method is None else str(method))


@functools.cache  # asked at every report checkpoint; the commit does not change during a run
def _git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def environment(config: pytest.Config) -> dict[str, object]:
    """Versions and provenance for results.json; TensorFlow only if the session imported it."""
    settings = config.stash[SETTINGS_KEY]
    env: dict[str, object] = {
        "heatcheck": heatcheck.__version__, "python": sys.version.split()[0],
        "seed": settings.seed, "profile": settings.profile.name, "engine": settings.engine,
        "git_commit": _git_commit(config.rootpath),
        "started_utc": datetime.fromtimestamp(time.time() - (time.perf_counter() - config.stash[START_KEY]),
                                              UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_s": round(time.perf_counter() - config.stash[START_KEY], 2),
        "TF_KERAS_VIS_MAX_STEPS": os.environ.get("TF_KERAS_VIS_MAX_STEPS"),
        "thresholds_source": dict(settings.thresholds.source),
        "audit_settings": audit_settings(settings),  # what a baseline must share (heatcheck.checks.baseline)
    }
    for module, key in (("tensorflow", "tensorflow"), ("keras", "keras"), ("tf_keras_vis", "tf_keras_vis")):
        mod = sys.modules.get(module)
        env[key] = getattr(mod, "__version__", "not loaded") if mod else "not loaded"
    return env


CHECKPOINT_S = 5.0  # at most one incomplete-report checkpoint per this many seconds


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    # SIGTERM (CI cancelling a job, `kill`) ends the run like Ctrl-C, so the report is written.
    raise KeyboardInterrupt(f"terminated by signal {signum}")


class AuditSession:
    """Per-session hooks that need the config: outcome bookkeeping and writing the report."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.store = config.stash[STORE_KEY]
        self.settings = config.stash[SETTINGS_KEY]
        self.done: set[str] = set()
        self._last_write = time.monotonic()
        self.partial: Path | None = None  # a shard's partial results, once written

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.config.stash[AUDIT_ITEMS_KEY]:
            return
        if report.when == "teardown":
            self.done.add(report.nodeid)
        if report.skipped and not self._recorded(report.nodeid):
            self._record_skip(report)
        if report.failed and (report.when != "call" or not self._recorded_failure(report.nodeid)):
            message = str(report.longrepr).strip().splitlines()[-1] if report.longrepr else "error"
            self.store.errors.append({"test": report.nodeid, "when": report.when, "message": message[:500]})

    def _recorded(self, nodeid: str) -> bool:
        return any(c.details.get("test") == nodeid for c in self.store.checks)

    def _record_skip(self, report: pytest.TestReport) -> None:
        """A skip from a fixture or a missing input, which no gate recorded: record it, so that
        the verdict and the report know the check did not run, and why."""
        longrepr = report.longrepr
        reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr or "skipped")
        family, metric, method = self.config.stash[AUDIT_INFO_KEY][report.nodeid]
        self.store.add(Check(audit=family, metric=metric, method=method, value=None, threshold=None,
                             direction=None, passed=None, status="skipped",
                             reason=reason.removeprefix("Skipped: "), details={"test": report.nodeid}))

    def _recorded_failure(self, nodeid: str) -> bool:
        """A failed call whose check was recorded is a failed check, not an error."""
        return any(c.details.get("test") == nodeid and c.status == "failed" for c in self.store.checks)

    def pytest_keyboard_interrupt(self) -> None:
        # pytest.exit on a whole-run error arrives here too: that run did not stop by a signal.
        if self.store.fatal is None:
            self.store.interrupted = True

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not self.config.stash[AUDIT_ITEMS_KEY]:
            return
        # A run killed midway must still leave a readable report, marked incomplete: clear
        # the last run's galleries, write a first checkpoint now and more as tests finish.
        (self.settings.report_dir / "maps.npz").unlink(missing_ok=True)
        self._write(final=False)
        if threading.current_thread() is threading.main_thread():  # audits found by other paths too
            signal.signal(signal.SIGTERM, _terminate_as_interrupt)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        due = time.monotonic() - self._last_write > CHECKPOINT_S
        if due and nodeid in self.config.stash[AUDIT_ITEMS_KEY]:
            self._write(final=False)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.config.stash[AUDIT_ITEMS_KEY]:  # the project's own tests write no report
            self._write(final=True)
            # A verdict that fails with no failed test (a strict gate on caveats) fails the run too.
            if self.store.verdict() == "fail" and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _write(self, *, final: bool) -> None:
        """results.json and index.html; galleries (maps.npz) only at the end of the session.
        A shard writes its partial results instead, at the end (heatcheck.report.partial)."""
        from heatcheck.report import write_report

        shard = self.config.stash.get(shards.SHARD_KEY, None)
        if shard is not None and not final:
            return
        self.store.not_run = [n for n in self.config.stash[AUDIT_ITEMS_KEY] if n not in self.done]
        self.store.seal([info[0] for info in self.config.stash[AUDIT_INFO_KEY].values()])
        self.store.environment = {**self.store.environment, **environment(self.config)}
        if shard is not None:
            self.partial = shard.write(self.store)
            return
        self.store.write(self.settings.report_dir, arrays=final)
        write_report(self.settings.report_dir, colormap=self.settings.colormap,
                     compare_path=Path(self.settings.compare) if self.settings.compare else None)
        self._last_write = time.monotonic()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # Printed after pytest's own summary so that the run ends with the verdict and the path.
        terminalreporter = config.pluginmanager.get_plugin("terminalreporter")
        if terminalreporter is None or not self.config.stash[AUDIT_ITEMS_KEY]:
            return
        for line in self.store.input_errors:
            terminalreporter.write_line(f"heatcheck: input error: {line}", yellow=True)
        shard = config.stash.get(shards.SHARD_KEY, None)
        if shard is not None:
            terminalreporter.write_line(
                f"heatcheck shard {shard.shard}: partial results in {self.partial}; "
                f"the verdict comes from python -m heatcheck merge of every shard's folder", bold=True)
            return
        line, verdict = verdict_line(self.store, self.settings.report_dir)
        terminalreporter.write_line(line, bold=True, red=verdict != "PASS", green=verdict == "PASS")


def verdict_line(store: ResultStore, report_dir: Path) -> tuple[str, str]:
    """The run's last line (the verdict, what it covers, the counts, the report) and the verdict."""
    s = store.summary()
    verdict = store.verdict().upper()
    covers = " ".join(filter(None, [scope(store.images) if not store.fatal else "",
                                    "— " + "; ".join(store.caveats) if store.caveats else ""]))
    return (f"heatcheck verdict: {verdict}{' ' + covers if covers else ''} "
            f"({s['passed']} passed, {s['failed']} failed, "
            f"{s['inconclusive']} inconclusive, {s['skipped']} skipped, {s['errors']} errors) — report: "
            f"{report_dir / 'index.html'}"), verdict
