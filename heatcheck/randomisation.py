"""Model-parameter randomisation for the sanity checks of Adebayo et al. 2018.

Weighted layers are grouped (by block for deep models, ``blockN_*`` names, else one group per
layer) and ordered from the top (logits) down. Cascading randomisation re-initialises the
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

_BLOCK = re.compile(r"^(block\d+|conv\d+_block\d+|stage\d+)")


@dataclass(frozen=True)
class Step:
    """One randomisation step: its name and the layers it re-initialises."""

    name: str
    layers: tuple[str, ...]


def layer_groups(model: Any, grouping: str = "block") -> list[Step]:
    """Weighted layers grouped by block (or one per layer), top (logits) first."""
    groups: dict[str, list[str]] = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        match = _BLOCK.match(layer.name) if grouping == "block" else None
        groups.setdefault(match.group(1) if match else layer.name, []).append(layer.name)
    return [Step(name, tuple(layers)) for name, layers in reversed(groups.items())]


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
