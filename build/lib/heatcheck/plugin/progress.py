"""Progress of a long pass: images done, maps per second, time left.

A pass reports ``(done, total)`` after every batch to a :class:`PassProgress`, which turns it
into a state and hands it to a sink: on a terminal one line rewritten in place, in a CI log
(not a terminal) one line every ``every_s`` seconds, and in a pytest-xdist worker a small JSON
file that the controller reads, sums over the workers (:func:`summed`) and prints. Nothing here
imports pytest: the plugin gives the sinks pytest's terminal writer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from heatcheck.report.results import atomic_write

TTY_EVERY_S = 0.5  # how often a line rewritten in place on a terminal may change


@dataclass(frozen=True)
class State:
    """One pass at one moment (or several workers' passes summed)."""

    what: str
    done: int
    total: int
    maps_per_s: float
    left_s: float | None  # None: not known yet
    finished: bool = False

    def line(self) -> str:
        left = "" if self.left_s is None else f", {_duration(self.left_s)} left"
        rate = f", {self.maps_per_s:.1f} maps/s" if self.maps_per_s > 0 else ""
        return f"heatcheck: {self.what} {self.done:,}/{self.total:,} images{rate}{left}"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class PassProgress:
    """The callback a pass calls with (images done, images in all) after every batch.

    Args:
        what: what the pass computes, e.g. "maps (saliency, gradcam)".
        maps_per_image: maps each image yields (the methods), for the rate.
        sink: receives the state after every batch.
    """

    def __init__(self, what: str, maps_per_image: int, sink: Callable[[State], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.maps_per_image, self.sink, self.clock = what, max(1, maps_per_image), sink, clock
        self.start = clock()

    def __call__(self, done: int, total: int) -> None:
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = done / elapsed
        left = (total - done) / rate if done else None
        self.sink(State(self.what, done, total, rate * self.maps_per_image, left, done >= total))


def summed(states: Iterable[State]) -> State | None:
    """Several workers' passes as one: images and rates added, time left the slowest worker's."""
    states = list(states)
    if not states:
        return None
    lefts = [s.left_s for s in states if not s.finished]
    known = [v for v in lefts if v is not None]
    return State(states[0].what, sum(s.done for s in states), sum(s.total for s in states),
                 sum(s.maps_per_s for s in states if not s.finished),
                 max(known) if known and len(known) == len(lefts) else (0.0 if not lefts else None),
                 all(s.finished for s in states))


class TerminalSink:
    """Prints states: rewritten in place on a terminal, a line every ``every_s`` in a log.

    ``write_line(text)`` prints a line; ``rewrite(text, last)`` replaces the current one (None
    where the output is not a terminal; ``last``: the pass is over, end the line). Nothing is
    printed before ``every_s`` (at most 1 s on a terminal) has passed: a short pass stays silent.
    """

    def __init__(self, write_line: Callable[[str], None], rewrite: Callable[[str, bool], None] | None,
                 every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.write_line, self.rewrite, self.every_s, self.clock = write_line, rewrite, every_s, clock
        self.start = self.last = clock()
        self.shown = self.closed = False

    def __call__(self, state: State) -> None:
        now = self.clock()
        if self.closed:
            return
        self.closed = state.finished
        if self.rewrite is not None:
            if state.finished and self.shown:
                self.rewrite(state.line(), True)
            elif not state.finished and now - self.start >= min(self.every_s, 1.0) \
                    and now - self.last >= TTY_EVERY_S:
                self.rewrite(state.line(), False)
                self.shown, self.last = True, now
            return
        if not state.finished and now - self.last >= self.every_s:
            self.write_line(state.line())
            self.last = now


class FileSink:
    """Writes a worker's state to ``path`` (JSON, at most once a ``every_s``; the last always)."""

    def __init__(self, path: Path, every_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.every_s, self.clock = path, every_s, clock
        self.last = -float("inf")

    def __call__(self, state: State) -> None:
        now = self.clock()
        if state.finished or now - self.last >= self.every_s:
            atomic_write(self.path, json.dumps(asdict(state)).encode())
            self.last = now


def read_states(folder: Path, pattern: str = "progress-*.json") -> list[State]:
    """The states workers left in ``folder`` (unreadable ones are skipped: a worker may be
    replacing its file)."""
    states = []
    for path in sorted(folder.glob(pattern)):
        try:
            states.append(State(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return states


class Watcher(threading.Thread):
    """On the controller: every ``every_s`` seconds, sum the workers' states and print them."""

    def __init__(self, folder: Path, sink: Callable[[State], None], every_s: float = 1.0) -> None:
        super().__init__(name="heatcheck-progress", daemon=True)
        self.folder, self.sink, self.every_s = folder, sink, every_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            state = summed(read_states(self.folder))
            if state is not None:
                self.sink(state)

    def stop(self) -> None:
        self.stopped.set()
