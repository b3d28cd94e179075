"""The pytest side of running past one process: ``--hc-shard I/N`` and pytest-xdist workers.

A shard (heatcheck.data.sharding) runs every whole-set audit test on its block of the images, but
only as far as its fixtures: the per-image values those tests read are kept (:data:`KEPT`)
and the test bodies, which would decide on a block, are not run (the terminal shows them as
``c``, "computed"). The sample audits (sanity, stability) run whole, for real, on the one
shard that :func:`heatcheck.data.sharding.runs_family` gives them. At the end the shard writes its
partial (heatcheck.report.partial) where a report would go.

Under pytest-xdist (``pytest audits/ -n N``) every worker is a shard of the machine: heatcheck
has xdist send every test to every worker (its ``each`` scheduling) and each worker keeps the
audit tests of its shard and one worker each of the other tests; worker ``i`` takes GPU
``i mod count`` (CUDA_VISIBLE_DEVICES, set before TensorFlow starts, memory growth on); the
controller sums the workers' progress, merges their partials (heatcheck.report.merge) and writes the
one results.json and report, sets the exit code from the merged verdict and prints the
merged failures. With ``--hc-shard I/N`` as well, worker ``i`` of ``k`` is shard ``I·k+i`` of
``N·k`` and the controller leaves the partials in the report folder for a later merge.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import heatcheck
from heatcheck.data.sharding import SAMPLE_FAMILIES, Shard, block, runs_family, xdist_worker
from heatcheck.plugin.progress import FileSink, PassProgress, TerminalSink, Watcher
from heatcheck.report.partial import AuditItem, Partial, images_fingerprint, settings_to_json, write_partial
from heatcheck.settings import Settings

SHARD_KEY = pytest.StashKey["ShardSession"]()
CONTROLLER_KEY = pytest.StashKey["ControllerSession"]()
COMPUTED = ("heatcheck_outcome", "computed")  # a whole-set test on a shard: its block's values kept
EMPTY_BLOCK = "heatcheck shard {}: no image of the audited set falls in this shard's block"
WORKERS_FOLDER = ".heatcheck-workers"
PROGRESS_S = 10.0  # seconds between progress lines in a log (not a terminal)
# Session fixtures whose per-image values the whole-set tests read, kept by every shard for
# its block: "labelled" ones hold a row per labelled image (the shard's rows are kept), "block"
# ones a row per image of the shard's block. A new whole-set audit whose test reads another
# per-image fixture must be added here, or merging stops with a line naming it.
KEPT = {"heatcheck_predictions": "labelled", "localisation_run": "block", "causal_run": "block"}


def configure(config: pytest.Config, settings: Settings, shard_option: str | None) -> None:
    """Register the shard's or the xdist controller's hooks when this session is either."""
    from heatcheck.data.sharding import ShardError

    try:
        base = Shard.parse(shard_option) if shard_option else None
    except ShardError as exc:
        raise pytest.UsageError(f"heatcheck: {exc}") from None
    workerinput = getattr(config, "workerinput", None)
    worker = xdist_worker()
    parallel = base is not None or _is_xdist_controller(config) or workerinput is not None
    if parallel and (settings.baseline or settings.save_baseline):
        raise pytest.UsageError("heatcheck: --hc-baseline and --hc-save-baseline work on one "
                                "process's run; with "
                                "-n or --hc-shard, merge first and keep the merged results.json as "
                                "the baseline")
    if workerinput is not None and worker is not None:
        index, count = worker
        assign_gpu(index)
        shard = base.split(count, index) if base else Shard(index, count)
        folder = Path(workerinput.get("heatcheck_parts", settings.report_dir))
        session = ShardSession(config, settings, shard, folder, worker=f"gw{index}",
                               each=bool(workerinput.get("heatcheck_each")))
        config.stash[SHARD_KEY] = session
        config.pluginmanager.register(session, "heatcheck-shard")
    elif _is_xdist_controller(config):
        controller = ControllerSession(config, settings, base)
        config.stash[CONTROLLER_KEY] = controller
        config.pluginmanager.register(controller, "heatcheck-controller")
    elif base is not None:
        session = ShardSession(config, settings, base, settings.report_dir)
        config.stash[SHARD_KEY] = session
        config.pluginmanager.register(session, "heatcheck-shard")


def _is_xdist_controller(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and bool(getattr(config.option, "tx", None)) \
        and getattr(config.option, "dist", "no") != "no"


def shard_of(config: pytest.Config) -> Shard | None:
    """This session's shard, or None when it audits the whole set (one process, or the shard
    that runs every chosen audit when only sample audits are chosen)."""
    session = config.stash.get(SHARD_KEY, None)
    return None if session is None or session.solo else session.shard


def gpu_ids() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them, without TensorFlow."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "-1"]
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return [str(i) for i in range(len(list(proc.iterdir())))]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def assign_gpu(worker: int) -> str | None:
    """Give xdist worker ``worker`` one GPU (``worker mod count``), before TensorFlow starts."""
    ids = gpu_ids()
    if not ids:
        return None
    os.environ["CUDA_VISIBLE_DEVICES"] = ids[worker % len(ids)]
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # heatcheck.models sets it too
    return os.environ["CUDA_VISIBLE_DEVICES"]


def progress(config: pytest.Config, what: str, every_s: float, maps_per_image: int = 1) -> PassProgress:
    """The progress callback of a long pass: to the terminal, or, in an xdist worker, to a file
    the controller sums (heatcheck.plugin.progress)."""
    session = config.stash.get(SHARD_KEY, None)
    if session is not None and session.worker is not None:
        sink: Any = FileSink(session.folder / f"progress-{session.worker}.json")
    else:
        sink = terminal_sink(config, every_s)
    return PassProgress(what, maps_per_image, sink)


def terminal_sink(config: pytest.Config, every_s: float) -> Any:
    """States printed past pytest's capture: in place on a terminal, a line every ``every_s`` else."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if terminal is None:
        return lambda state: None
    resume: list[Any] = []  # the test file whose line of results the pass interrupted

    def uncaptured(write: Any) -> Any:
        def run(*args: Any) -> None:
            if capture is None:
                write(*args)
                return
            with capture.global_and_fixture_disabled():
                write(*args)
        return run

    def rewrite(text: str, last: bool) -> None:
        if not resume:  # start on a line of its own
            resume.append(terminal.currentfspath)
            if terminal.showfspath:
                terminal.ensure_newline()
            else:
                terminal.write("\n")
        terminal.rewrite(text, erase=True)
        if last:  # end it, and give the interrupted test file its line back
            terminal.write("\n")
            if isinstance(resume[0], Path) and terminal.showfspath:
                terminal.write(f"{os.path.relpath(resume[0], config.invocation_params.dir)} ")
                terminal.currentfspath = resume[0]

    return TerminalSink(uncaptured(terminal.write_line), uncaptured(rewrite) if terminal.isatty() else None,
                        every_s)


