"""Label consistency's forward pass over a set: a NaN or Inf output is named by the image."""

from types import SimpleNamespace

import numpy as np
import pytest

from heatcheck.models import ModelError
from heatcheck.models.predict import reject_nonfinite_outputs, top_k_agreement


def test_nonfinite_output_names_the_first_image_by_id_and_index_in_the_set() -> None:
    probs = np.full((70, 4), 0.25)
    probs[40, 2] = np.nan  # in the second batch of 32: its index in the set, not in the batch
    probs[65, 0] = np.inf
    model = SimpleNamespace(spec="m.keras")
    with pytest.raises(ModelError) as raised:
        reject_nonfinite_outputs(model, probs, [f"im{i}" for i in range(70)])  # type: ignore[arg-type]
    assert str(raised.value) == "m.keras: output has NaN or Inf for 2 image(s), first at 'im40' (index 40)"
    reject_nonfinite_outputs(model, probs[:40], [])  # type: ignore[arg-type]


def test_top_k_agreement_counts_the_label_among_the_k_most_probable() -> None:
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    np.testing.assert_array_equal(top_k_agreement(probs, np.array([2, 2]), 1), [0.0, 0.0])
    np.testing.assert_array_equal(top_k_agreement(probs, np.array([2, 2]), 2), [1.0, 1.0])
