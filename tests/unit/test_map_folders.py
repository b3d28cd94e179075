"""Map folders: a run killed with SIGKILL leaves its folder behind; the next run removes it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from heatcheck.explain import mapset

REPO = Path(__file__).resolve().parents[2]
KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from heatcheck.explain.mapset import map_folder
with map_folder(Path(sys.argv[1])) as folder:
    (folder / "map-gradcam.npy").write_bytes(b"0" * 1000)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_folder_of_a_run_killed_with_sigkill_is_removed_by_the_next_run(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path)], cwd=REPO, check=False)
    assert done.returncode == -9
    [left] = tmp_path.glob("heatcheck-maps-*")  # what the bug left behind in $TMPDIR
    assert (left / "map-gradcam.npy").exists()
    with mapset.map_folder(tmp_path) as folder:
        assert not left.exists()
        host, pid, _ = (folder / mapset.OWNER_FILE).read_text().split()
        assert (host, pid) == (socket.gethostname(), str(os.getpid()))
    assert not folder.exists()
    assert list(tmp_path.iterdir()) == []


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_folders_whose_owner_is_gone_are_removed(tmp_path: Path) -> None:
    me = f"{socket.gethostname()} {os.getpid()} {mapset._process_start(os.getpid())}"
    owners = {
        "dead": f"{socket.gethostname()} {dead_pid()} 1",
        "pid-reused": f"{socket.gethostname()} {os.getpid()} 0",  # same id, another start time
        "alive": me,
        "other-host": f"not-{socket.gethostname()} {dead_pid()} 1",
        "garbled": "???",
        "no-owner-file": None,  # an older heatcheck's, or one being created this instant
    }
    for name, owner in owners.items():
        folder = tmp_path / f"heatcheck-maps-{name}"
        folder.mkdir()
        if owner is not None:
            (folder / mapset.OWNER_FILE).write_text(owner)
    (tmp_path / "something-else").mkdir()
    removed = mapset.remove_stale_map_folders(tmp_path)
    assert sorted(p.name for p in removed) == ["heatcheck-maps-dead", "heatcheck-maps-pid-reused"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "heatcheck-maps-alive", "heatcheck-maps-garbled", "heatcheck-maps-no-owner-file",
        "heatcheck-maps-other-host", "something-else"]
