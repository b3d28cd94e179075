"""Forward passes of the model under audit: class probabilities for label consistency."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from heatcheck.data import ImageSet, LabelledImages
from heatcheck.models import AuditModel, ModelError, preprocess


def predict_proba(audit_model: AuditModel, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The user's model's outputs (N, classes) for RGB ``pixels`` in 0–255, on its device."""
    probs = model_outputs(audit_model, pixels, batch_size)
    reject_nonfinite_outputs(audit_model, probs)
    return probs


def predict_set(audit_model: AuditModel, images: ImageSet,
                on_batch: Callable[[LabelledImages], None] | None = None) -> np.ndarray:
    """:func:`predict_proba` of a whole set, read batch by batch; a NaN or Inf output is named
    by the first image's id and its index in the set, not in its batch.

    Args:
        on_batch: called with each batch read, so that what needs the pixels once (their
            content hashes) does not read the set a second time.
    """
    outputs = []
    for _, batch in images.batches():
        if on_batch is not None:
            on_batch(batch)
        outputs.append(model_outputs(audit_model, batch.images))
    probs = np.concatenate(outputs)
    reject_nonfinite_outputs(audit_model, probs, images.ids)
    return probs


def model_outputs(audit_model: AuditModel, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
    import tensorflow as tf

    x = preprocess.get(audit_model.preprocess)(pixels)
    with tf.device(audit_model.device):
        return np.concatenate([
            np.asarray(audit_model.model(x[i:i + batch_size], training=False))
            for i in range(0, len(x), batch_size)
        ])


def reject_nonfinite_outputs(audit_model: AuditModel, probs: np.ndarray, ids: Sequence[str] = ()) -> None:
    bad = np.flatnonzero(~np.isfinite(probs).all(axis=1))
    if bad.size:
        first = f"{ids[bad[0]]!r} (index {bad[0]})" if ids else f"index {bad[0]}"
        raise ModelError(f"{audit_model.spec}: output has NaN or Inf for {bad.size} image(s), "
                         f"first at {first}")


def top_k_agreement(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """1.0 where the label is among the k most probable classes, else 0.0 (per image)."""
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return (top == labels[:, None]).any(axis=1).astype(np.float64)
