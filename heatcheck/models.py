"""Loading a classifier and wrapping it once for attribution (softmax → logits).

``load_spec`` is the entry point. A spec is a keras.applications name (``vgg16``, see
heatcheck.applications), a ``.keras`` or legacy ``.h5`` model file, a TensorFlow SavedModel
folder, or a ``module:function`` factory that returns a Keras model. Whatever cannot be
audited is refused with a one-line ModelError naming the spec and the fix.

Nested models (a keras.applications base inside a Sequential or functional model) hide
their conv layers from ``get_layer``, so Grad-CAM cannot read them ("Graph disconnected" in
tf-keras-vis). ``flatten`` rebuilds such a model as one flat functional graph of copies of
every leaf layer, called in the original order with the original weights, so that the
logits model's ``get_layer(conv)`` reaches the inner conv layer and gradients flow through.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# module:function, e.g. "my_models:build" or "pkg.nets:make_classifier".
FACTORY_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


class ModelError(ValueError):
    """A model that cannot be audited; the message names the file or layer and the problem."""


@dataclass(frozen=True)
class AuditModel:
    """The model under audit, wrapped once.

    ``model`` is the user's model, never mutated (for a multi-output model, a view of the
    chosen output that shares its layers); ``logits_model`` is a copy with the last
    activation replaced by a linear one (as the seed does with ReplaceToLinear), since a
    softmax output's gradients mostly say how the other classes fall. ``extra`` records how
    the model was read: its source, the nested models flattened, why there is no conv layer.
    """

    spec: str
    model: Any
    logits_model: Any
    conv_layer: str | None
    input_shape: tuple[int, int, int]
    num_classes: int
    device: str
    sha256: str
    class_names: tuple[str, ...] = ()
    preprocess: str = "raw"
    extra: dict[str, Any] = field(default_factory=dict)

    def class_name(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else str(index)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line: its first two non-empty lines, at most 300 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines[:2]) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def pick_device() -> str:
    """The GPU when TensorFlow sees one, else the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # Grow memory on demand so that other processes (and retries at a smaller batch) fit.
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: growth can only be set before first use
            pass
    return "/GPU:0" if gpus else "/CPU:0"


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


# ---------------------------------------------------------------------------------------------
# Reading a model from a spec


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
                             f"custom code); pass --unsafe-model if you trust this file") from exc
        raise ModelError(f"{path}: cannot load model: {one_line(exc)}") from exc
    except Exception as exc:  # h5py/zipfile raise many types for a corrupt file
        raise ModelError(f"{path}: cannot load model ({type(exc).__name__}: {one_line(exc)})") from exc


def load_saved_model(path: Path, *, safe_mode: bool = True) -> Any:
    """A TensorFlow SavedModel folder as a functional Keras model around ``keras.layers.TFSMLayer``.

    A SavedModel runs TensorFlow graph code that Keras safe mode cannot check (Keras itself
    refuses to deserialize a TFSMLayer in safe mode), so it needs ``--unsafe-model``. Its
    outputs, when a dict, become outputs named by their keys (choose one with ``--output``).
    """
    import keras

    if not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path}: not a model file and not a SavedModel folder (no saved_model.pb)")
    if safe_mode:
        raise ModelError(f"{path}: a SavedModel runs TensorFlow graph code that Keras safe mode cannot "
                         f"check; pass --unsafe-model if you trust this folder")
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


def import_object(spec: str, option: str = "--model") -> Callable[..., Any]:
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
        raise ModelError(f"--model {spec}: the factory raised {type(exc).__name__}: {one_line(exc)}") from exc
    if not isinstance(model, keras.Model):
        raise ModelError(f"--model {spec}: the factory returned {type(model).__name__}, not a keras Model")
    return model


