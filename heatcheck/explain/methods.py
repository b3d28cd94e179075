"""The one registry of attribution methods and controls: what each is, what it needs, what it costs.

Every other module asks this one (settings for the names users type, the engines for which
methods share a gradient pass, the provider for what a map needs and costs and what its cache
key depends on, the sanity audit for signed maps, the report for the order and the names it
shows). Adding a method means one entry here and its computation in the engines
(heatcheck.explain.compiled and heatcheck.explain.reference).

Pure Python: settings import it before TensorFlow loads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Family = Literal["gradient", "cam", "control"]


@dataclass(frozen=True)
class Method:
    """One entry of the registry."""

    name: str  # what users type (--hc-methods) and results.json records
    label: str  # what the report shows
    family: Family  # input gradients, class activation maps, or a control that ignores the model
    reference: str
    # Averages the gradients of noisy copies: costs ``smooth_samples`` passes per map, and its
    # maps depend on the noise level, the sample count and the seed.
    smoothed: bool = False
    # Its maps carry a sign worth comparing (the sanity audit's signed Spearman); the four
    # built-in methods take magnitudes, so none does yet.
    signed: bool = False

    @property
    def is_control(self) -> bool:
        return self.family == "control"

    @property
    def needs_conv_layer(self) -> bool:
        """A CAM reads the last spatial conv layer; a model without one cannot give its map."""
        return self.family == "cam"

    @property
    def shares_gradient_pass(self) -> bool:
        """Computed from one plain forward+backward pass, which the compiled engine shares
        between every such method asked for together."""
        return self.family in ("gradient", "cam") and not self.smoothed


_ENTRIES = (
    Method("saliency", "Saliency", "gradient",
           "Simonyan et al. 2014, arXiv:1312.6034"),
    Method("smoothgrad", "SmoothGrad", "gradient",
           "Smilkov et al. 2017, arXiv:1706.03825", smoothed=True),
    Method("gradcam", "Grad-CAM", "cam",
           "Selvaraju et al. 2017, arXiv:1610.02391"),
    Method("gradcampp", "Grad-CAM++", "cam",
           "Chattopadhay et al. 2018, arXiv:1710.11063"),
    # Controls exist to show what failing looks like (heatcheck.explain.controls).
    Method("edges", "edges (control)", "control",
           "Sobel edges; Adebayo et al. 2018, arXiv:1810.03292"),
    Method("noise", "noise (control)", "control", "a seeded uniform random map"),
)
REGISTRY: dict[str, Method] = {m.name: m for m in _ENTRIES}

# The methods users type, in the order reports show them, and the controls after them.
METHODS: tuple[str, ...] = tuple(m.name for m in _ENTRIES if not m.is_control)
CONTROLS: tuple[str, ...] = tuple(m.name for m in _ENTRIES if m.is_control)


def get(name: str) -> Method:
    """The registry entry of ``name``; KeyError with the choices for an unknown one."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown method '{name}'; choose from {', '.join(REGISTRY)}") from None


def label(name: str) -> str:
    """The report's name for ``name``; a method heatcheck does not know keeps its own."""
    entry = REGISTRY.get(name)
    return entry.label if entry else name


def in_order(names: Iterable[str]) -> list[str]:
    """``names`` in registry order, then any others (a user's own audits) by name."""
    rank = {name: place for place, name in enumerate(REGISTRY)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))