def _family(config: pytest.Config, nodeid: str) -> str | None:
    from heatcheck.plugin import AUDIT_INFO_KEY

    info = config.stash[AUDIT_INFO_KEY].get(nodeid)
    return None if info is None else info[0]


class ShardSession:
    """A shard's hooks: keep its audit tests, keep their per-image values, write its partial."""

    def __init__(self, config: pytest.Config, settings: Settings, shard: Shard, folder: Path,
                 worker: str | None = None, each: bool = False) -> None:
        self.config, self.settings, self.shard, self.folder = config, settings, shard, folder
        self.worker, self.each = worker, each
        self.items: list[AuditItem] = []
        self.outcomes: dict[str, dict[str, str]] = {}
        self.values: dict[str, Any] = {}
        self.provider: dict[str, Any] = {}
        self.blocks: dict[str, list[int]] = {}
        self.fingerprint = ""
        self.solo = False
        self.written: Path | None = None

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        return [f"heatcheck shard {self.shard}: the whole-set audits compute this shard's block of the "
                f"images; python -m heatcheck merge decides them"]

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        from heatcheck.plugin import AUDIT_INFO_KEY, AUDIT_ITEMS_KEY

        info = config.stash[AUDIT_INFO_KEY]
        audits = [it for it in items if it.nodeid in info]
        if audits and self.worker is not None and not self.each:
            raise pytest.UsageError("heatcheck: the audits split their images across xdist workers "
                                    "themselves: run them with -n N and xdist's default --dist load")
        self.items = [_audit_item(it, info[it.nodeid]) for it in audits]
        # Only sample audits chosen: there is no per-image work to split, so shard 0 runs them all
        # as one process would (its block is the whole set) and the other shards run none.
        self.solo = bool(audits) and all(item.family in SAMPLE_FAMILIES for item in self.items)
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        for it in items:
            family = info[it.nodeid][0] if it.nodeid in info else None
            if family is not None:
                chosen = self.shard.index == 0 if self.solo else runs_family(self.shard, family)
            else:  # not an audit: under xdist's each scheduling, one worker runs it
                chosen = not self.each or self.shard.owns(it.nodeid)
            (keep if chosen else drop).append(it)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
        config.stash[AUDIT_ITEMS_KEY] = [it.nodeid for it in items if it.nodeid in info]

    def whole_set(self, item: pytest.Item) -> bool:
        family = _family(self.config, item.nodeid)
        return family is not None and family not in SAMPLE_FAMILIES

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any],
                             request: pytest.FixtureRequest) -> Any:
        value = yield
        name = fixturedef.argname
        if name in KEPT:
            self.values[name] = self._part(name, value, request)
        elif name == "heatcheck_images":
            self.values["audit_ids"], self.values["audit_labels"] = tuple(value.ids), np.asarray(value.labels)
            self.blocks["audited"] = [int(getattr(value, "offset", 0)),
                                      int(getattr(value, "offset", 0)) + len(value)]
        elif name == "heatcheck_provider":
            methods = self.settings.methods
            self.provider = {"unavailable": {m: value.unavailable(m) for m in methods},
                             "passes_per_map": {m: value.passes_per_map(m) for m in methods}}
        elif name == "heatcheck_labelled_images":
            self.fingerprint = images_fingerprint(value.ids, value.labels)
            rows = slice(0, len(value)) if self.solo else block(len(value), self.settings.batch_size,
                                                                  self.shard)
            self.blocks["labelled"] = [rows.start, rows.stop]
        return value

    def _part(self, name: str, value: Any, request: pytest.FixtureRequest) -> Any:
        if KEPT[name] != "labelled" or self.solo:
            return value
        total = len(request.getfixturevalue("heatcheck_labelled_images"))
        return value[block(total, self.settings.batch_size, self.shard)]

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        if not self.whole_set(pyfuncitem):
            return None
        pyfuncitem.user_properties.append(COMPUTED)  # the merge decides it, on every block's values
        return True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if _family(self.config, report.nodeid) is None:
            return
        outcome = self.outcomes.get(report.nodeid, {}).get("outcome")
        if outcome not in (None, "computed", "passed"):
            return  # the first thing that went wrong stands
        if report.skipped:
            reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else "skipped"
            empty = EMPTY_BLOCK.format(self.shard) in reason
            self.outcomes[report.nodeid] = {"outcome": "empty" if empty else "skipped", "reason": reason}
        elif report.failed:
            self.outcomes[report.nodeid] = {"outcome": "failed" if report.when == "call" else "error",
                                            "reason": report.when}
        elif report.when == "call":
            done = "computed" if COMPUTED in report.user_properties else "passed"
            self.outcomes[report.nodeid] = {"outcome": done, "reason": ""}

    def write(self, store: Any) -> Path:
        """Write this shard's partial (heatcheck.report.partial) and say where."""
        from heatcheck.plugin import _git_commit

        partial = Partial(
            shard=self.shard, heatcheck=heatcheck.__version__, git_commit=_git_commit(self.config.rootpath),
            rootdir=str(self.config.rootpath), settings=settings_to_json(self.settings),
            results=store.to_json(), items=self.items, outcomes=self.outcomes,
            values=dict(self.values), provider=self.provider, blocks=self.blocks,
            images_fingerprint=self.fingerprint, arrays=dict(store.arrays),
            input_errors=list(store.input_errors))
        self.written = write_partial(self.folder, partial)
        return self.written

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """A shard left with no audit test to run (all on other shards) still says so: the merge
        must find every shard (an idle shard's partial holds no values)."""
        from heatcheck.plugin import START_KEY, STORE_KEY, environment

        if self.items and self.written is None and START_KEY in self.config.stash:
            store = self.config.stash[STORE_KEY]
            store.seal([])
            store.environment = {**store.environment, **environment(self.config)}
            self.write(store)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport,
                                 config: pytest.Config) -> tuple[str, str, str] | None:
        return computed_status(report)


