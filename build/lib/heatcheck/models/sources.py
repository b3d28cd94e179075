"""Reading a model from a spec: model files, SavedModel folders, ``module:function`` factories,
weights files, and the hashes that identify what was read."""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from heatcheck.errors import ModelError, one_line

# module:function, e.g. "my_models:build" or "pkg.nets:make_classifier".
FACTORY_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_model_file(path: Path, *, safe_mode: bool = True) -> Any:
    """Load a ``.keras``/``.h5`` file with Keras safe mode on unless the user opts out."""
    import keras

    if not path.exists():
        raise ModelError(f"{path}: model file not found")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=safe_mode)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise ModelError(f"{path}: refused by Keras safe mode (it contains a Lambda layer or "
                             f"custom code); pass --hc-unsafe-model if you trust this file") from exc
        raise ModelError(f"{path}: cannot load model: {one_line(exc)}") from exc
    except Exception as exc:  # h5py/zipfile raise many types for a corrupt file
        raise ModelError(f"{path}: cannot load model ({type(exc).__name__}: {one_line(exc)})") from exc


def load_saved_model(path: Path, *, safe_mode: bool = True) -> Any:
    """A TensorFlow SavedModel folder as a functional Keras model around ``keras.layers.TFSMLayer``.

    A SavedModel runs TensorFlow graph code that Keras safe mode cannot check (Keras itself
    refuses to deserialize a TFSMLayer in safe mode), so it needs ``--hc-unsafe-model``. Its
    outputs, when a dict, become outputs named by their keys (choose one with ``--hc-output``).
    """
    import keras

    if not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path}: not a model file and not a SavedModel folder (no saved_model.pb)")
    if safe_mode:
        raise ModelError(f"{path}: a SavedModel runs TensorFlow graph code that Keras safe mode cannot "
                         f"check; pass --hc-unsafe-model if you trust this folder")
    layer = _tfsm_layer(path)
    fn = layer.call_endpoint_fn
    signature = getattr(fn, "input_signature", None) or getattr(fn, "structured_input_signature", None)
    specs = [s for s in keras.tree.flatten(signature) if hasattr(s, "shape") and hasattr(s, "dtype")]
    if len(specs) != 1:
        raise ModelError(f"{path}: the SavedModel's {layer.call_endpoint} endpoint takes {len(specs)} "
                         f"inputs; heatcheck needs one image input")
    image = keras.Input(tuple(specs[0].shape[1:]), dtype=specs[0].dtype.name)
    out = layer(image)
    if isinstance(out, dict):
        out = {k: keras.layers.Identity(name=k)(v) for k, v in sorted(out.items())}
        out = next(iter(out.values())) if len(out) == 1 else out
    return keras.Model(image, out, name=re.sub(r"\W", "_", path.name) or "saved_model")


def _tfsm_layer(path: Path) -> Any:
    """The SavedModel's serving function: ``serve`` (``model.export``) or ``serving_default``."""
    import keras

    try:
        return keras.layers.TFSMLayer(str(path), call_endpoint="serve")
    except ValueError:
        pass
    except Exception as exc:  # a damaged folder: TensorFlow raises many types
        raise ModelError(f"{path}: cannot load SavedModel ({type(exc).__name__}: {one_line(exc)})") from exc
    try:
        return keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    except Exception as exc:
        raise ModelError(f"{path}: cannot load SavedModel: {one_line(exc)}") from exc


@contextmanager
def _current_directory_importable() -> Iterator[None]:
    """``import`` finds modules in the current directory too (as ``python -m`` does)."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # a module written since the last import must be seen
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)


def import_object(spec: str, option: str = "--hc-model") -> Callable[..., Any]:
    """The callable ``module:function`` names, imported from sys.path or the current directory."""
    module_name, _, attr = spec.partition(":")
    with _current_directory_importable():
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # the user's module may raise anything on import
            raise ModelError(f"{option} {spec}: cannot import {module_name} from sys.path or the current "
                             f"directory ({type(exc).__name__}: {one_line(exc)})") from exc
    obj = getattr(module, attr, None)
    if not callable(obj):
        raise ModelError(f"{option} {spec}: module {module_name} has no function {attr}")
    return obj


def load_factory(spec: str) -> Any:
    """The Keras model a ``module:function`` factory returns (called with no arguments).

    The factory is the user's own code, so safe mode has nothing to protect here: a model it
    builds with a Lambda layer is accepted.
    """
    import keras

    factory = import_object(spec)
    try:
        model = factory()
    except Exception as exc:  # the user's code may raise anything
        raise ModelError(f"--hc-model {spec}: the factory raised {type(exc).__name__}: "
                         f"{one_line(exc)}") from exc
    if not isinstance(model, keras.Model):
        raise ModelError(f"--hc-model {spec}: the factory returned {type(model).__name__}, not a keras Model")
    return model


def load_model_object(spec: str, *, safe_mode: bool = True) -> tuple[Any, str, str]:
    """The model a file, SavedModel folder or factory spec names, its SHA-256 and its source kind."""
    path = Path(spec)
    if path.is_dir():
        return load_saved_model(path, safe_mode=safe_mode), file_sha256(path), "saved_model"
    if path.is_file():
        if path.name.endswith(".weights.h5"):
            raise ModelError(f"{path}: a weights file, not a model; pass it as --hc-weights with the "
                             f"architecture as --hc-model (a keras.applications name or module:function)")
        return load_model_file(path, safe_mode=safe_mode), file_sha256(path), "file"
    if FACTORY_SPEC.match(spec):
        model = load_factory(spec)
        return model, weights_sha256(model), "factory"
    if path.suffix.lower() in MODEL_SUFFIXES or os.sep in spec:
        raise ModelError(f"{path}: model file not found")
    from heatcheck.models.applications import APPLICATIONS

    raise ModelError(f"--hc-model {spec}: not a model file, a SavedModel folder, a keras.applications "
                     f"name ({', '.join(APPLICATIONS)}) or module:function")


def load_weights_file(model: Any, path: Path, target: str) -> Any:
    """``model`` with the weights of ``path`` loaded; a file for another architecture → ModelError."""
    try:
        model.load_weights(path)
    except Exception as exc:  # Keras raises ValueError for a mismatch, h5py/OSError for a bad file
        raise ModelError(f"weights file {path} does not fit {target}: {one_line(exc)}") from exc
    return model


def with_weights(model: Any, sha256: str, weights: str | None, spec: str) -> tuple[Any, str]:
    """A file's or factory's model with ``--hc-weights PATH`` loaded into it (the model is ours)."""
    if weights is None:
        return model, sha256
    if weights in ("imagenet", "none"):
        from heatcheck.models.applications import APPLICATIONS

        raise ModelError(f"--hc-weights {weights} applies to keras.applications names "
                         f"({', '.join(APPLICATIONS)}), not to {spec}")
    path = Path(weights)
    if not path.is_file():
        raise ModelError(f"--hc-weights {weights}: no such file")
    load_weights_file(model, path, spec)
    return model, weights_sha256(model)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_dir():  # SavedModel folder: hash every file in a stable order
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(child.relative_to(path).as_posix().encode())
            digest.update(child.read_bytes())
    else:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def weights_sha256(model: Any) -> str:
    """A hash of the model's weights (for models that do not come from one file)."""
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(w.tobytes())
    return digest.hexdigest()
