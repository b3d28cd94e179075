"""Input preprocessing by name: what the model expects, from RGB pixels in 0–255.

A name is one of PREPROCESSORS or ``module:function``, the user's own callable.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

# Per-channel ImageNet statistics, as keras.applications uses them.
_IMAGENET_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)


def raw(pixels: np.ndarray) -> np.ndarray:
    """Float RGB in 0–255: the Keras convention for models that carry their own Rescaling."""
    return np.asarray(pixels, np.float32)


def unit(pixels: np.ndarray) -> np.ndarray:
    """Float RGB in 0–1."""
    return np.asarray(pixels, np.float32) / 255.0


def caffe(pixels: np.ndarray) -> np.ndarray:
    """BGR with the ImageNet mean subtracted (VGG16/19, ResNet50)."""
    return np.asarray(pixels, np.float32)[..., ::-1] - _IMAGENET_MEAN_BGR


def tf(pixels: np.ndarray) -> np.ndarray:
    """RGB scaled to −1..1 (MobileNetV2, InceptionV3)."""
    return np.asarray(pixels, np.float32) / 127.5 - 1.0


def torch(pixels: np.ndarray) -> np.ndarray:
    """RGB in 0–1 standardised with the ImageNet mean and std (DenseNet)."""
    return (np.asarray(pixels, np.float32) / 255.0 - _TORCH_MEAN) / _TORCH_STD


PREPROCESSORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "raw": raw, "unit": unit, "caffe": caffe, "tf": tf, "torch": torch,
}


@functools.cache  # a module:function is imported once, not once per batch
def get(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The preprocessor ``name`` names: one of PREPROCESSORS, or ``module:function``.

    A ``module:function`` (imported from sys.path or the current directory) takes uint8 RGB
    pixels (N, H, W, 3) and returns the model's input; its output is made float32 here.
    """
    if name in PREPROCESSORS:
        return PREPROCESSORS[name]
    if ":" in name:
        from heatcheck.models.sources import import_object  # lazily: it imports user code

        user_fn = import_object(name, "--hc-preprocess")

        def user_preprocess(pixels: np.ndarray) -> np.ndarray:
            return np.asarray(user_fn(pixels), np.float32)

        user_preprocess.__name__ = name
        return user_preprocess
    raise ValueError(f"--hc-preprocess {name}: unknown; choose from {', '.join(PREPROCESSORS)} "
                     f"or module:function")
