"""W3, Quantus's side: the same three metrics with Quantus 0.6, timed in ``.venv-quantus``.

``.venv-quantus/bin/python -m benchmarks.quantus_side [--quick]`` (cwd: the repository root)
prints progress on stderr and, as its last stdout line, one JSON object
``{"pointing_game": s, "cascading_randomisation": s, "max_sensitivity": s, "note": "..."}``
that ``benchmarks.run`` reads (a value is null when Quantus could not run that metric).

Same model, images, masks and explanation function as ``benchmarks.metrics_side``:
``seed_workload``'s VGG16 and 4 caffe-preprocessed images, a centred square mask covering the
middle half of each side, and vanilla saliency (max over channels of |d logit / d input|) as one
compiled ``tf.function`` per model object, traced once before any timing. Only the metric calls
are timed. Quantus settings follow heatcheck's: PointingGame on precomputed maps; MPRT top-down,
one step per weighted layer, Spearman, on precomputed maps (so it explains the original model once
more plus once per step, the floor's 1 + steps passes); MaxSensitivity with 50 samples (4 with
``--quick``), uniform noise of radius 0.2 of the input range (heatcheck's ``Perturbation("uniform",
0.2)``, whose range is the pixels' 0–255 span; Quantus's ``lower_bound`` is absolute, so it gets
0.2 × the pixels' span in caffe units, where one unit is one pixel level), default norms, originals
explained by Quantus.

Nothing in Quantus is patched. Quantus calls ``explain_func`` with channels-first inputs when it
hands over a raw Keras model (MPRT) and channels-last ones through its ``TensorFlowModel`` wrapper
(MaxSensitivity): the explanation function accepts both. Its MPRT mutates one cloned model in
place from step to step, so the explanation function reads that model's own variables (a
feature model sharing its layers plus the last Dense layer's kernel and bias, i.e. the linear
head) instead of a weight copy, which would go stale.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SENSITIVITY_SAMPLES = 50
NOISE = 0.2  # radius of the uniform noise, as a fraction of the input range (heatcheck's level)


def log(message: str) -> None:
    print(f"[quantus_side] {message}", file=sys.stderr, flush=True)


class CompiledSaliency:
    """Quantus ``explain_func``: vanilla saliency, one compiled gradient per model object.

    The logit comes from the model's own layers (its last Dense layer's kernel and bias without
    the softmax), so in-place changes to the model's weights, as Quantus's MPRT makes between
    steps, are seen without retracing.
    """

    def __init__(self) -> None:
        self._compiled: dict[int, tuple[Any, Any]] = {}  # id -> (model kept alive, tf.function)
        self.traces = 0

    def _function(self, model: Any) -> Any:
        entry = self._compiled.get(id(model))
        if entry is not None and entry[0] is model:
            return entry[1]
        import keras
        import tensorflow as tf

        head = model.layers[-1]
        if not isinstance(head, keras.layers.Dense):
            raise TypeError(f"expected a Dense head, got {type(head).__name__}")
        features = keras.Model(model.inputs, head.input)

        @tf.function
        def saliency(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(x)
                logits = tf.matmul(features(x), head.kernel) + head.bias
                score = tf.gather(logits, y, axis=1, batch_dims=1)
            return tf.reduce_max(tf.abs(tape.gradient(score, x)), axis=-1)

        self._compiled[id(model)] = (model, saliency)
        self.traces += 1
        return saliency

    def __call__(self, model: Any, inputs: np.ndarray, targets: np.ndarray, **_: Any) -> np.ndarray:
        import tensorflow as tf

        x = np.asarray(inputs, np.float32)
        if x.shape[1] == 3 and x.shape[-1] != 3:  # Quantus's channels-first layout
            x = np.moveaxis(x, 1, -1)
        y = np.asarray(targets, np.int32).reshape(-1)
        return self._function(model)(tf.constant(x), tf.constant(y)).numpy()  # (N, H, W)


def timed(label: str, fn: Any) -> tuple[float | None, Any, str | None]:
    log(f"{label} ...")
    start = time.perf_counter()
    try:
        out = fn()
    except Exception as error:  # noqa: BLE001 -- reported in the note, never hidden
        log(f"{label} failed: {error!r}")
        return None, None, f"{label} failed under Keras 3: {type(error).__name__}: {error}"
    seconds = time.perf_counter() - start
    log(f"{label}: {seconds:.2f} s")
    return seconds, out, None


def mprt_start_check(model: Any) -> str:
    """Does Quantus's MPRT start from the model's weights? Compare its clone with the model."""
    from quantus.helpers.model.tf_model import TensorFlowModel

    wrapped = TensorFlowModel(model, channel_first=False)
    original = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    layer_name, clone = next(wrapped.get_random_layer_generator(order="top_down", seed=42))
    untouched = [layer for layer in clone.layers if layer.weights and layer.name != layer_name]
    differ = [layer.name for layer in untouched if any(
        not np.array_equal(a, b) for a, b in zip(layer.get_weights(), original[layer.name], strict=True))]
    if differ:
        return (f"Quantus MPRT randomises a freshly initialised model, not this one: after its first step "
                f"({layer_name}) {len(differ)}/{len(untouched)} layers it has not randomised yet already "
                f"differ from the model's (keras.models.clone_model makes new weights; nothing copies them)")
    return (f"Quantus MPRT starts from the model's weights ({len(untouched)} layers it has not randomised "
            f"yet equal after step 1)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64x64 inputs, 4 noise samples")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")  # Keras 3 input-structure and Quantus deprecation chatter

    import quantus
    import tensorflow as tf

    from benchmarks.workload import seed_workload

    log(f"quantus {quantus.__version__}, tensorflow {tf.__version__}, building the workload")
    model, x, labels = seed_workload(args.quick)
    size = x.shape[1]
    masks = np.zeros((len(x), 1, size, size), bool)  # Quantus wants (N, 1, H, W) masks
    masks[:, :, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = True
    samples = 4 if args.quick else SENSITIVITY_SAMPLES
    pixels = x + np.array([103.939, 116.779, 123.68], np.float32)  # caffe undone, still BGR
    radius = NOISE * float(pixels.max() - pixels.min())
    explain = CompiledSaliency()
    maps = explain(model, x, labels)  # traces the original model's gradient, outside any timing
    a_batch = maps[:, None]  # (N, 1, H, W)

    results: dict[str, Any] = {}
    notes: list[str] = []
    common = {"disable_warnings": True, "display_progressbar": False}
    calls = {
        "pointing_game": lambda: quantus.PointingGame(**common)(
            model=model, x_batch=x, y_batch=labels, a_batch=a_batch, s_batch=masks, channel_first=False),
        "cascading_randomisation": lambda: quantus.MPRT(
            layer_order="top_down", similarity_func=quantus.similarity_func.correlation_spearman, **common)(
            model=model, x_batch=x, y_batch=labels, a_batch=a_batch, explain_func=explain,
            channel_first=False, batch_size=len(x)),
        "max_sensitivity": lambda: quantus.MaxSensitivity(
            nr_samples=samples, lower_bound=radius,
            perturb_func=quantus.perturb_func.batch_uniform_noise, **common)(
            model=model, x_batch=x, y_batch=labels, a_batch=None, explain_func=explain,
            channel_first=False, batch_size=len(x)),
    }
    for metric, call in calls.items():
        traces = explain.traces
        seconds, scores, failure = timed(metric, call)
        results[metric] = seconds
        if failure:
            notes.append(failure)
        elif metric == "cascading_randomisation":
            steps = len(scores) - 1  # "original" plus one entry per randomised layer
            log(f"MPRT steps: {steps}; compiled again for its clone: {explain.traces - traces}")
            notes.append(f"MPRT ran {steps} steps (the saliency tf.function traced once more for its clone, "
                         f"inside the time)")
        elif scores is not None:
            log(f"{metric} scores: {np.round(np.asarray(scores, float), 4).tolist()}")
    try:
        notes.append(mprt_start_check(model))
    except Exception as error:  # noqa: BLE001
        notes.append(f"MPRT start check failed: {type(error).__name__}: {error}")
    notes.append(f"max-sensitivity: {samples} samples, uniform noise of radius {NOISE} x pixel range "
                 f"(lower_bound={radius:.1f} on the caffe-scaled inputs)")
    results["note"] = "; ".join(notes)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
