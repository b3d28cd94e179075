"""A known result reproduced on the bench: SmoothGrad is more stable than vanilla Saliency
(Smilkov et al. 2017), and the audit's controls behave as their definitions say."""

import numpy as np
import pytest

from fixtures.audit_fixtures import BENCH_MODELS
from fixtures.bench import make_bench
from heatcheck import data, models
from heatcheck.explain.provider import MapProvider
from heatcheck.perturbations import Perturbation
from heatcheck.settings import Settings
from heatcheck.stability import explain_perturbed, perturb, score


@pytest.fixture(scope="module")
def perturbed():
    audit_model = models.load(BENCH_MODELS / "clean.keras", "bench:clean")
    provider = MapProvider(audit_model, Settings(methods=("saliency", "smoothgrad", "noise")))
    x, y, m, ids = make_bench(8, seed=21)
    pset = perturb(provider, data.from_arrays("bench:8", x, y, m, ids),
                   [Perturbation("gaussian", 0.02), Perturbation("uniform", 0.05)], 3, seed=0)
    explain_perturbed(provider, pset, ("saliency", "smoothgrad", "noise"))
    return pset


def test_smoothgrad_is_more_stable_than_saliency(perturbed):
    def mean(method, metric):
        return np.nanmean(score(perturbed, method, metric))

    assert mean("smoothgrad", "map_ssim") > mean("saliency", "map_ssim")
    assert mean("smoothgrad", "avg_sensitivity") < mean("saliency", "avg_sensitivity")


def test_random_map_control_is_unstable(perturbed):
    assert np.nanmean(score(perturbed, "noise", "map_ssim")) < 0.2


def test_only_label_preserving_copies_count(perturbed):
    assert perturbed.kept.shape == perturbed.copies.shape[:2]
    assert 0.0 <= perturbed.discarded_share < 0.5
