"""Progress of a long pass (heatcheck.progress): the line, in place on a terminal or every N seconds
in a log, and several workers' passes summed."""

from __future__ import annotations

from pathlib import Path

from heatcheck.progress import FileSink, PassProgress, State, TerminalSink, read_states, summed


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_line_says_images_done_maps_per_second_and_time_left() -> None:
    clock = Clock()
    seen: list[State] = []
    progress = PassProgress("maps (saliency, gradcam)", 2, seen.append, clock)
    clock.now = 10.0
    progress(250, 1000)
    state = seen[-1]
    assert state.maps_per_s == 50.0
    assert state.left_s == 30.0
    assert not state.finished
    assert state.line() == "heatcheck: maps (saliency, gradcam) 250/1,000 images, 50.0 maps/s, 30 s left"
    assert State("maps", 0, 10, 0.0, None).line() == "heatcheck: maps 0/10 images"
    assert State("maps", 1, 10, 1.0, 4000.0).line().endswith("67 min left")


def test_workers_summed_add_images_and_rates_and_wait_for_the_slowest() -> None:
    total = summed([State("maps", 100, 500, 20.0, 40.0), State("maps", 300, 500, 30.0, 90.0)])
    assert total == State("maps", 400, 1000, 50.0, 90.0, False)
    done = summed([State("maps", 500, 500, 20.0, 0.0, True), State("maps", 450, 500, 30.0, 5.0)])
    assert done is not None
    assert done.maps_per_s == 30.0
    assert done.left_s == 5.0
    assert not done.finished
    assert summed([]) is None


def test_a_log_gets_a_line_every_n_seconds_and_a_short_pass_none() -> None:
    clock, lines = Clock(), []
    sink = TerminalSink(lines.append, None, every_s=10.0, clock=clock)
    for t in (1, 5, 9):
        clock.now = t
        sink(State("maps", t, 100, 1.0, 100.0 - t))
    assert lines == []
    clock.now = 10.5
    sink(State("maps", 10, 100, 1.0, 90.0))
    clock.now = 12.0
    sink(State("maps", 12, 100, 1.0, 88.0))
    assert lines == ["heatcheck: maps 10/100 images, 1.0 maps/s, 90 s left"]


def test_a_terminal_gets_one_line_rewritten_in_place() -> None:
    clock, lines, rewritten = Clock(), [], []
    sink = TerminalSink(lines.append, lambda text, last: rewritten.append((text, last)), every_s=10.0,
                        clock=clock)
    for t in (0.5, 1.2, 1.4, 2.0):
        clock.now = t
        sink(State("maps", int(t * 10), 100, 1.0, None))
    sink(State("maps", 100, 100, 1.0, 0.0, finished=True))
    sink(State("maps", 100, 100, 1.0, 0.0, finished=True))  # a watcher repeats the last: printed once
    assert lines == []
    assert len(rewritten) == 3
    assert rewritten[-1][0].startswith("heatcheck: maps 100/100")
    assert [last for _, last in rewritten] == [False, False, True]  # only the last ends the line


def test_a_workers_state_goes_through_a_file(tmp_path: Path) -> None:
    clock = Clock()
    sink = FileSink(tmp_path / "progress-gw0.json", every_s=1.0, clock=clock)
    sink(State("maps", 1, 4, 2.0, 1.5))
    clock.now = 0.5
    sink(State("maps", 2, 4, 2.0, 1.0))  # too soon: not written
    (tmp_path / "progress-gw1.json").write_text("{not json")  # being replaced: skipped
    assert read_states(tmp_path) == [State("maps", 1, 4, 2.0, 1.5)]
    sink(State("maps", 4, 4, 2.0, 0.0, True))  # the last always
    assert read_states(tmp_path)[0].finished
