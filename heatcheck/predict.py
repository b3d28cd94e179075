"""Forward passes of the model under audit: class probabilities for label consistency."""

from __future__ import annotations

import numpy as np

from heatcheck import preprocess
from heatcheck.models import AuditModel, ModelError


def predict_proba(audit_model: AuditModel, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The user's model's outputs (N, classes) for RGB ``pixels`` in 0–255, on its device."""
    import tensorflow as tf

    x = preprocess.get(audit_model.preprocess)(pixels)
    with tf.device(audit_model.device):
        probs = np.concatenate([
            np.asarray(audit_model.model(x[i:i + batch_size], training=False))
            for i in range(0, len(x), batch_size)
        ])
    bad = np.flatnonzero(~np.isfinite(probs).all(axis=1))
    if bad.size:
        raise ModelError(f"{audit_model.spec}: output has NaN or Inf for {bad.size} image(s), "
                         f"first at index {bad[0]}")
    return probs


def top_k_agreement(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """1.0 where the label is among the k most probable classes, else 0.0 (per image)."""
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return (top == labels[:, None]).any(axis=1).astype(np.float64)
