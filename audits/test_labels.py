"""Label consistency: do the labels agree with what the model predicts?

An auditor must know when a map explains a class the model does not predict (the seed
notebook audited ImageNet class 675, "moving van", as a rat).
"""

import numpy as np
import pytest

from heatcheck.models.predict import top_k_agreement

pytestmark = pytest.mark.heatcheck_audit


@pytest.mark.heatcheck_first
def test_label_consistency(
    heatcheck_predictions, heatcheck_labelled_images, heatcheck_settings, heatcheck_gate
):
    agree = top_k_agreement(heatcheck_predictions, heatcheck_labelled_images.labels, heatcheck_settings.top_k)
    disagreeing = [i for i, a in zip(heatcheck_labelled_images.ids, agree, strict=True) if not a]
    heatcheck_gate.record(
        "labels",
        f"top_{heatcheck_settings.top_k}_agreement",
        None,
        float(np.mean(agree)),
        direction="higher",
        per_image=agree,
        ids=heatcheck_labelled_images.ids,
        threshold_key="label_agreement",
        details={"disagreeing": disagreeing},
    )
