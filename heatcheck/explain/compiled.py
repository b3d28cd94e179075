"""The compiled engine: the same maps as tf-keras-vis from fewer, batched, compiled passes.

One ``tf.function`` pass per batch yields the input gradients (Saliency) together with the
last conv layer's activations and their gradients (Grad-CAM, Grad-CAM++), so asking for all
three costs one forward and one backward pass. SmoothGrad's noisy copies of every image are
batched together, up to a memory budget, instead of one model call per sample. The functions
are traced once per input shape and reused for every batch and every weight change of the
same model object (the sanity audit swaps weights in place on a private copy).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heatcheck.explain import methods as registry
from heatcheck.explain.postprocess import (
    gradcam_from,
    gradcampp_from,
    normalise_per_image,
    saliency_from_gradients,
    upsample,
)

SMOOTH_CHUNK_BYTES = 256 * 2**20  # noisy copies held at once: SmoothGrad runs image chunks this big


def smoothgrad_field(shape: tuple[int, ...], samples: int, seed: int) -> np.ndarray:
    """The standard-normal noise field (samples, 1, H, W, C) SmoothGrad scales per image.

    It is drawn from the legacy generator stream of ``seed`` (as tf-keras-vis draws from the
    global one) and shared by every image, each scaled by its own σ = noise × (max − min): for
    a batch of one image this is exactly tf-keras-vis's draw; for larger batches an image's map
    does not depend on its neighbours or its chunk, and an image and its perturbed copy get the
    same noise (common random numbers for the stability audit).
    """
    return np.random.RandomState(seed).normal(0.0, 1.0, (samples, 1, *shape))


def smoothgrad_noise(x: np.ndarray, field: np.ndarray, noise: float) -> np.ndarray:
    """The noise tf-keras-vis adds to each image of ``x``: ``field`` scaled by the image's σ."""
    axes = tuple(range(1, x.ndim))
    sigma = noise * (x.max(axis=axes, keepdims=True) - x.min(axis=axes, keepdims=True))
    return (field * sigma[None]).astype(np.float32)


