"""Class-names files: a JSON list, a JSON object keyed by index (Keras' imagenet_class_index), lines."""

import json
from pathlib import Path

import pytest

from heatcheck import class_names


def test_json_object_keyed_by_index_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    path.write_text(json.dumps({"1": ["n2", "dog"], "0": ["n1", "cat"]}))
    assert class_names.read_file(path) == ("cat", "dog")
    path.write_text(json.dumps({"0": "cat", "01": "dog"}))  # "01" is index 1 (it was a KeyError)
    assert class_names.read_file(path) == ("cat", "dog")


@pytest.mark.parametrize("keys", [["0", "1", "01"], ["0", "2"], ["1"], ["0", "x"]])
def test_json_object_with_keys_other_than_0_to_n_is_refused(tmp_path: Path, keys: list[str]) -> None:
    path = tmp_path / "index.json"
    path.write_text(json.dumps({k: f"name{k}" for k in keys}))
    with pytest.raises(ValueError, match="keyed by class index|keys 0..N-1, each once"):
        class_names.read_file(path)
