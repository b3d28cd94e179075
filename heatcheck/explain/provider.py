"""The session's map provider: one engine per model, maps cached on disk.

Audits ask for maps of several methods at once, so that the compiled engine can share passes
between them. With the disk cache on, unnormalised maps are kept per image (heatcheck.explain.cache),
so that sanity and stability reuse the maps of the map pass (heatcheck.explain.mapset) and an
unchanged second run computes none; with --hc-no-cache they are computed again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import heatcheck
from heatcheck.explain import controls
from heatcheck.explain import methods as registry
from heatcheck.explain.cache import MapCache
from heatcheck.explain.postprocess import normalise_per_image
from heatcheck.models import AuditModel, preprocess
from heatcheck.settings import Settings


def build_engine(settings: Settings, logits_model: Any, conv_layer: str | None, device: str) -> Any:
    if settings.engine == "tf-keras-vis":
        from heatcheck.explain.reference import ReferenceEngine

        return ReferenceEngine(logits_model, conv_layer)
    from heatcheck.explain.compiled import CompiledEngine

    return CompiledEngine(logits_model, conv_layer, device, max_batch=settings.batch_size)


class MapProvider:
    """Maps of one audit model, with the settings' SmoothGrad parameters and seed."""

    def __init__(self, audit_model: AuditModel, settings: Settings, cache: MapCache | None = None) -> None:
        self.audit_model = audit_model
        self.settings = settings
        self.cache = cache
        self.engine = build_engine(settings, audit_model.logits_model, audit_model.conv_layer,
                                   audit_model.device)
        self._prepare = preprocess.get(audit_model.preprocess)
        self.extra_passes = 0  # passes run by engines built for working copies of this model
        # Everything a map of this model depends on besides the input and the method.
        self.model_key = "|".join([
            heatcheck.__version__, settings.engine, audit_model.sha256, str(audit_model.conv_layer),
            audit_model.preprocess, str(audit_model.extra.get("output"))])

    def unavailable(self, method: str) -> str | None:
        """Why ``method`` cannot run on this model, or None."""
        if registry.get(method).needs_conv_layer and self.audit_model.conv_layer is None:
            reason = self.audit_model.extra.get("conv_layer_reason", "it has no spatial conv layer")
            return f"{method} cannot run on model '{self.audit_model.spec}': {reason}"
        return None

    def explain_many(self, methods: tuple[str, ...], pixels: np.ndarray, labels: np.ndarray, *,
                     normalise: bool, engine: Any = None,
                     model_key: str | None = None) -> dict[str, np.ndarray]:
        """Maps for RGB ``pixels`` (0–255).

        ``engine`` swaps in the engine of another model (a randomised working copy); its maps
        are cached on disk only when ``model_key`` says what that model is.
        """
        if engine is None:
            engine, model_key = self.engine, self.model_key
        out = {m: self._control(m, pixels) for m in methods if _is_control(m)}
        model_methods = tuple(m for m in methods if not _is_control(m))
        if model_methods:
            x = self._prepare(pixels)
            labels = np.asarray(labels)
            if self.cache is None or model_key is None:
                out.update(self._compute(engine, model_methods, x, labels))
            else:
                out.update(self._cached(engine, model_key, model_methods, x, labels))
        if normalise:
            out = {m: normalise_per_image(v) for m, v in out.items()}
        return {m: out[m] for m in methods}

    def _compute(self, engine: Any, methods: tuple[str, ...], x: np.ndarray,
                 labels: np.ndarray) -> dict[str, np.ndarray]:
        kwargs = dict(normalise=False, smooth_samples=self.settings.smooth_samples,
                      smooth_noise=self.settings.smooth_noise, seed=self.settings.seed)
        if hasattr(engine, "explain_many"):
            return dict(engine.explain_many(methods, x, labels, **kwargs))
        return {m: engine.explain(m, x, labels, **kwargs) for m in methods}

    def _cached(self, engine: Any, model_key: str, methods: tuple[str, ...], x: np.ndarray,
                labels: np.ndarray) -> dict[str, np.ndarray]:
        """Look every (method, image) up on disk; compute the missing images in one call."""
        assert self.cache is not None
        keys = {m: [self._key(model_key, m, x[i], int(labels[i])) for i in range(len(x))] for m in methods}
        found = {m: [self.cache.get(k) for k in keys[m]] for m in methods}
        missing = sorted({i for m in methods for i, v in enumerate(found[m]) if v is None})
        if missing:
            todo = tuple(m for m in methods if any(found[m][i] is None for i in missing))
            fresh = self._compute(engine, todo, x[missing], labels[missing])
            for m in todo:
                for row, i in enumerate(missing):
                    found[m][i] = fresh[m][row]
                    self.cache.put(keys[m][i], fresh[m][row])
        return {m: np.stack([np.asarray(v) for v in found[m]]).astype(np.float32) for m in methods}

    def _key(self, model_key: str, method: str, x: np.ndarray, label: int) -> str:
        params = (f"samples={self.settings.smooth_samples},noise={self.settings.smooth_noise},"
                  f"seed={self.settings.seed}") if registry.get(method).smoothed else ""
        return MapCache.key(model_key, method, params, str(label), str(x.shape), str(x.dtype),
                            np.ascontiguousarray(x).tobytes())

    def _control(self, method: str, pixels: np.ndarray) -> np.ndarray:
        if method == "edges":
            return controls.edges(pixels)
        return controls.noise(pixels, self.settings.seed)

    def passes_per_map(self, method: str) -> int:
        """Forward+backward passes one map of ``method`` costs an image when computed alone."""
        entry = registry.get(method)
        if entry.is_control:
            return 0
        return self.settings.smooth_samples if entry.smoothed else 1

    @property
    def passes(self) -> int:
        return int(self.engine.passes) + self.extra_passes


def _is_control(method: str) -> bool:
    return registry.get(method).is_control