class CompiledEngine:
    """Batched, compiled attribution passes for one Keras logits model."""

    name = "compiled"

    def __init__(self, logits_model: Any, conv_layer: str | None, device: str,
                 max_batch: int = 64) -> None:
        import keras
        import tensorflow as tf

        self.device = device
        self.max_batch = max_batch
        self.passes = 0  # images × (forward + backward) passes run, for the pass accounting
        outputs = [logits_model.output]
        if conv_layer is not None:
            outputs.append(logits_model.get_layer(conv_layer).output)
        self._model = keras.Model(logits_model.inputs, outputs)
        self._has_conv = conv_layer is not None
        # One trace for every batch size: the batch dimension is left open in the signature.
        signature = [tf.TensorSpec((None, *logits_model.inputs[0].shape[1:]), tf.float32),
                     tf.TensorSpec((None,), tf.int32)]
        # (input gradients?, conv layer?) → its compiled pass, traced on first use.
        self._passes = {key: tf.function(lambda x, y, key=key: self._gradient_pass(x, y, *key),
                                         input_signature=signature)
                        for key in ((True, True), (True, False), (False, True))}

    def _gradient_pass(self, x: Any, labels: Any, input_grads: bool,
                       use_conv: bool) -> tuple[Any, Any, Any]:
        """Input gradients and/or the conv layer's activations and gradients, from one pass.

        Without ``input_grads`` (Grad-CAM(++) alone) the backward pass stops at the conv
        layer instead of running down to the input; without ``use_conv`` (SmoothGrad) no conv
        activations are copied out.
        """
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = self._model(x, training=False)
            logits = outputs[0] if self._has_conv else outputs
            score = tf.gather(logits, labels, axis=1, batch_dims=1)
        empty = tf.zeros((tf.shape(x)[0], 1, 1, 1))
        conv = outputs[1] if self._has_conv and use_conv else empty
        sources = ([x] if input_grads else []) + ([conv] if conv is not empty else [])
        grads = tape.gradient(score, sources)
        x_grads = grads[0] if input_grads else empty
        conv_grads = grads[-1] if conv is not empty else empty
        return x_grads, conv, conv_grads

    def _run(self, x: np.ndarray, labels: np.ndarray, input_grads: bool = True,
             use_conv: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The gradient pass over ``x`` in batches of at most ``max_batch``; halves on OOM."""
        import tensorflow as tf

        gradient_pass = self._passes[(input_grads, use_conv)]
        parts: list[tuple[np.ndarray, ...]] = []
        start = 0
        while start < len(x):
            stop = min(start + self.max_batch, len(x))
            try:
                with tf.device(self.device):
                    out = gradient_pass(tf.constant(x[start:stop]), tf.constant(labels[start:stop]))
            except tf.errors.ResourceExhaustedError:
                if self.max_batch == 1:
                    raise
                self.max_batch //= 2  # out of memory: a smaller batch, not a crash
                continue
            parts.append(tuple(t.numpy() for t in out))
            self.passes += stop - start
            start = stop
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]

    def explain_many(self, methods: tuple[str, ...], x: np.ndarray, labels: np.ndarray, *,
                     normalise: bool, smooth_samples: int = 20, smooth_noise: float = 0.2,
                     seed: int = 0) -> dict[str, np.ndarray]:
        """Maps for several methods, sharing one gradient pass between the non-noisy ones."""
        x = np.asarray(x, np.float32)
        labels = np.asarray(labels, np.int32)
        maps: dict[str, np.ndarray] = {}
        shared = [m for m in methods if registry.get(m).shares_gradient_pass]
        if shared:
            cams = any(registry.get(m).needs_conv_layer for m in shared)
            input_grads = any(not registry.get(m).needs_conv_layer for m in shared)
            grads, acts, act_grads = self._run(x, labels, input_grads=input_grads, use_conv=cams)
            for m in shared:
                maps[m] = self._finish(m, grads, acts, act_grads, x.shape[1:3])
        for m in methods:
            if registry.get(m).smoothed:
                maps[m] = self._smoothgrad(x, labels, smooth_samples, smooth_noise, seed)
        if normalise:
            maps = {m: normalise_per_image(v) for m, v in maps.items()}
        return {m: maps[m].astype(np.float32) for m in methods}

    def explain(self, method: str, x: np.ndarray, labels: np.ndarray, *, normalise: bool,
                smooth_samples: int = 20, smooth_noise: float = 0.2, seed: int = 0) -> np.ndarray:
        return self.explain_many((method,), x, labels, normalise=normalise,
                                 smooth_samples=smooth_samples, smooth_noise=smooth_noise, seed=seed)[method]

    def _finish(self, method: str, grads: np.ndarray, acts: np.ndarray, act_grads: np.ndarray,
                size: tuple[int, int]) -> np.ndarray:
        if method == "saliency":
            return saliency_from_gradients(grads)
        if not self._has_conv:
            raise ValueError(f"{method} needs a conv layer and the model has none")
        cam = gradcam_from(acts, act_grads) if method == "gradcam" else gradcampp_from(acts, act_grads)
        return upsample(cam, size)

    def _smoothgrad(self, x: np.ndarray, labels: np.ndarray, samples: int, noise: float,
                    seed: int) -> np.ndarray:
        """SmoothGrad (Smilkov et al. 2017): mean over noisy copies of |∂score/∂x|, max over channels."""
        field = smoothgrad_field(x.shape[1:], samples, seed)
        # In chunks of images: all noisy copies of a large set at once would not fit in memory.
        per_chunk = max(1, SMOOTH_CHUNK_BYTES // (samples * x[0].nbytes))
        maps = []
        for start in range(0, len(x), per_chunk):
            chunk, chunk_labels = x[start:start + per_chunk], labels[start:start + per_chunk]
            noisy = (chunk[None] + smoothgrad_noise(chunk, field, noise)).reshape(-1, *x.shape[1:])
            grads, _, _ = self._run(noisy, np.tile(chunk_labels, samples), use_conv=False)
            maps.append(np.abs(grads).reshape(samples, *chunk.shape).mean(axis=0).max(axis=-1))
        return np.concatenate(maps) if maps else np.zeros((0, *x.shape[1:3]), np.float32)
