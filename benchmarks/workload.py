"""What the benchmarks share: the seed workload, its compiled floor and a timer (kept apart from
``benchmarks.run`` so that the workload sides, e.g. ``metrics_side``, import it without a cycle)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SEED_CLASSES = [285, 277, 330, 675]  # the seed notebook's cat, fox, rabbit, "rat" (675)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def emit(line: dict[str, Any]) -> None:
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in line.items()}), flush=True)


def seed_workload(quick: bool) -> tuple[Any, np.ndarray, np.ndarray]:
    """The model and inputs of W1: VGG16 (random weights, seeded) and 4 preprocessed images."""
    import keras

    from heatcheck.models.preprocess import caffe

    keras.utils.set_random_seed(0)
    size = 64 if quick else 224
    model = keras.applications.VGG16(weights=None, input_shape=(size, size, 3), classes=1000)
    pixels = np.random.default_rng(0).uniform(0, 255, (4, size, size, 3)).astype(np.float32)
    return model, caffe(pixels), np.array(SEED_CLASSES)


def floor_passes(logits_model: Any, conv: str, x: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Seconds of one compiled input-gradient pass, one compiled Grad-CAM pass, one forward pass."""
    import keras
    import tensorflow as tf

    cam_model = keras.Model(logits_model.inputs, [logits_model.output, logits_model.get_layer(conv).output])

    @tf.function
    def grad(x: Any, y: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.gather(logits_model(x), y, axis=1, batch_dims=1)
        return tape.gradient(score, x)

    @tf.function
    def cam(x: Any, y: Any) -> Any:
        with tf.GradientTape() as tape:
            logits, act = cam_model(x)
            score = tf.gather(logits, y, axis=1, batch_dims=1)
        return act, tape.gradient(score, act)

    forward = tf.function(lambda x: logits_model(x))
    xt, yt = tf.constant(x), tf.constant(labels.astype(np.int32))
    passes = {"grad": lambda: grad(xt, yt).numpy(), "cam": lambda: cam(xt, yt)[1].numpy(),
              "forward": lambda: forward(xt).numpy()}
    for fn in passes.values():
        fn()  # trace once, outside the timing
    # The median of three: one call varies by ±20 % on shared machines.
    return {name: float(np.median([timed(fn)[0] for _ in range(3)])) for name, fn in passes.items()}


