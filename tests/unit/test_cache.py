"""The map cache: hits what it stored, never trusts a corrupt or truncated entry, stays capped."""

import numpy as np

from heatcheck.explain.cache import MapCache


def test_round_trip_and_counts(tmp_path):
    cache = MapCache(tmp_path)
    key = MapCache.key("model", "gradcam", b"\x00\x01")
    assert cache.get(key) is None
    value = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.put(key, value)
    np.testing.assert_array_equal(cache.get(key), value)
    assert (cache.hits, cache.misses) == (1, 1)


def test_keys_are_unambiguous():
    assert MapCache.key("ab", "c") != MapCache.key("a", "bc")


def test_corrupt_or_truncated_entries_are_recomputed_not_trusted(tmp_path):
    cache = MapCache(tmp_path)
    for damage in (lambda b: b[: len(b) // 2], lambda b: b[:-1] + bytes([b[-1] ^ 1]), lambda b: b""):
        key = MapCache.key(str(damage))
        cache.put(key, np.ones((4, 4), np.float32))
        path = next(tmp_path.glob(f"*/{key}.map"))
        path.write_bytes(damage(path.read_bytes()))
        assert cache.get(key) is None
        assert not path.exists()


def test_size_cap_drops_the_oldest(tmp_path):
    cache = MapCache(tmp_path, max_bytes=3000)
    for i in range(10):
        cache.put(MapCache.key(str(i)), np.zeros((16, 16), np.float32))  # ~1.2 kB each
    cache.trim()
    files = list(tmp_path.glob("*/*.map"))
    assert sum(f.stat().st_size for f in files) <= 3000
    assert cache.get(MapCache.key("9")) is not None
