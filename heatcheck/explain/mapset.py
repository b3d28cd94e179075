"""The maps of a whole image set, computed batch by batch and kept on disk.

A set larger than memory has maps larger than memory too (a float32 map is 4/3 the bytes of
its uint8 RGB image, per method), so the map pass writes every batch's maps, and the masks
the localisation audit compares them with, into memory-mapped .npy files; the audits then
read them back a chunk at a time. The operating system pages them in and out as it needs.
The files' space is reserved before the pass starts: a memory map that runs out of disk
kills the process with SIGBUS, which would leave no report and no error line.

The folder (:func:`map_folder`) is removed when the run ends. A run killed with SIGKILL (or by
the out-of-memory killer) cannot remove it, so each folder names its owner (host, process id,
process start time) in an ``owner`` file, and the next run removes the folders whose owner
is gone.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heatcheck.data import ImageSet
from heatcheck.errors import HeatcheckError
from heatcheck.explain.provider import MapProvider

MAP_FOLDER_PREFIX = "heatcheck-maps-"
OWNER_FILE = "owner"


class MapStorageError(HeatcheckError, OSError):
    """The maps of a set do not fit where they are to be kept; the message says where and how much."""


@dataclass(frozen=True)
class MapSet:
    """Normalised maps (N, H, W) per method and the object masks (N, H, W) of an ImageSet."""

    ids: tuple[str, ...]
    masks: np.ndarray
    maps: dict[str, np.ndarray]
    chunk: int = 32

    def __getitem__(self, method: str) -> np.ndarray:
        return self.maps[method]

    def __len__(self) -> int:
        return len(self.ids)

    def chunks(self) -> Iterator[slice]:
        for start in range(0, len(self), self.chunk):
            yield slice(start, min(start + self.chunk, len(self)))

    def per_image(self, method: str, score: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
        """``score(maps, masks)`` of a per-image metric, a chunk at a time, as one (N,) array."""
        maps = self.maps[method]
        return np.concatenate([np.asarray(score(np.asarray(maps[rows]), np.asarray(self.masks[rows])))
                               for rows in self.chunks()])

    def per_mask(self, score: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``score(masks)`` per image, a chunk at a time, as one (N,) array."""
        return np.concatenate([np.asarray(score(np.asarray(self.masks[rows]))) for rows in self.chunks()])

    def rows(self, ids: tuple[str, ...] | list[str], method: str) -> np.ndarray:
        """The maps of ``ids`` in that order; images not in the set get NaN maps."""
        index = {image_id: i for i, image_id in enumerate(self.ids)}
        out = np.full((len(ids), *self.masks.shape[1:]), np.nan, np.float32)
        for row, image_id in enumerate(ids):
            if image_id in index:
                out[row] = self.maps[method][index[image_id]]
        return out


def compute_map_set(provider: MapProvider, images: ImageSet, methods: tuple[str, ...],
                    folder: Path | None = None,
                    progress: Callable[[int, int], None] | None = None) -> MapSet:
    """Every method's normalised maps for ``images``, one batch at a time.

    Args:
        folder: where the memory-mapped arrays live; None keeps them in memory (small sets, tests).
        progress: called with (images done, images in all) after every batch.
    """
    if not methods:  # nothing can run on this model: the audits skip, so read no image
        return MapSet(images.ids, np.zeros((len(images), 0, 0), bool), {}, images.batch_size)
    masks: np.ndarray | None = None
    maps: dict[str, np.ndarray] = {}
    for rows, batch in images.batches():
        computed = provider.explain_many(methods, batch.images, batch.labels, normalise=True)
        if masks is None:
            shape = (len(images), *batch.masks.shape[1:])
            if folder is not None:
                reserve(folder, len(images) * int(np.prod(shape[1:])) * (1 + 4 * len(methods)))
            masks = _allocate(folder, "masks", shape, np.dtype(bool))
            maps = {m: _allocate(folder, f"map-{m}", shape, np.dtype(np.float32)) for m in methods}
        masks[rows] = batch.masks
        for m in methods:
            maps[m][rows] = computed[m]
        if progress is not None:
            progress(rows.stop, len(images))
    assert masks is not None, "an ImageSet is never empty"
    return MapSet(images.ids, masks, maps, images.batch_size)


def reserve(folder: Path, needed: int) -> None:
    """Refuse, with one line, to start a map pass whose files the disk cannot hold."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise MapStorageError(f"the maps need {needed / 2**20:.1f} MB in {folder} but only "
                              f"{free / 2**20:.1f} MB are free: point TMPDIR at a larger disk")


def _allocate(folder: Path | None, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if folder is None:
        return np.empty(shape, dtype)
    array = np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
    if hasattr(os, "posix_fallocate"):
        # The file is sparse until written: claim its blocks now, so that a disk filled by
        # someone else fails here, with a line, not later in the middle of a page write.
        with open(folder / f"{name}.npy", "r+b") as handle:
            try:
                os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
            except OSError as err:
                if err.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise MapStorageError(f"cannot reserve {folder / f'{name}.npy'}: {err}") from None
                # a filesystem that cannot preallocate (EOPNOTSUPP): the free-space check stands
    return array


# --- the folder the maps live in, and the ones killed runs left behind --------------------------

def _process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks after boot, Linux), so that a process id the
    system gave to a new process is not taken for the old owner; "" where /proc cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the command name may hold spaces


def _owner() -> str:
    return f"{socket.gethostname()} {os.getpid()} {_process_start(os.getpid())}"


def _owner_gone(folder: Path) -> bool:
    """True when the run that made ``folder`` has ended on this host; False when it may still run
    or cannot be told (no owner file yet or from an older heatcheck, another host, another user)."""
    try:
        if folder.stat().st_uid != os.getuid():
            return False
        host, pid_text, *start = (folder / OWNER_FILE).read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's process
        return False
    return bool(start) and start[0] != _process_start(pid)


def remove_stale_map_folders(parent: Path | None = None) -> list[Path]:
    """Remove the map folders in ``parent`` (default: the temporary folder) whose run has ended
    without removing them (SIGKILL, out of memory); returns the ones removed."""
    parent = Path(parent or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        candidates = [p for p in parent.glob(f"{MAP_FOLDER_PREFIX}*") if p.is_dir() and not p.is_symlink()]
    except OSError:
        return removed
    for folder in candidates:
        if _owner_gone(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextmanager
def map_folder(parent: Path | None = None) -> Iterator[Path]:
    """A new temporary folder for one run's maps, named with its owner and removed at the end;
    the folders killed runs left behind are removed first."""
    remove_stale_map_folders(parent)
    # ignore_cleanup_errors: Windows refuses to delete a file that is still mapped.
    with tempfile.TemporaryDirectory(prefix=MAP_FOLDER_PREFIX, dir=parent,
                                     ignore_cleanup_errors=True) as name:
        folder = Path(name)
        (folder / OWNER_FILE).write_text(_owner())
        yield folder
