"""The session's map provider: one engine per model, maps cached for the session.

Audits ask for maps by method; the provider computes every requested method for an image
set in one go (so the compiled engine can share passes between them) and keeps the result,
so that localisation, sanity and stability reuse the same maps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heatcheck import preprocess
from heatcheck.data import LabelledImages
from heatcheck.explain import controls
from heatcheck.models import AuditModel
from heatcheck.settings import CONTROLS, Settings

CAM_METHODS = ("gradcam", "gradcampp")


def build_engine(settings: Settings, logits_model: Any, conv_layer: str | None, device: str) -> Any:
    if settings.engine == "tf-keras-vis":
        from heatcheck.explain.reference import ReferenceEngine

        return ReferenceEngine(logits_model, conv_layer)
    from heatcheck.explain.compiled import CompiledEngine

    return CompiledEngine(logits_model, conv_layer, device, max_batch=settings.batch_size)


class MapProvider:
    """Maps of one audit model, with the settings' SmoothGrad parameters and seed."""

    def __init__(self, audit_model: AuditModel, settings: Settings) -> None:
        self.audit_model = audit_model
        self.settings = settings
        self.engine = build_engine(settings, audit_model.logits_model, audit_model.conv_layer,
                                   audit_model.device)
        self._prepare = preprocess.get(audit_model.preprocess)
        self._cache: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
        self.extra_passes = 0  # passes run by engines built for working copies of this model

    def unavailable(self, method: str) -> str | None:
        """Why ``method`` cannot run on this model, or None."""
        if method in CAM_METHODS and self.audit_model.conv_layer is None:
            return f"{method} needs a spatial conv layer and model '{self.audit_model.spec}' has none"
        return None

    def maps(self, method: str, images: LabelledImages) -> np.ndarray:
        """Normalised maps of ``method`` for ``images`` (cached for the session)."""
        key = (method, images.ids)
        if key not in self._cache:
            wanted = tuple(m for m in self.settings.methods if self.unavailable(m) is None
                           and (m, images.ids) not in self._cache)
            wanted = wanted if method in wanted else (method,)
            computed = self.explain_many(wanted, images.images, images.labels, normalise=True)
            for m, v in computed.items():
                self._cache[(m, images.ids)] = v
        return self._cache[key]

    def explain_many(self, methods: tuple[str, ...], pixels: np.ndarray, labels: np.ndarray, *,
                     normalise: bool, engine: Any = None) -> dict[str, np.ndarray]:
        """Uncached maps for RGB ``pixels`` (0–255); ``engine`` swaps in another model's engine."""
        engine = engine or self.engine
        out = {m: self._control(m, pixels) for m in methods if m in CONTROLS}
        model_methods = tuple(m for m in methods if m not in CONTROLS)
        if model_methods:
            x = self._prepare(pixels)
            kwargs = dict(normalise=normalise, smooth_samples=self.settings.smooth_samples,
                          smooth_noise=self.settings.smooth_noise, seed=self.settings.seed)
            if hasattr(engine, "explain_many"):
                out.update(engine.explain_many(model_methods, x, labels, **kwargs))
            else:
                out.update({m: engine.explain(m, x, labels, **kwargs) for m in model_methods})
        if normalise:
            from heatcheck.explain.postprocess import normalise_per_image

            out = {m: normalise_per_image(v) if m in CONTROLS else v for m, v in out.items()}
        return {m: out[m] for m in methods}

    def _control(self, method: str, pixels: np.ndarray) -> np.ndarray:
        if method == "edges":
            return controls.edges(pixels)
        return controls.noise(pixels, self.settings.seed)

    @property
    def passes(self) -> int:
        return int(self.engine.passes) + self.extra_passes