def computed_status(report: pytest.TestReport) -> tuple[str, str, str] | None:
    if report.when == "call" and report.passed and COMPUTED in report.user_properties:
        return "computed", "c", "COMPUTED"
    return None


def _audit_item(item: pytest.Item, info: tuple[str, str, str | None]) -> AuditItem:
    callspec = getattr(item, "callspec", None)
    params = {k: v for k, v in (callspec.params.items() if callspec is not None else ())}
    function = getattr(item, "originalname", None) or item.name
    return AuditItem(nodeid=item.nodeid, path=str(item.path), function=function,
                     params={k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
                             for k, v in params.items()},
                     family=info[0], metric=info[1], method=info[2])


class ControllerSession:
    """The xdist controller's hooks: schedule, place the workers' partials, merge, report."""

    def __init__(self, config: pytest.Config, settings: Settings, base: Shard | None) -> None:
        self.config, self.settings, self.base = config, settings, base
        self.folder = settings.report_dir / WORKERS_FOLDER
        self.each = getattr(config.option, "dist", "load") == "load"
        self.merged: Any = None
        self.failure: str | None = None
        self.watcher: Watcher | None = None
        self.session: pytest.Session | None = None
        self.collected: set[str] = set()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["heatcheck_parts"] = str(self.folder)
        node.workerinput["heatcheck_each"] = self.each

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if not self.each:
            return None
        from xdist.scheduler import EachScheduling

        controller = self

        class AuditScheduling(EachScheduling):
            """xdist's each scheduling, counting a test that runs on several workers once."""

            def add_node_collection(self, node: Any, collection: Any) -> None:
                super().add_node_collection(node, collection)
                controller.collected.update(collection)
                if controller.session is not None:  # the terminal's percentage: tests, not copies
                    controller.session.testscollected = len(controller.collected)

        return AuditScheduling(config, log)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.watcher = Watcher(self.folder, terminal_sink(self.config, PROGRESS_S))
        self.watcher.start()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        from heatcheck.report.partial import PREFIX

        partials = sorted(self.folder.glob(f"{PREFIX}*.json"))
        if not partials:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        if self.base is not None:  # shards of a shard: a later merge puts every machine's together
            for path in partials:
                for f in (path, path.with_suffix(".npz")):
                    shutil.move(str(f), self.settings.report_dir / f.name)
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        self._merge(session)

    def _merge(self, session: pytest.Session) -> None:
        from heatcheck.report.merge import MergeError, merge_folders, write_merged

        try:
            self.merged = merge_folders([self.folder])
        except MergeError as exc:
            self.failure = str(exc)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        from heatcheck.plugin import START_KEY

        self.merged.store.environment.update(  # the controller's clock: the whole run, not a worker's
            workers=self.merged.shards, wall_s=round(time.perf_counter() - self.config.stash[START_KEY], 2))
        write_merged(self.merged, self.settings.report_dir)
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.merged.store.verdict() != "pass" and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_report_teststatus(self, report: pytest.TestReport,
                                 config: pytest.Config) -> tuple[str, str, str] | None:
        return computed_status(report)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.failure is not None:
            terminalreporter.write_line(f"heatcheck: cannot merge the workers' results: {self.failure}",
                                        red=True)
            return
        if self.merged is None:
            if self.base is not None:
                terminalreporter.write_line(f"heatcheck shard {self.base}: every worker's partial results "
                                            f"are in {self.settings.report_dir}; merge all shards with "
                                            f"python -m heatcheck merge")
            return
        from heatcheck.plugin.gate import Gate

        failing = [c for c in self.merged.store.checks if c.status == "failed"
                   or (c.status == "inconclusive" and self.settings.fail_inconclusive)]
        if failing:
            terminalreporter.section("heatcheck: checks decided on the merged images", sep="-", red=True)
        for check in failing:
            terminalreporter.write_line(f"FAILED {check.details.get('test')} - {Gate._message(check)}")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        terminalreporter = config.pluginmanager.get_plugin("terminalreporter")
        if terminalreporter is None or self.merged is None:
            return
        from heatcheck.plugin import verdict_line

        for error in self.merged.store.input_errors:
            terminalreporter.write_line(f"heatcheck: input error: {error}", yellow=True)
        line, verdict = verdict_line(self.merged.store, self.settings.report_dir)
        terminalreporter.write_line(line, bold=True, red=verdict != "PASS", green=verdict == "PASS")
