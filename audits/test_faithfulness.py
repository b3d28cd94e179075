"""Faithfulness: does deleting what a map calls important take the model's decision away?

Deletion (Petsiuk et al. 2018): pixels are replaced by a blurred copy of the image in the
map's order, most important first, and the labelled class's probability is followed; the
area under that curve is compared with deleting in a seeded random order. Faithfulness is
about the model, not the object: the shortcut model's maps on its tag are faithful, which
is why this audit and localisation together tell a Clever Hans model apart.
"""

import pytest

from fixtures.audit_fixtures import input_errors, require
from heatcheck.faithfulness import FRACTIONS, set_deletion_curves
from heatcheck.metrics.base import finite_mean
from heatcheck.metrics.faithfulness import deletion_auc

pytestmark = pytest.mark.heatcheck_audit


RANDOM = "random order"  # the baseline: deleting pixels in a seeded random order (ties at random)


@pytest.fixture(scope="session")
def deletion_run(audit_model, audit_images, audit_maps, settings, result_store):
    """Deletion curves of every method's maps and of the random order, in one pass over the images."""
    wanted = {RANDOM: None, **audit_maps.maps}
    with input_errors(result_store):
        return set_deletion_curves(audit_model, audit_images, wanted, seed=settings.seed)


def test_deletion(method, deletion_run, audit_images, map_provider, gate):
    metric = "deletion_auc_over_random"
    require(map_provider.unavailable(method), gate, "faithfulness", metric, method)
    curves, random_curves = deletion_run[method], deletion_run[RANDOM]
    auc, random_auc = deletion_auc(curves, FRACTIONS), deletion_auc(random_curves, FRACTIONS)
    ratio = float(finite_mean(auc)) / float(finite_mean(random_auc))
    gate.check("faithfulness", metric, method, ratio, direction="lower", per_image=auc,
               ids=audit_images.ids,
               details={"fractions": FRACTIONS.tolist(), "curve": finite_mean(curves, axis=0).tolist(),
                        "random_curve": finite_mean(random_curves, axis=0).tolist(),
                        "random_auc": float(finite_mean(random_auc)),
                        "passes_alone": len(audit_images) * map_provider.passes_per_map(method)})
