"""Class-names files: a JSON list, a JSON object keyed by index (Keras' imagenet_class_index), lines."""

import json
from pathlib import Path

import pytest

from heatcheck.models import class_names


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


@pytest.mark.parametrize(("name", "text"), [("names.txt", "cat\ndog\n"), ("names.json", '["cat", "dog"]')])
def test_utf8_byte_order_mark_is_not_part_of_the_first_name(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert class_names.read_file(path) == ("cat", "dog")


@pytest.mark.parametrize(("name", "text"), [("names.txt", "cat\ndog\ncat\n"),
                                            ("names.json", '["cat", "dog", "cat"]'),
                                            ("index.json", '{"0": ["n1", "cat"], "1": ["n2", "cat"]}')])
def test_duplicate_class_names_are_refused_naming_the_file_and_the_name(
        tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate") as raised:
        class_names.read_file(path)
    assert str(raised.value).startswith(f"class names file {path}: ")
    assert "'cat'" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_file_that_is_not_utf8_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_bytes("café\nthé\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8") as raised:
        class_names.read_file(path)
    assert str(raised.value).startswith(f"class names file {path}: ")
