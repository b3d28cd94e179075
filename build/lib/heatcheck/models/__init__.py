"""The model under audit: loading it from a spec and wrapping it once for attribution.

``load_spec`` is the entry point. A spec is a keras.applications name (``vgg16``, see
heatcheck.models.applications), a ``.keras`` or legacy ``.h5`` model file, a TensorFlow SavedModel
folder, or a ``module:function`` factory that returns a Keras model (heatcheck.models.sources
reads them); heatcheck.models.surgery shapes the model for attribution (logits, one output,
nested models flattened, the conv layer). Whatever cannot be audited is refused with a
one-line ModelError naming the spec and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from heatcheck.errors import ModelError, one_line
from heatcheck.models.sources import (
    file_sha256,
    load_model_file,
    load_model_object,
    load_saved_model,
    weights_sha256,
    with_weights,
)
from heatcheck.models.surgery import (
    check_input,
    check_output,
    find_conv_layer,
    logits_and_conv,
    select_output,
    with_linear_head,
)

# Re-exported: callers and tests reach these through heatcheck.models.
__all__ = [
    "AuditModel", "ModelError", "file_sha256", "find_conv_layer", "load", "load_model_file",
    "load_spec", "one_line", "pick_device", "weights_sha256", "with_linear_head", "wrap",
]


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
        class_names=class_names, preprocess=preprocess,
        # "output" is part of the map cache key: two outputs of one file must not share maps.
        extra={**(extra or {}), **notes, "output": output},
    )


def load(path: Path, spec: str | None = None, *, layer: str | None = None, safe_mode: bool = True,
         class_names: tuple[str, ...] = ()) -> AuditModel:
    """Load a model file (or SavedModel folder) and wrap it."""
    model = load_saved_model(path, safe_mode=safe_mode) if path.is_dir() else load_model_file(
        path, safe_mode=safe_mode)
    return wrap(model, spec or str(path), file_sha256(path), layer=layer, class_names=class_names)


def _check_preprocess(name: str) -> str:
    from heatcheck.models import preprocess

    try:
        preprocess.get(name)
    except ModelError:
        raise
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    return name


def _read_class_names(path: str) -> tuple[str, ...]:
    from heatcheck.models import class_names

    try:
        return class_names.read_file(Path(path))
    except (ValueError, OSError) as exc:
        raise ModelError(f"--hc-class-names {one_line(exc)}") from None


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
        preprocess: a heatcheck.models.preprocess name or ``module:function``; default the
            application's own, else ``raw``.
        input_shape: for keras.applications in tests only (small inputs, no ImageNet weights).
    """
    from heatcheck.models import applications, class_names

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
        model, sha256 = with_weights(model, sha256, weights, spec)
        names = ()
    audit = wrap(model, spec, sha256, layer=layer, preprocess=prep, output=output, class_names=names,
                 extra={"source": source, "weights": weights})
    if names_file is not None:
        if len(names_file) != audit.num_classes:
            raise ModelError(f"--hc-class-names {class_names_file}: {len(names_file)} names, but the model "
                             f"has {audit.num_classes} classes")
        audit = replace(audit, class_names=names_file)
    return audit