def load_model_object(spec: str, *, safe_mode: bool = True) -> tuple[Any, str, str]:
    """The model a file, SavedModel folder or factory spec names, its SHA-256 and its source kind."""
    path = Path(spec)
    if path.is_dir():
        return load_saved_model(path, safe_mode=safe_mode), file_sha256(path), "saved_model"
    if path.is_file():
        if path.name.endswith(".weights.h5"):
            raise ModelError(f"{path}: a weights file, not a model; pass it as --weights with the "
                             f"architecture as --model (a keras.applications name or module:function)")
        return load_model_file(path, safe_mode=safe_mode), file_sha256(path), "file"
    if FACTORY_SPEC.match(spec):
        model = load_factory(spec)
        return model, weights_sha256(model), "factory"
    if path.suffix.lower() in MODEL_SUFFIXES or os.sep in spec:
        raise ModelError(f"{path}: model file not found")
    from heatcheck.applications import APPLICATIONS

    raise ModelError(f"--model {spec}: not a model file, a SavedModel folder, a keras.applications "
                     f"name ({', '.join(APPLICATIONS)}) or module:function")


def load_weights_file(model: Any, path: Path, target: str) -> Any:
    """``model`` with the weights of ``path`` loaded; a file for another architecture → ModelError."""
    try:
        model.load_weights(path)
    except Exception as exc:  # Keras raises ValueError for a mismatch, h5py/OSError for a bad file
        raise ModelError(f"weights file {path} does not fit {target}: {one_line(exc)}") from exc
    return model


def _with_weights(model: Any, sha256: str, weights: str | None, spec: str) -> tuple[Any, str]:
    """A file's or factory's model with ``--weights PATH`` loaded into it (the model is ours)."""
    if weights is None:
        return model, sha256
    if weights in ("imagenet", "none"):
        from heatcheck.applications import APPLICATIONS

        raise ModelError(f"--weights {weights} applies to keras.applications names "
                         f"({', '.join(APPLICATIONS)}), not to {spec}")
    path = Path(weights)
    if not path.is_file():
        raise ModelError(f"--weights {weights}: no such file")
    load_weights_file(model, path, spec)
    return model, weights_sha256(model)


# ---------------------------------------------------------------------------------------------
# Shaping the model for attribution


def _is_graph(model: Any) -> bool:
    """A Sequential or functional model, whose layer graph heatcheck can read and rebuild."""
    import keras

    # Functional models keep their graph in _nodes_by_depth; subclassed models have none.
    return isinstance(model, keras.Sequential) or hasattr(model, "_nodes_by_depth")


def select_output(model: Any, spec: str, output: str | None = None) -> Any:
    """A single-input, single-output view of ``model`` (``output``: index or name), sharing its layers."""
    import keras

    if not _is_graph(model):
        raise ModelError(f"{spec}: a subclassed keras Model has no layer graph to read; build it with "
                         f"keras.Input and the functional API, or as a Sequential")
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError):
        raise ModelError(f"{spec}: the model is not built (no input shape); start it with "
                         f"keras.Input") from None
    if len(inputs) != 1:
        raise ModelError(f"{spec}: the model takes {len(inputs)} inputs; heatcheck audits "
                         f"one-image classifiers")
    index = _output_index(model, spec, output)
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(model, keras.Sequential) or (len(outputs) == 1 and not isinstance(struct, list | dict)):
        return model
    # One bare output tensor, so that logits_model.output is a tensor, not [tensor].
    return keras.Model(inputs[0], outputs[index], name=model.name)


def _output_index(model: Any, spec: str, output: str | None) -> int:
    """Which output ``--output`` (an index, an output layer's name or a dict key) picks."""
    outputs = list(model.outputs)
    names = [str(n) for n in getattr(model, "output_names", None) or range(len(outputs))]
    struct = getattr(model, "_outputs_struct", None)
    # Keras flattens a dict of outputs in sorted key order.
    keys = sorted(str(k) for k in struct) if isinstance(struct, dict) else []
    listing = ", ".join(f"{i}: {n} {tuple(t.shape)}" for i, (n, t) in enumerate(zip(names, outputs,
                                                                                     strict=True)))
    if output is None:
        if len(outputs) > 1:
            raise ModelError(f"{spec}: the model has {len(outputs)} outputs ({listing}); pick one "
                             f"with --output INDEX|NAME")
        return 0
    if output.isdigit() and int(output) < len(outputs):
        return int(output)
    if output in names:
        return names.index(output)
    if output in keys:
        return keys.index(output)
    raise ModelError(f"--output {output}: no such output; the model's outputs are {listing}")


