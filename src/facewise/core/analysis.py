"""What a face shows beyond identity: every registered face attribute, each optional, each measured.

The attributes are plug-ins (:mod:`facewise.models.attributes`: one module and one registry line each); as
shipped: ``live`` (``minifasnet-v2-v1se``, fused with cheap cues by ``weights/liveness-fused.weights`` when
present), ``pose`` (``fsanet``; five-landmark geometry when absent) and ``expression`` (``expression-fer7``,
trained by this project, shipped in the package). Results land in ``Face.attributes[name]``; a plug-in's
:meth:`~facewise.models.attributes.Attribute.reason` (liveness: "not live ...") lands in the quality reasons.

The liveness threshold is, in order: a deployment's own threshold file (``facewise calibrate-liveness``;
:meth:`Analyzer.set_live_threshold` or the ``FACEWISE_LIVENESS_THRESHOLD`` environment variable), the
fused model's fitted boundary, the anti-spoofing card's 0.5.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from facewise import settings
from facewise.errors import ValidationError
from facewise.models import attributes
from facewise.models.attributes import Attribute
from facewise.models.attributes.headpose import HeadPose
from facewise.models.attributes.liveness import Liveness, LiveThreshold, card_threshold
from facewise.types import Face

log = logging.getLogger(__name__)

__all__ = ["THRESHOLD_ENV", "Analyzer", "Gate", "LiveThreshold", "live_threshold"]


@dataclass(frozen=True)
class Gate:
    """Enrolment / verification gate: refuse faces below a quality or not live."""

    min_quality: float | None = None
    require_live: bool = False


def live_threshold() -> float:
    """P(live) at or above which a face counts as live (from the anti-spoofing card)."""
    return card_threshold()


THRESHOLD_ENV = "FACEWISE_LIVENESS_THRESHOLD"


class Analyzer:
    """Runs the registered face attributes; loads each plug-in on first use; answers what is available."""

    def __init__(self, threads: int = 1, live_map: bool = True) -> None:
        self.threads = threads
        self.live_map = live_map
        self._lock = threading.RLock()
        self._plugins: dict[str, Attribute | None] = {}
        self._live_threshold: LiveThreshold | None = None
        env = settings.liveness_threshold_file()  # THRESHOLD_ENV
        if env is not None:
            self.set_live_threshold(LiveThreshold.load(env))

    # -- the plug-ins ---------------------------------------------------------------------------
    def attribute(self, name: str) -> Attribute | None:
        """The loaded plug-in registered as ``name``; ``None`` where it cannot run here (its model is absent)."""
        with self._lock:
            if name in self._plugins:
                return self._plugins[name]
            plugin: Attribute | None = attributes.attribute_class(name)()
            assert plugin is not None
            try:
                if plugin.available():
                    plugin.load(self.threads)
                else:
                    log.info("face attribute %s: model not available", name)
                    plugin = None
            except (ImportError, OSError) as exc:
                log.info("face attribute %s unavailable: %s", name, exc)
                plugin = None
            self._plugins[name] = plugin
            return plugin

    def available(self) -> dict[str, bool]:
        """Every registered attribute and whether it runs here (loads each)."""
        return {name: self.attribute(name) is not None for name in attributes.names()}

    def analyze(self, pixels: np.ndarray, faces: list[Face], what: tuple[str, ...] | None = None) -> list[Face]:
        """Fill ``face.attributes[name]`` for each attribute named in ``what`` (default: every registered one)
        whose model is here; a plug-in's quality reason goes to ``face.quality.reasons``.

        ``what`` may also name an attribute's options: ``"live_map"`` adds the occlusion map to ``live``.
        An unknown name is a :class:`~facewise.errors.ValidationError`.
        """
        if what is None:
            what = attributes.names()
        unknown = [w for w in what if w not in attributes.options()]
        if unknown:
            raise ValidationError(f"unknown face attribute {unknown[0]!r} "
                                  f"(known: {', '.join(attributes.options())})")
        if not self.live_map:
            what = tuple(w for w in what if w != "live_map")
        if not faces:
            return faces
        for name in attributes.names():
            plugin = self.attribute(name) if name in what else None
            if plugin is None:
                continue
            for face, result in zip(faces, plugin.analyze(pixels, faces, what), strict=True):
                face.attributes[name] = result
                reason = plugin.reason(result)
                if reason is not None:
                    face.quality.reasons.append(reason)
        return faces

    # -- liveness, by name (the threshold file, calibration and challenge use it) ----------------------
    def _liveness(self) -> Liveness | None:
        plugin = self.attribute("live")
        return plugin if isinstance(plugin, Liveness) else None

    def set_live_threshold(self, t: LiveThreshold | None) -> None:
        """Decide liveness at a deployment's own fitted threshold (``None``: the model's default)."""
        live = self._liveness()
        if live is not None:
            live.set_threshold(t)
        self._live_threshold = t

    @property
    def live_model(self) -> Any | None:
        """The fused scorer when its weights ship, MiniFASNet alone otherwise, None without MiniFASNet."""
        live = self._liveness()
        return live.model if live is not None else None

    @live_model.setter
    def live_model(self, model: Any | None) -> None:  # evaluate-liveness --model minifasnet
        live = self._liveness()
        if live is not None:
            live.model = model

    @property
    def live_model_name(self) -> str:
        live = self._liveness()
        return live.model_name if live is not None else "minifasnet"

    def live_threshold(self) -> tuple[float, str]:
        """The threshold in force and where it came from."""
        live = self._liveness()
        if live is not None:
            return live.threshold()
        if self._live_threshold is not None:
            return self._live_threshold.threshold, f"fitted ({self._live_threshold.source or 'threshold file'})"
        return live_threshold(), "card"

    def liveness(self, pixels: np.ndarray, faces: list[Face]) -> np.ndarray | None:
        live = self._liveness()
        return live.scores(pixels, faces) if live is not None else None

    @property
    def antispoof(self) -> Any | None:
        live = self._liveness()
        return live.fas if live is not None else None

    @property
    def headpose(self) -> Any | None:
        """FSA-Net, or None (pose then comes from the five landmarks)."""
        plugin = self.attribute("pose")
        return getattr(plugin, "model", None)

    @headpose.setter
    def headpose(self, model: Any | None) -> None:
        plugin = self.attribute("pose")
        if isinstance(plugin, HeadPose):
            plugin.model = model

    @property
    def expression(self) -> Any | None:
        return getattr(self.attribute("expression"), "model", None)
