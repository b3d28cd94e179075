"""Three-outcome gate decisions: a method's per-image scores read against what carries no
information on the same images, with a seeded, paired bootstrap interval.

A number on its own means nothing across image sets (the pointing game's chance level is the
mask's share of the image), so every gated score is compared, image by image, with controls
scored on the same images: **passed** when the method beats the strongest control by the
margin with confidence, **failed** when it confidently does not (at or below chance, or no
better than controls that are themselves weak), and **inconclusive** otherwise: the set
cannot tell (too few images, or controls that already score high).

The interval is the percentile bootstrap of the mean (Efron & Tibshirani 1993, ch. 13) over
images resampled with replacement, the same resampled images for method and control (paired),
so that what images have in common (an easy set, large masks) cancels out.

No TensorFlow, no pytest: plain numpy, usable on any framework's scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from heatcheck.metrics.base import Direction

Outcome = Literal["passed", "failed", "inconclusive"]
# Bootstrap resamples: at N = 64 (normal scores, sd 0.3) the 2.5 % quantile's spread over 20
# bootstrap seeds was 0.008 (sd 0.002), a tenth of the smallest margin.
RESAMPLES = 2000
LEVEL = 0.95
_CHUNK_CELLS = 4_000_000  # resample rows × images drawn at once: bounds memory on very large sets


@dataclass(frozen=True)
class Interval:
    """A two-sided bootstrap confidence interval of a mean."""

    low: float
    high: float
    level: float = LEVEL

    def as_list(self) -> list[float]:
        return [self.low, self.high]


@dataclass(frozen=True)
class Decision:
    """The outcome of one gated check and every number it rests on (oriented: higher = better).

    ``score`` is the method's mean, ``score_interval`` its interval; ``effect`` is the mean
    paired difference to the strongest control (method − control), ``interval`` its interval.
    """

    outcome: Outcome
    score: float
    score_interval: Interval
    control: str | None
    control_score: float | None
    effect: float
    interval: Interval
    margin: float
    images: int
    reason: str | None = None


def bootstrap_interval(values: npt.ArrayLike, *, seed: int | Sequence[int], resamples: int = RESAMPLES,
                       level: float = LEVEL) -> Interval:
    """Percentile bootstrap interval of the mean of ``values`` (finite ones; NaN = no score).

    Several columns ((N, k) values) are resampled with the same image indices: the intervals
    of paired differences come from taking the difference first, then calling this.
    """
    arr = np.asarray(values, np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return Interval(float("nan"), float("nan"), level)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    rows = max(1, _CHUNK_CELLS // arr.size)
    for start in range(0, resamples, rows):
        stop = min(start + rows, resamples)
        picks = rng.integers(0, arr.size, size=(stop - start, arr.size))
        means[start:stop] = arr[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(low), float(high), level)


def _oriented(values: npt.ArrayLike, direction: Direction) -> np.ndarray:
    arr = np.asarray(values, np.float64)
    return arr if direction == "higher" else -arr


def decide(scores: npt.ArrayLike, controls: Mapping[str, npt.ArrayLike], *, margin: float,
           seed: int | Sequence[int], direction: Direction = "higher", chance: npt.ArrayLike = 0.0,
           weak_control: float, min_images: int = 5, strong_control_remedy: str = "",
           resamples: int = RESAMPLES, level: float = LEVEL) -> Decision:
    """Pass, fail or inconclusive for one method's per-image ``scores`` against ``controls``.

    Args:
        scores: (N,) the method's per-image scores (NaN = no score for that image).
        controls: name → (N,) the controls' scores on the same images, in the same order.
        margin: how much the method must beat the strongest control by (in score units).
        chance: what an uninformative map scores, per image or one number (0 for
            chance-corrected scores).
        weak_control: the strongest control counts as weak when it beats chance by at most
            this; only then does "not better than the controls" mean a failure.
        min_images: below this many scored images the set cannot tell.
        strong_control_remedy: appended to the reason when strong controls make the set
            unable to tell (e.g. "use tighter masks or --hc-max-mask-fraction 0.3").

    Returns:
        The Decision, with every number oriented so that higher is better.
    """
    s = _oriented(scores, direction)
    base = np.broadcast_to(_oriented(chance, direction), s.shape)
    ctrl = {name: _oriented(v, direction) for name, v in controls.items()}
    usable = np.isfinite(s) & np.isfinite(base)
    for v in ctrl.values():
        usable &= np.isfinite(v)
    n = int(usable.sum())
    above_chance = s[usable] - base[usable]
    score_interval = bootstrap_interval(above_chance, seed=seed, resamples=resamples, level=level)
    strongest = max(ctrl, key=lambda k: float(ctrl[k][usable].mean())) if ctrl and n else None
    effect_values = s[usable] - (ctrl[strongest][usable] if strongest else base[usable])
    interval = bootstrap_interval(effect_values, seed=seed, resamples=resamples, level=level)
    control_score = float(ctrl[strongest][usable].mean()) if strongest else None
    effect = float(effect_values.mean()) if n else float("nan")
    score = float(s[usable].mean()) if n else float("nan")

    def made(outcome: Outcome, reason: str | None) -> Decision:
        return Decision(outcome, score, score_interval, strongest, control_score, effect, interval,
                        margin, n, reason)

    if n < min_images:
        return made("inconclusive", f"only {n} scored image(s), need at least {min_images}: "
                                    f"audit more images")
    if interval.low >= margin:
        return made("passed", None)
    if score_interval.high <= 0.0:
        return made("failed", f"at or below chance on these images (interval of the score above "
                              f"chance [{score_interval.low:.3g}, {score_interval.high:.3g}])")
    control_strength = (control_score or 0.0) - float(base[usable].mean())
    if control_strength <= weak_control and interval.high < margin:
        versus = f"the {strongest} control" if strongest else "chance"
        return made("failed", f"not better than {versus} by the margin {margin:g} (difference "
                              f"{effect:.3g}, interval [{interval.low:.3g}, {interval.high:.3g}])")
    if control_strength > weak_control:
        remedy = f": {strong_control_remedy}" if strong_control_remedy else ""
        return made("inconclusive", f"the {strongest} control already scores {control_strength:.2f} above "
                                    f"chance on these images, so they cannot tell a good map from a "
                                    f"prior{remedy}")
    return made("inconclusive", f"the difference to the {strongest or 'chance'} control, {effect:.3g}, has "
                                f"the interval [{interval.low:.3g}, {interval.high:.3g}] around the margin "
                                f"{margin:g} with {n} images: audit more images")