def check_input(model: Any, spec: str) -> tuple[int, int, int]:
    """The (height, width, 3) a channels-last RGB model takes, or a ModelError saying the fix."""
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) == 3 and shape[0] in (1, 3) and shape[-1] not in (1, 3):
        _, h, w = shape
        raise ModelError(f"{spec}: input shape {shape} is channels-first, which heatcheck does not "
                         f"support; wrap it channels-last: inp = keras.Input(({h}, {w}, 3)); "
                         f"keras.Model(inp, model(keras.layers.Permute((3, 1, 2))(inp)))")
    if len(shape) != 3 or shape[-1] != 3:
        raise ModelError(f"{spec}: input shape {shape} is not (height, width, 3) channels-last RGB")
    if shape[0] is None or shape[1] is None:
        raise ModelError(f"{spec}: input size {shape} is not fixed; build the model on "
                         f"keras.Input((height, width, 3)) at the size it was trained on")
    return int(shape[0]), int(shape[1]), 3


def check_output(model: Any, spec: str) -> int:
    """The number of classes of a (batch, classes) output."""
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 2 or shape[-1] is None:
        raise ModelError(f"{spec}: output shape {shape} is not (batch, classes)")
    return int(shape[-1])


@contextmanager
def _in_memory_layers() -> Iterator[None]:
    """Copy layers that are already in memory even if they hold Python code (a Lambda).

    Safe mode guards files from untrusted sources; a model already loaded (with
    --unsafe-model) or built by the user's factory has run its code already, and copying it
    must not fail. Keras has no public scope for this, hence its private SafeModeScope.
    """
    from keras.src.saving.serialization_lib import SafeModeScope

    with SafeModeScope(False):
        yield


def linearise_head(model: Any) -> Any:
    """``model`` (a private copy) with its output activation made linear, in place.

    A Dense/Activation layer gets a linear activation; a separate softmax (a Softmax layer
    or ``keras.ops.softmax``) is cut off by returning the model up to its input.
    """
    import keras

    history = getattr(model.outputs[0], "_keras_history", None)
    last = history.operation if history is not None else model.layers[-1]
    if type(last).__name__ == "Softmax" and history is not None:
        node = last._inbound_nodes[history.node_index]
        return keras.Model(model.inputs[0], node.input_tensors[0], name=model.name)
    if getattr(last, "activation", None) is not None:
        last.activation = keras.activations.linear
    return model


def with_linear_head(model: Any, spec: str | None = None) -> Any:
    """A copy of ``model`` whose last layer outputs logits; the original stays untouched."""
    import keras

    try:
        with _in_memory_layers():
            clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
    except Exception as exc:  # custom layers whose get_config() cannot rebuild them
        raise ModelError(f"{spec or model.name}: cannot copy the model to give it a linear head "
                         f"({type(exc).__name__}: {one_line(exc)}); custom layers need a "
                         f"get_config() that rebuilds them") from exc
    return linearise_head(clone)


