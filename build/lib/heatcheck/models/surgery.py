"""Shaping a loaded model for attribution: one output, channels-last RGB input, logits instead
of a softmax, nested models flattened, and the conv layer Grad-CAM reads.

Nested models (a keras.applications base inside a Sequential or functional model) hide
their conv layers from ``get_layer``, so Grad-CAM cannot read them ("Graph disconnected" in
tf-keras-vis). ``flatten`` rebuilds such a model as one flat functional graph of copies of
every leaf layer, called in the original order with the original weights, so that the
logits model's ``get_layer(conv)`` reaches the inner conv layer and gradients flow through.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from heatcheck.errors import ModelError, one_line


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
    """Which output ``--hc-output`` (an index, an output layer's name or a dict key) picks."""
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
                             f"with --hc-output INDEX|NAME")
        return 0
    if output.isdigit() and int(output) < len(outputs):
        return int(output)
    if output in names:
        return names.index(output)
    if output in keys:
        return keys.index(output)
    raise ModelError(f"--hc-output {output}: no such output; the model's outputs are {listing}")


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
    --hc-unsafe-model) or built by the user's factory has run its code already, and copying it
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
            raise ModelError(f"--hc-layer {name}: no such layer in model '{model.name}'") from None
        if len(layer.output.shape) != 4 or getattr(layer, "data_format", None) == "channels_first":
            raise ModelError(f"--hc-layer {name}: output shape {tuple(layer.output.shape)} is not "
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
            raise ModelError(f"--hc-layer {layer}: a SavedModel's layers are not visible to Keras")
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
                raise ModelError(f"--hc-layer {layer}: {reason}") from exc
            return with_linear_head(model, spec), None, {"conv_layer_reason": reason}
    conv = find_conv_layer(logits, layer)
    if conv is None:
        extra["conv_layer_reason"] = (f"model '{model.name}' has no channels-last Conv2D, SeparableConv2D "
                                      f"or DepthwiseConv2D layer")
    return logits, conv, extra
