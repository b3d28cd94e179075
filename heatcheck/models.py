"""Loading a classifier and wrapping it once for attribution (softmax → logits)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ModelError(ValueError):
    """A model that cannot be audited; the message names the file or layer and the problem."""


@dataclass(frozen=True)
class AuditModel:
    """The model under audit, wrapped once.

    ``model`` is the user's model, never mutated; ``logits_model`` is a copy with the last
    activation replaced by a linear one (as the seed does with ReplaceToLinear), since a
    softmax output's gradients mostly say how the other classes fall.
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
        raise ModelError(f"{path}: cannot load model: {exc}".splitlines()[0]) from exc
    except Exception as exc:  # h5py/zipfile raise many types for a corrupt file
        raise ModelError(f"{path}: cannot load model ({type(exc).__name__}: {exc})".splitlines()[0]) from exc


def find_conv_layer(model: Any, name: str | None = None) -> str | None:
    """The layer Grad-CAM reads: ``name`` if given, else the last Conv layer (tf-keras-vis's rule)."""
    import keras

    if name is not None:
        try:
            layer = model.get_layer(name)
        except ValueError:
            raise ModelError(f"--layer {name}: no such layer in model '{model.name}'") from None
        if len(layer.output.shape) != 4:
            raise ModelError(f"--layer {name}: output shape {tuple(layer.output.shape)} is not "
                             f"spatial (needs batch, height, width, channels)")
        return name
    conv_types = (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D)
    convs = [layer.name for layer in model.layers if isinstance(layer, conv_types)]
    return convs[-1] if convs else None


def with_linear_head(model: Any) -> Any:
    """A copy of ``model`` whose last layer outputs logits; the original stays untouched."""
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    last = clone.layers[-1]
    if getattr(last, "activation", None) is not None:
        last.activation = keras.activations.linear
    return clone


def wrap(model: Any, spec: str, sha256: str, *, layer: str | None = None,
         class_names: tuple[str, ...] = (), preprocess: str = "raw") -> AuditModel:
    """Wrap a loaded Keras classifier for the audits."""
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3 or shape[-1] != 3:
        raise ModelError(f"{spec}: input shape {shape} is not (height, width, 3) channels-last RGB")
    num_classes = int(model.output_shape[-1])
    return AuditModel(
        spec=spec, model=model, logits_model=with_linear_head(model),
        conv_layer=find_conv_layer(model, layer), input_shape=(int(shape[0]), int(shape[1]), 3),
        num_classes=num_classes, device=pick_device(), sha256=sha256,
        class_names=class_names, preprocess=preprocess,
    )


def load(path: Path, spec: str | None = None, *, layer: str | None = None, safe_mode: bool = True,
         class_names: tuple[str, ...] = ()) -> AuditModel:
    """Load a model file and wrap it."""
    model = load_model_file(path, safe_mode=safe_mode)
    return wrap(model, spec or str(path), file_sha256(path), layer=layer, class_names=class_names)
