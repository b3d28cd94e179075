"""Faithfulness: does deleting what a map calls important take the model's decision away?

Deletion (Petsiuk et al. 2018): pixels are replaced by a blurred copy of the image in the
map's order, most important first, and the labelled class's probability is followed; the
area under that curve is compared with deleting in a seeded random order. Faithfulness is
about the model, not the object: the shortcut model's maps on its tag are faithful, which
is why this audit and localisation together tell a Clever Hans model apart.
"""

import pytest

from fixtures.audit_fixtures import require
from heatcheck.faithfulness import FRACTIONS, set_deletion_curves
from heatcheck.metrics.base import finite_mean
from heatcheck.metrics.faithfulness import deletion_auc

pytestmark = pytest.mark.heatcheck_audit


@pytest.fixture(scope="session")
def random_deletion(audit_model, audit_images, settings):
    """The baseline: deleting pixels in a seeded random order (a flat map, ties at random)."""
    curves = set_deletion_curves(audit_model, audit_images, None, seed=settings.seed)
    return curves, deletion_auc(curves, FRACTIONS)


def test_deletion(method, audit_model, audit_maps, audit_images, random_deletion, map_provider, settings,
                  gate):
    metric = "deletion_auc_over_random"
    require(map_provider.unavailable(method), gate, "faithfulness", metric, method)
    curves = set_deletion_curves(audit_model, audit_images, audit_maps[method], seed=settings.seed)
    auc = deletion_auc(curves, FRACTIONS)
    random_curves, random_auc = random_deletion
    ratio = float(finite_mean(auc)) / float(finite_mean(random_auc))
    gate.check("faithfulness", metric, method, ratio, direction="lower", per_image=auc,
               ids=audit_images.ids,
               details={"fractions": FRACTIONS.tolist(), "curve": finite_mean(curves, axis=0).tolist(),
                        "random_curve": finite_mean(random_curves, axis=0).tolist(),
                        "random_auc": float(finite_mean(random_auc)),
                        "passes_alone": len(audit_images) * map_provider.passes_per_map(method)})
