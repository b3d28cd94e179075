"""Model-parameter randomisation for the sanity checks of Adebayo et al. 2018.

Weighted layers are grouped by the architecture's blocks (see :func:`layer_groups`; at most
MAX_STEPS steps) and ordered from the top (logits) down. Cascading randomisation re-initialises the
groups cumulatively from the top; independent randomisation re-initialises one group at a
time with the rest intact. Re-initialising means drawing fresh values from each weight's own
initializer (as at construction, with a seed), which is what the paper does; Quantus's TF
version shuffles weights instead, and on Keras 3 randomises an untrained clone.

All of it happens on a private working copy whose weights are set from arrays for every
step: the user's model and the audit's logits model are never touched, and nothing has to
be restored.

References: Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, arXiv:1810.03292.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

# The block a layer belongs to, by the names keras.applications gives (first match wins):
_BLOCKS = (
    re.compile(r"^(conv\d+_block\d+)_"),  # ResNet, DenseNet: conv4_block13_1_conv
    re.compile(r"^(block_\d+)_"),  # MobileNetV2: block_16_expand
    re.compile(r"^(block\d+[a-z]?)_"),  # VGG block3_conv1; EfficientNet block2b_dwconv
    re.compile(r"^(stage\d+)"),
    re.compile(r"^(expanded_conv)_"),  # MobileNetV2's first block
    # ResNet and DenseNet stems, EfficientNet's stem and head, DenseNet's transitions
    re.compile(r"^(conv1|stem|top|pool\d+)_"),
    re.compile(r"^(?:bn_)?(Conv1)$"),  # MobileNetV2 stem and its batch norm
    re.compile(r"^(Conv_1)(?:_bn)?$"),  # MobileNetV2 head
)
# InceptionV3 names its layers conv2d_N / batch_normalization_N and ends each module with a
# Concatenate called mixedN: a module's weighted layers are those before its mixedN (a
# topological order puts every layer of a module before its concatenation and after the last).
_MODULE_END = re.compile(r"^mixed\d+$")
# When blocks are too many (DenseNet121 has 58, ResNet152 50), they merge into their stage.
_STAGE = (re.compile(r"^(conv\d+)_block\d+$"), re.compile(r"^(block\d+)[a-z]$"))
# Each step costs one map pass per method and image; beyond this many, neighbours merge.
MAX_STEPS = 20


@dataclass(frozen=True)
class Step:
    """One randomisation step: its name and the layers it re-initialises."""

    name: str
    layers: tuple[str, ...]


def _block_of(name: str) -> str | None:
    for pattern in _BLOCKS:
        if match := pattern.match(name):
            return match.group(1)
    return None


def _blocks(model: Any) -> list[tuple[str, list[str]]]:
    """(block, weighted layers) in model order; a layer in no known block is a block of its own."""
    keys: list[tuple[str | None, str]] = []  # (block or None, layer) of every weighted layer
    for layer in model.layers:
        if _MODULE_END.match(layer.name) and not layer.weights:
            keys = [(layer.name if key is None else key, name) for key, name in keys]
        elif layer.weights:
            keys.append((_block_of(layer.name), layer.name))
    groups: dict[str, list[str]] = {}
    for key, name in keys:
        groups.setdefault(key or name, []).append(name)
    return list(groups.items())


def _merged(groups: list[tuple[str, list[str]]], key: Any) -> list[tuple[str, list[str]]]:
    """Neighbouring groups with the same ``key(name)`` joined under that key (None: kept apart)."""
    out: list[tuple[str, list[str]]] = []
    last = None
    for name, layers in groups:
        coarse = key(name)
        if coarse is not None and coarse == last:
            out[-1][1].extend(layers)
        else:
            out.append((coarse or name, list(layers)))
        last = coarse
    return out


def _stage_of(name: str) -> str | None:
    for pattern in _STAGE:
        if match := pattern.match(name):
            return match.group(1)
    return None


def _at_most(groups: list[tuple[str, list[str]]], limit: int) -> list[tuple[str, list[str]]]:
    """Groups joined into ``limit`` runs of neighbours of near-equal length, named first..last."""
    if len(groups) <= limit:
        return groups
    edges = np.linspace(0, len(groups), limit + 1).round().astype(int)
    runs = [groups[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return [(run[0][0] if len(run) == 1 else f"{run[0][0]}..{run[-1][0]}",
             [layer for _, layers in run for layer in layers]) for run in runs]


def layer_groups(model: Any, grouping: str = "block") -> list[Step]:
    """Weighted layers grouped into randomisation steps, top (logits) first.

    ``"block"``: by the architecture's blocks (VGG ``blockN``, ResNet and DenseNet
    ``convN_blockM``, MobileNetV2 ``block_N``, EfficientNet ``blockNx``, InceptionV3's
    ``mixedN`` modules, their stems and heads); too many blocks merge into their stages, and a
    model with no block names gets at most MAX_STEPS runs of neighbouring layers. ``"layer"``:
    one step per weighted layer, however many.
    """
    if grouping == "layer":
        groups = [(layer.name, [layer.name]) for layer in model.layers if layer.weights]
    else:
        groups = _blocks(model)
        if len(groups) > MAX_STEPS:
            groups = _merged(groups, _stage_of)
        groups = _at_most(groups, MAX_STEPS)
    return [Step(name, tuple(layers)) for name, layers in reversed(groups)]


def _initial_values(layer: Any, seed: int) -> list[np.ndarray]:
    """Fresh values for every weight of ``layer`` from its own initializers, seeded."""
    import keras

    values = []
    for i, weight in enumerate(layer.weights):
        base = weight.path.split("/")[-1]  # "kernel", "bias", "gamma", "moving_mean", …
        init = getattr(layer, f"{base}_initializer", None)
        if init is None:  # no initializer to ask: a seeded normal with the weight's own scale
            current = np.asarray(weight.numpy())
            rng = np.random.default_rng([seed, i])
            values.append(rng.normal(current.mean(), current.std() + 1e-6, current.shape)
                          .astype(current.dtype))
            continue
        config = keras.initializers.serialize(init)
        fresh = keras.initializers.deserialize(config)
        if hasattr(fresh, "seed"):
            fresh.seed = seed + i
        values.append(np.asarray(fresh(tuple(weight.shape), dtype=weight.dtype)))
    return values


class ModelRandomiser:
    """Yields the weights of each cascading or independent randomisation step."""

    def __init__(self, model: Any, seed: int, grouping: str = "block") -> None:
        self.steps = layer_groups(model, grouping)
        self._original = {layer.name: [np.asarray(w) for w in layer.get_weights()]
                          for layer in model.layers if layer.weights}
        self._random: dict[str, list[np.ndarray]] = {}
        for k, step in enumerate(self.steps):
            for j, name in enumerate(step.layers):
                self._random[name] = _initial_values(model.get_layer(name), seed * 1000 + k * 50 + j)

    def weights(self, randomised: set[str]) -> dict[str, list[np.ndarray]]:
        """Per-layer weights with the layers in ``randomised`` re-initialised."""
        return {name: self._random[name] if name in randomised else w
                for name, w in self._original.items()}

    def cascading(self) -> Iterator[tuple[Step, dict[str, list[np.ndarray]]]]:
        done: set[str] = set()
        for step in self.steps:
            done |= set(step.layers)
            yield step, self.weights(done)

    def independent(self) -> Iterator[tuple[Step, dict[str, list[np.ndarray]]]]:
        for step in self.steps:
            yield step, self.weights(set(step.layers))


def working_copy(model: Any) -> Any:
    """A private copy of ``model`` (architecture and weights) to randomise in place."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def apply(model: Any, weights: dict[str, list[np.ndarray]], current: dict[str, list[np.ndarray]]) -> None:
    """Set ``weights`` on ``model``, touching only layers whose arrays differ from ``current``
    (a step changes one group; copying every layer's weights each step would dominate)."""
    for name, values in weights.items():
        if current.get(name) is not values:
            model.get_layer(name).set_weights(values)
            current[name] = values
