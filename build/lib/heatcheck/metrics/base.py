"""What every metric declares: which direction is better."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, TypeVar, cast

import numpy as np

Direction = Literal["higher", "lower"]


class Metric(Protocol):
    """A metric function that carries its direction."""

    direction: Direction
    __name__: str

    def __call__(self, *args: np.ndarray, **kwargs: object) -> np.ndarray: ...


F = TypeVar("F", bound=Callable[..., np.ndarray])


def metric(direction: Direction) -> Callable[[F], F]:
    """Mark a function as a metric whose scores are better when ``direction``."""

    def mark(fn: F) -> F:
        cast(Metric, fn).direction = direction
        return fn

    return mark


def direction_of(fn: Callable[..., np.ndarray]) -> Direction:
    """The declared direction of a metric function (AttributeError if it declares none)."""
    return cast(Metric, fn).direction


def finite_mean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """The mean of the finite values (NaN marks "no score", e.g. no perturbed copy kept the
    label); NaN, without numpy's empty-slice warning, where there are none."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    counts = finite.sum(axis=axis)
    totals = np.where(finite, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = totals / counts
    return float(mean) if axis is None else np.asarray(mean)
