"""The keras.applications registry: architecture, input size, preprocessing and ImageNet weights.

Nothing here downloads unless the user allows it: ImageNet weights are read from the Keras
cache folder (``$KERAS_HOME/models`` or ``~/.keras/models``) under the exact file name
keras.applications itself caches, by building the architecture with ``weights=None`` and
loading that file. Only with ``allow_download`` is keras.applications asked for
``weights="imagenet"`` (which fetches the file into its cache).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heatcheck.errors import ModelError, one_line
from heatcheck.models.sources import file_sha256, load_weights_file, weights_sha256

# --hc-weights none: random weights drawn from this seed, so that runs repeat.
RANDOM_WEIGHTS_SEED = 0


@dataclass(frozen=True)
class Application:
    """One keras.applications classifier with the ImageNet top (1,000 classes)."""

    name: str  # heatcheck's name, e.g. "mobilenet_v2"
    builder: str  # the keras.applications function, e.g. "MobileNetV2"
    preprocess: str  # a heatcheck.models.preprocess name
    size: int  # input height and width of the ImageNet weights
    weights_file: str  # the file keras.applications caches under models/ (with top)


APPLICATIONS = {app.name: app for app in (
    Application("vgg16", "VGG16", "caffe", 224, "vgg16_weights_tf_dim_ordering_tf_kernels.h5"),
    Application("vgg19", "VGG19", "caffe", 224, "vgg19_weights_tf_dim_ordering_tf_kernels.h5"),
    Application("resnet50", "ResNet50", "caffe", 224, "resnet50_weights_tf_dim_ordering_tf_kernels.h5"),
    Application("mobilenet_v2", "MobileNetV2", "tf", 224,
                "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"),
    # EfficientNet rescales and normalises inside the model: it takes raw 0–255 RGB.
    Application("efficientnetb0", "EfficientNetB0", "raw", 224, "efficientnetb0.h5"),
    Application("inception_v3", "InceptionV3", "tf", 299,
                "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"),
    Application("densenet121", "DenseNet121", "torch", 224,
                "densenet121_weights_tf_dim_ordering_tf_kernels.h5"),
)}


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


_BY_KEY = {_key(app.name): app for app in APPLICATIONS.values()}


def lookup(spec: str) -> Application | None:
    """The application ``spec`` names (``mobilenet_v2``, ``MobileNetV2``, ``mobilenetv2``), or None."""
    return _BY_KEY.get(_key(spec))


def cache_dir() -> Path:
    """Where keras.applications looks for cached weights, read now (not at Keras import)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def build(app: Application, weights: str | None, *, allow_download: bool = False,
          input_shape: tuple[int, int, int] | None = None) -> tuple[Any, str]:
    """The application's model and the SHA-256 of its weights.

    Args:
        weights: ``"imagenet"`` (the Keras cache, or a download with ``allow_download``), a
            weights file path, or ``"none"`` for seeded random weights.
        input_shape: only for tests and experiments with small inputs; ImageNet weights
            need the application's own size.
    """
    if weights is None:
        raise ModelError(f"--hc-model {app.name}: no --hc-weights given; pass --hc-weights imagenet "
                         f"(from the "
                         f"Keras cache {cache_dir()}), --hc-weights PATH, or --hc-weights none for random "
                         f"weights (an audit of an untrained model is rarely what you want)")
    if weights == "none":
        import keras

        keras.utils.set_random_seed(RANDOM_WEIGHTS_SEED)
        model = _architecture(app, input_shape)
        return model, weights_sha256(model)
    if weights == "imagenet":
        return _imagenet(app, allow_download, input_shape)
    path = Path(weights)
    if not path.is_file():
        raise ModelError(f"--hc-weights {weights}: no such file (expected imagenet, none or a weights file)")
    return load_weights_file(_architecture(app, input_shape), path, app.name), file_sha256(path)


def _architecture(app: Application, input_shape: tuple[int, int, int] | None,
                  weights: str | None = None) -> Any:
    import keras

    shape = input_shape or (app.size, app.size, 3)
    builder = getattr(keras.applications, app.builder)
    return builder(weights=weights, input_shape=shape, include_top=True, classes=1000)


def _imagenet(app: Application, allow_download: bool,
              input_shape: tuple[int, int, int] | None) -> tuple[Any, str]:
    path = cache_dir() / app.weights_file
    if path.is_file():
        return load_weights_file(_architecture(app, input_shape), path, app.name), file_sha256(path)
    if not allow_download:
        raise ModelError(f"--hc-weights imagenet: {app.weights_file} is not in {path.parent}; put it there "
                         f"(or set KERAS_HOME), pass --hc-weights PATH, or add --hc-allow-download")
    try:
        model = _architecture(app, input_shape, weights="imagenet")
    except Exception as exc:  # network and hash errors come in many types
        raise ModelError(f"--hc-weights imagenet: download of {app.weights_file} failed: "
                         f"{one_line(exc)}") from exc
    return model, file_sha256(path) if path.is_file() else weights_sha256(model)

