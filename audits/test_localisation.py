"""Localisation: does each method's map point at the labelled object?

Per method, over all audited images: the pointing game (Zhang et al. 2016), the energy-based
pointing game / relevance mass (Wang et al. 2020), relevance rank accuracy (Arras et al.
2022), and the energy's ratio over chance (a mask covering 20 % of the image gets 0.2 energy
from a random map: the raw energy alone cannot be compared across image sets).
"""

import pytest

from fixtures.audit_fixtures import require
from heatcheck.metrics.base import direction_of
from heatcheck.metrics.localisation import (
    energy_pointing_game,
    mask_fraction,
    pointing_game,
    ratio_over_chance,
    relevance_rank_accuracy,
)

pytestmark = pytest.mark.heatcheck_audit


def _scores(metric, method, audit_maps, settings):
    """Per-image scores, read from the maps on disk a chunk at a time."""
    if metric is pointing_game:
        return audit_maps.per_image(method, lambda maps, masks: pointing_game(
            maps, masks, tolerance=settings.pointing_tolerance))
    return audit_maps.per_image(method, metric)


@pytest.mark.parametrize("metric", [pointing_game, energy_pointing_game, relevance_rank_accuracy],
                         ids=lambda m: m.__name__)
def test_localisation(metric, method, audit_maps, audit_images, map_provider, settings, gate):
    require(map_provider.unavailable(method), gate, "localisation", metric.__name__, method)
    scores = _scores(metric, method, audit_maps, settings)
    gate.check("localisation", metric.__name__, method, float(scores.mean()),
               direction=direction_of(metric), per_image=scores, ids=audit_images.ids,
               details={"passes_alone": len(audit_images) * map_provider.passes_per_map(method)})


def test_energy_over_chance(method, audit_maps, audit_images, map_provider, gate):
    require(map_provider.unavailable(method), gate, "localisation", "energy_ratio_over_chance", method)
    scores = audit_maps.per_image(method, energy_pointing_game)
    chance = audit_maps.per_mask(mask_fraction)
    gate.check("localisation", "energy_ratio_over_chance", method,
               ratio_over_chance(scores, chance), direction="higher",
               per_image=scores / chance, ids=audit_images.ids,
               details={"passes_alone": len(audit_images) * map_provider.passes_per_map(method)})
