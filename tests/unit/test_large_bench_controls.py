"""No negative control passes a localisation check on the large-object bench (issue 11).

Each control is put through the gate as the localisation audit puts a method: its
chance-corrected scores on the large bench's images and masks are decided against the audit's
controls (a random map, the centre prior, the edge map and the candidate's own maps shuffled
across images; never the candidate itself), with the margins, weak-control level and image count heatcheck
ships. The random candidate is a second, independent draw (the ``noise`` method's role). The
shuffled candidate is the strongest one possible here: the true masks themselves, shuffled
across images (a map that knows where objects usually are, and nothing about this one). The
centre prior, far above chance on this set, is held back by its own shuffle, which is itself:
a prior cannot pass. Model-free: the runs of `pytest audits/` with the edge and noise controls
as methods are in tests/e2e/test_localisation_gate.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from heatcheck.fixtures.bench import make_bench

from heatcheck.checks.decision import decide
from heatcheck.checks.localisation import METRICS
from heatcheck.explain import controls
from heatcheck.metrics.pointing import (
    chance_corrected,
    default_pointing_tolerance,
    energy_pointing_game,
    mask_fraction,
    pointing_chance,
    pointing_game,
    relevance_rank_accuracy,
)
from heatcheck.settings import build_thresholds, read_defaults

SEEDS = (0, 4)  # the default image seed and the held-out seed of the end-to-end runs


def _corrected_scores(seed: int) -> dict[str, dict[str, np.ndarray]]:
    """metric → name → chance-corrected per-image scores on 64 large-bench images: of the
    audit's fixed controls, and of the candidates with their own maps shuffled."""
    images, _, masks, _ = make_bench(64, seed=seed, layout="large")
    shape = masks.shape[1:]
    tolerance = default_pointing_tolerance(*shape)
    source = controls.derangement(len(masks), seed)
    fixed = {
        "random": controls.random_maps(range(len(masks)), shape, seed),
        "centre": np.broadcast_to(controls.centre_prior(*shape), masks.shape).copy(),
        "edges": controls.edges(images),
    }
    candidates = {
        "random": controls.random_maps(range(len(masks)), shape, seed + 1),
        "centre": fixed["centre"],
        "edges": fixed["edges"],
        "shuffled": masks[source].astype(np.float32),
    }
    maps = {**{f"control {k}": v for k, v in fixed.items()},
            **{k: v for k, v in candidates.items()},
            **{f"{k} shuffled": v[source] for k, v in candidates.items()}}
    scorers = {"pointing_game": lambda m: pointing_game(m, masks, tolerance=tolerance),
               "energy_pointing_game": lambda m: energy_pointing_game(m, masks),
               "relevance_rank_accuracy": lambda m: relevance_rank_accuracy(m, masks)}
    chance = {"pointing_game": pointing_chance(masks, tolerance)}
    out = {}
    for metric in METRICS:
        base = chance.get(metric, mask_fraction(masks))
        out[metric] = {name: chance_corrected(scorers[metric](m), base) for name, m in maps.items()}
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_no_control_passes_on_the_large_bench(seed):
    defaults = read_defaults()
    margins = build_thresholds(defaults["thresholds"], [])
    scores = _corrected_scores(seed)
    outcomes = {}
    for metric in METRICS:
        by_name = scores[metric]
        for name in ("random", "centre", "edges", "shuffled"):
            # As the audit does: a candidate is never its own control (heatcheck.checks.localisation).
            against = {k: by_name[f"control {k}"] for k in ("random", "centre", "edges") if k != name}
            against["shuffled"] = by_name[f"{name} shuffled"]
            decision = decide(by_name[name], against, margin=margins.get(metric, name),
                              seed=[seed, len(name)], weak_control=defaults["weak_control"],
                              min_images=defaults["min_images"])
            outcomes[metric, name] = decision.outcome
    assert len(outcomes) == 12
    assert "passed" not in outcomes.values(), outcomes
    # The set is one where chance is high and priors score well: the centre prior is far above
    # chance, which is why a method must beat it rather than chance.
    assert scores["energy_pointing_game"]["centre"].mean() > 0.25
