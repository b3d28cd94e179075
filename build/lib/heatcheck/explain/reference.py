"""The reference engine: tf-keras-vis, called as the seed notebook calls it.

Kept for anyone who wants the library's own numbers (``--hc-engine tf-keras-vis``) and as the
oracle the compiled engine is tested against. Each visualizer is built once, on the audit
model's private logits copy, so ``clone=False`` mutates nothing of the user's.

One departure from the notebook, for Grad-CAM++ only: tf-keras-vis multiplies its map by
exp(score) (the exponential-score derivation of Chattopadhay et al., eq. 19), so a logit shift
alone rescales an image's map (and moves stability scores), and logits above about 88 overflow
float32 to inf and the map to NaN. Its score here is ``logit − stop_gradient(logit)``: zero in
value, the logit's in gradient, so exp(score) = 1 and the map is the closed form the compiled
engine computes (heatcheck.explain.postprocess.gradcampp_from), on the same scale.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from heatcheck.explain.postprocess import normalise_per_image


class ReferenceEngine:
    """Saliency, SmoothGrad, Grad-CAM and Grad-CAM++ through tf-keras-vis."""

    name = "tf-keras-vis"

    def __init__(self, logits_model: Any, conv_layer: str | None) -> None:
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.saliency import Saliency

        # tf-keras-vis silently caps SmoothGrad samples with this variable (its own CI sets 3).
        if "TF_KERAS_VIS_MAX_STEPS" in os.environ:
            raise RuntimeError("TF_KERAS_VIS_MAX_STEPS is set: tf-keras-vis would silently cap "
                               "SmoothGrad samples; unset it for an audit")
        self.conv_layer = conv_layer
        self.saliency = Saliency(logits_model, clone=False)
        self.gradcam = Gradcam(logits_model, clone=False) if conv_layer else None
        self.gradcampp = GradcamPlusPlus(logits_model, clone=False) if conv_layer else None
        self.passes = 0

    def explain(self, method: str, x: np.ndarray, labels: np.ndarray, *, normalise: bool,
                smooth_samples: int = 20, smooth_noise: float = 0.2, seed: int = 0) -> np.ndarray:
        from tf_keras_vis.utils.scores import CategoricalScore

        score = CategoricalScore([int(v) for v in labels])
        if method == "saliency":
            maps = self.saliency(score, x, normalize_map=False)
            self.passes += len(x)
        elif method == "smoothgrad":
            maps = np.concatenate([self._smoothgrad(x[i:i + 1], int(labels[i]), smooth_samples,
                                                    smooth_noise, seed) for i in range(len(x))])
        else:
            visualizer = self.gradcam if method == "gradcam" else self.gradcampp
            if visualizer is None:
                raise ValueError(f"{method} needs a conv layer and the model has none")
            if method == "gradcampp":
                score = _zero_valued_logit(labels)
            maps = visualizer(score, x, penultimate_layer=self.conv_layer,
                              seek_penultimate_conv_layer=False, normalize_cam=False)
            self.passes += len(x)
        maps = np.asarray(maps, np.float32)
        return normalise_per_image(maps) if normalise else maps

    def _smoothgrad(self, x: np.ndarray, label: int, samples: int, noise: float, seed: int) -> np.ndarray:
        """One image at a time, so that its noise does not depend on the rest of the batch
        (tf-keras-vis draws one noise array for the whole batch)."""
        from tf_keras_vis.utils.scores import CategoricalScore

        np.random.seed(seed)  # noqa: NPY002 -- tf-keras-vis reads the legacy global generator
        maps = self.saliency(CategoricalScore([label]), x, smooth_samples=samples, smooth_noise=noise,
                             normalize_map=False)
        self.passes += samples
        return np.asarray(maps, np.float32).reshape(1, *x.shape[1:3])


def _zero_valued_logit(labels: np.ndarray) -> Any:
    """A tf-keras-vis score: each image's labelled logit minus itself held constant, so that
    its value is 0 (exp(0) = 1 in Grad-CAM++) and its gradient is the logit's."""
    import tensorflow as tf

    indices = tf.constant(np.asarray(labels, np.int32))

    def score(output: Any) -> Any:
        logit = tf.gather(output, indices, axis=1, batch_dims=1)
        return logit - tf.stop_gradient(logit)

    return score