class _Flattener:
    """Rebuilds a model with nested models as one flat functional graph of copied leaf layers."""

    def __init__(self) -> None:
        self.copies: dict[int, tuple[Any, Any]] = {}  # id(original) → (original, copy)
        self.names: set[str] = set()

    def flatten(self, model: Any) -> Any:
        import keras

        image = keras.Input(tuple(model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype)
        with _in_memory_layers():
            out = keras.tree.flatten(self.call(model, image))
        flat = keras.Model(image, out[0] if len(out) == 1 else out, name=model.name)
        for original, copy in self.copies.values():  # copies are built now: weights can go in
            copy.set_weights(original.get_weights())
        return flat

    def call(self, model: Any, x: Any) -> Any:
        import keras

        if isinstance(model, keras.Sequential):
            for layer in model.layers:
                x = self.operation(layer)(x)
            return x
        # Function._run_through_graph is private Keras API: it walks the functional graph in
        # order and lets us swap each operation, which is exactly the rebuild we need.
        return model._run_through_graph(x, operation_fn=self.operation)

    def operation(self, op: Any) -> Any:
        import keras

        if isinstance(op, keras.Model) and _is_graph(op):
            return lambda *args, **kwargs: self.call(op, args[0])  # training=… is the caller's
        if not isinstance(op, keras.layers.Layer):
            return op  # a stateless keras.ops node (x / 255, …): reuse it
        if id(op) not in self.copies:  # one copy per layer, so shared layers stay shared
            config = op.get_config()
            config["name"] = self._unique(op.name)
            self.copies[id(op)] = (op, type(op).from_config(config))
        return self.copies[id(op)][1]

    def _unique(self, name: str) -> str:
        candidate, k = name, 1
        while candidate in self.names:  # an outer and an inner layer may share a name
            candidate, k = f"{name}_{k}", k + 1
        self.names.add(candidate)
        return candidate


def flatten(model: Any) -> Any:
    """A flat functional copy of ``model`` whose nested models' layers are its own layers.

    Layers keep their names unless an outer and an inner layer share one (then ``_1`` is
    appended); weights are copied; the original model is not touched.
    """
    return _Flattener().flatten(model)


def nested_models(model: Any) -> list[str]:
    import keras

    return [layer.name for layer in model.layers if isinstance(layer, keras.Model)]


def find_conv_layer(model: Any, name: str | None = None) -> str | None:
    """The layer Grad-CAM reads: ``name`` if given, else the last Conv layer (tf-keras-vis's rule)."""
    import keras

    if name is not None:
        try:
            layer = model.get_layer(name)
        except ValueError:
            raise ModelError(f"--layer {name}: no such layer in model '{model.name}'") from None
        if len(layer.output.shape) != 4 or getattr(layer, "data_format", None) == "channels_first":
            raise ModelError(f"--layer {name}: output shape {tuple(layer.output.shape)} is not "
                             f"spatial (needs batch, height, width, channels)")
        return name
    conv_types = (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D)
    convs = [layer.name for layer in model.layers if isinstance(layer, conv_types)
             and getattr(layer, "data_format", "channels_last") == "channels_last"]
    return convs[-1] if convs else None


def logits_and_conv(model: Any, spec: str, layer: str | None) -> tuple[Any, str | None, dict[str, Any]]:
    """The logits model, the conv layer Grad-CAM reads in it (or None), and notes on both."""
    import keras

    if any(isinstance(lay, keras.layers.TFSMLayer) for lay in model.layers):
        if layer is not None:
            raise ModelError(f"--layer {layer}: a SavedModel's layers are not visible to Keras")
        return model, None, {
            "logits": "SavedModel output used as is: a softmax inside it cannot be removed",
            "conv_layer_reason": "a SavedModel is opaque to Keras: it has no conv layer to read"}
    extra: dict[str, Any] = {}
    nested = nested_models(model)
    if not nested:
        logits = with_linear_head(model, spec)
    else:
        try:
            logits = linearise_head(flatten(model))
            extra["flattened"] = nested
        except Exception as exc:  # an exotic nested model (subclassed, custom): no Grad-CAM
            reason = (f"nested model(s) {', '.join(nested)} could not be flattened "
                      f"({type(exc).__name__}: {one_line(exc)}), so their conv layers are out of reach")
            if layer is not None:
                raise ModelError(f"--layer {layer}: {reason}") from exc
            return with_linear_head(model, spec), None, {"conv_layer_reason": reason}
    conv = find_conv_layer(logits, layer)
    if conv is None:
        extra["conv_layer_reason"] = (f"model '{model.name}' has no channels-last Conv2D, SeparableConv2D "
                                      f"or DepthwiseConv2D layer")
    return logits, conv, extra


def wrap(model: Any, spec: str, sha256: str, *, layer: str | None = None,
         class_names: tuple[str, ...] = (), preprocess: str = "raw", output: str | None = None,
         extra: dict[str, Any] | None = None) -> AuditModel:
    """Wrap a loaded Keras classifier for the audits."""
    model = select_output(model, spec, output)
    shape = check_input(model, spec)
    num_classes = check_output(model, spec)
    if class_names and len(class_names) != num_classes:
        raise ModelError(f"{spec}: {len(class_names)} class names for {num_classes} classes")
    logits_model, conv_layer, notes = logits_and_conv(model, spec, layer)
    return AuditModel(
        spec=spec, model=model, logits_model=logits_model, conv_layer=conv_layer,
        input_shape=shape, num_classes=num_classes, device=pick_device(), sha256=sha256,
        class_names=class_names, preprocess=preprocess, extra={**(extra or {}), **notes},
    )


def load(path: Path, spec: str | None = None, *, layer: str | None = None, safe_mode: bool = True,
         class_names: tuple[str, ...] = ()) -> AuditModel:
    """Load a model file (or SavedModel folder) and wrap it."""
    model = load_saved_model(path, safe_mode=safe_mode) if path.is_dir() else load_model_file(
        path, safe_mode=safe_mode)
    return wrap(model, spec or str(path), file_sha256(path), layer=layer, class_names=class_names)


def _check_preprocess(name: str) -> str:
    from heatcheck import preprocess

    try:
        preprocess.get(name)
    except ModelError:
        raise
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    return name


def _read_class_names(path: str) -> tuple[str, ...]:
    from heatcheck import class_names

    try:
        return class_names.read_file(Path(path))
    except (ValueError, OSError) as exc:
        raise ModelError(f"--class-names {one_line(exc)}") from None


def load_spec(spec: str, *, weights: str | None = None, allow_download: bool = False,
              layer: str | None = None, safe_mode: bool = True, output: str | None = None,
              preprocess: str | None = None, class_names_file: str | None = None,
              input_shape: tuple[int, int, int] | None = None) -> AuditModel:
    """The model a spec names, wrapped for the audits.

    Args:
        spec: a keras.applications name, a ``.keras``/``.h5`` file, a SavedModel folder or
            ``module:function``.
        weights: for an application ``imagenet``, a weights file or ``none`` (seeded random);
            for a file or factory, a weights file to load into it.
        preprocess: a heatcheck.preprocess name or ``module:function``; default the
            application's own, else ``raw``.
        input_shape: for keras.applications in tests only (small inputs, no ImageNet weights).
    """
    from heatcheck import applications, class_names

    # Cheap checks first, so that a typo does not cost a model load.
    names_file = _read_class_names(class_names_file) if class_names_file is not None else None
    app = applications.lookup(spec)
    prep = _check_preprocess(preprocess or (app.preprocess if app is not None else "raw"))
    if app is not None:
        model, sha256 = applications.build(app, weights, allow_download=allow_download,
                                           input_shape=input_shape)
        names, source = class_names.imagenet(), "keras.applications"
    else:
        if input_shape is not None:
            raise ModelError(f"{spec}: input_shape applies to keras.applications names only")
        model, sha256, source = load_model_object(spec, safe_mode=safe_mode)
        model, sha256 = _with_weights(model, sha256, weights, spec)
        names = ()
    audit = wrap(model, spec, sha256, layer=layer, preprocess=prep, output=output, class_names=names,
                 extra={"source": source, "weights": weights})
    if names_file is not None:
        if len(names_file) != audit.num_classes:
            raise ModelError(f"--class-names {class_names_file}: {len(names_file)} names, but the model "
                             f"has {audit.num_classes} classes")
        audit = replace(audit, class_names=names_file)
    return audit
