"""The on-disk map cache: one file per (model, method, parameters, input image).

Keys hash everything a map depends on: the model's weights (file hash, or a derived key for
randomised copies), the preprocessed input's bytes, the label, the method and its
parameters, the engine and the heatcheck version. Each file holds a SHA-256 of its payload,
so a corrupt or truncated entry is detected and recomputed, never trusted. The folder is
capped in size; the least recently written files go first.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_DIGEST = 32


@dataclass
class MapCache:
    """Per-image maps on disk under ``root``, at most ``max_bytes`` in all."""

    root: Path
    max_bytes: int = 512 * 1024 * 1024
    hits: int = 0
    misses: int = 0
    _written: int = 0

    @staticmethod
    def key(*parts: str | bytes) -> str:
        digest = hashlib.sha256()
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "little"))  # length-prefixed: no ambiguity
            digest.update(data)
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.map"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            blob = path.read_bytes()
        except OSError:
            self.misses += 1
            return None
        payload = blob[_DIGEST:]
        if len(blob) <= _DIGEST or hashlib.sha256(payload).digest() != blob[:_DIGEST]:
            path.unlink(missing_ok=True)  # corrupt or truncated: recompute, never trust
            self.misses += 1
            return None
        try:
            value = np.load(io.BytesIO(payload), allow_pickle=False)
        except (ValueError, OSError):
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return np.asarray(value)

    def put(self, key: str, value: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(value), allow_pickle=False)
        payload = buffer.getvalue()
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, path)
        self._written += len(payload) + _DIGEST
        if self._written > self.max_bytes // 8:  # trim now and then, not on every write
            self.trim()
            self._written = 0

    def trim(self) -> None:
        """Delete the oldest entries until the folder is under its cap."""
        files = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.root.glob("*/*.map")]
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
