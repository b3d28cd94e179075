"""A known result reproduced on the bench: SmoothGrad is more stable than vanilla Saliency
(Smilkov et al. 2017), and the audit's controls behave as their definitions say."""

import numpy as np
import pytest
from heatcheck.fixtures.audit_fixtures import BENCH_MODELS
from heatcheck.fixtures.bench import make_bench

from heatcheck import data, models
from heatcheck.checks.perturbations import Perturbation
from heatcheck.checks.stability import explain_perturbed, perturb, score
from heatcheck.explain.provider import MapProvider
from heatcheck.settings import Settings


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


def test_max_sensitivity_is_the_same_in_every_profile():
    """K and the radius are fixed and every image's copies are seeded by its id, so the profile
    (which only changes how many images are sampled) changes no image's max-sensitivity, and
    the means of two profiles agree within the sampling error of the larger sample."""
    from heatcheck.checks.decision import bootstrap_interval
    from heatcheck.checks.stability import SENSITIVITY_SAMPLES, linf_ball_set
    from heatcheck.settings import PROFILES

    audit_model = models.load(BENCH_MODELS / "clean.keras", "bench:clean")
    x, y, m, ids = make_bench(16, seed=22)
    per_image = {}
    for name, profile in PROFILES.items():
        n = profile.stability_images
        images = data.from_arrays(f"bench:{n}", x[:n], y[:n], m[:n], ids[:n])
        provider = MapProvider(audit_model, Settings(methods=("gradcam",), profile=profile))
        pset = linf_ball_set(provider, images, seed=0)
        assert pset.copies.shape[1] == SENSITIVITY_SAMPLES
        explain_perturbed(provider, pset, ("gradcam",))
        per_image[name] = dict(zip(images.ids, score(pset, "gradcam", "max_sensitivity"), strict=True))
    full, ci = per_image["full"], per_image["ci"]
    for values in per_image.values():
        assert values == pytest.approx({i: full[i] for i in values}, rel=1e-5)
    interval = bootstrap_interval(list(full.values()), seed=0)
    assert interval.low <= np.mean(list(ci.values())) <= interval.high
