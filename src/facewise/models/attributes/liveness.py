"""The ``live`` attribute: MiniFASNet, fused with cheap cues when ``weights/liveness-fused.weights`` ships.

The threshold is, in order: a deployment's own threshold file (:class:`LiveThreshold`, set with
:meth:`Liveness.set_threshold`), the fused model's fitted boundary, the anti-spoofing card's 0.5.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facewise.errors import FacewiseError
from facewise.models.attributes import Attribute, NotRequired, TypedDict
from facewise.models.catalogue import card, resolve
from facewise.types import Face

log = logging.getLogger(__name__)


def card_threshold() -> float:
    """P(live) at or above which a face counts as live (from the anti-spoofing card)."""
    return float(card("minifasnet-v2-v1se").thresholds.get("live", 0.5))


@dataclass(frozen=True)
class LiveThreshold:
    """A deployment's own liveness threshold, fitted on its bona fide samples (``calibrate-liveness``)."""

    model: str  # "fused" or "minifasnet": the scorer it was fitted for
    threshold: float
    target_bpcer: float
    n_bona_fide: int
    source: str = ""

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"kind": "facewise-liveness-threshold", **asdict(self)}, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> LiveThreshold:
        try:
            doc = json.loads(Path(path).read_text())
            if doc.pop("kind", None) != "facewise-liveness-threshold":
                raise ValueError("not a liveness threshold file (no kind: facewise-liveness-threshold)")
            t = cls(**doc)
        except (OSError, ValueError, TypeError) as exc:
            raise FacewiseError(f"liveness threshold file {path}: {exc}") from exc
        if not 0.0 <= t.threshold <= 1.0:
            raise FacewiseError(f"liveness threshold file {path}: threshold {t.threshold} is not in [0, 1]")
        return t


class LiveCue(TypedDict):
    """One cheap cue of the fused model: its value, its pull on the log-odds of live (negative: toward attack),
    whether it fired."""

    value: float
    pull: float
    fired: bool


class LiveMap(TypedDict):
    """The occlusion map: ``box`` (x1, y1, x2, y2) is the region the ``grid`` x ``grid`` cells cover; ``delta``
    (rows top to bottom) is the change of P(live) when each cell is blurred out (positive: evidence of an attack)."""

    box: list[int]
    grid: int
    delta: list[list[float]]


class LiveResult(TypedDict):
    """Liveness of one face: P(live) and the verdict at the threshold in force (``model``: fused, MiniFASNet and
    cues, or minifasnet; ``fired``: the cues that pulled toward attack; ``map`` when asked for with live_map)."""

    score: float
    is_live: bool
    threshold: NotRequired[float]
    threshold_source: NotRequired[str]
    model: NotRequired[str]
    fired: NotRequired[list[str]]
    cues: NotRequired[dict[str, LiveCue]]
    map: NotRequired[LiveMap]


class Liveness(Attribute):
    """Score, decision, threshold (and its source), the cues with their pull, and on request the occlusion map."""

    name = "live"
    result = LiveResult
    model_ids = ("minifasnet-v2-v1se",)
    options = ("live_map",)

    def __init__(self) -> None:
        self.fas: Any | None = None  # MiniFASNet
        self.model: Any | None = None  # the scorer: LiveFusion, or MiniFASNet alone
        self.fitted: LiveThreshold | None = None

    def load(self, threads: int) -> None:
        from facewise.models.attributes.antispoof import MiniFASNet
        from facewise.models.attributes.livefusion import DEFAULT_WEIGHTS, LiveFusion

        v2, v1se = resolve("minifasnet-v2-v1se")
        self.fas = MiniFASNet(v2, v1se, threads=threads)
        self.model = LiveFusion(self.fas, DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.is_file() else self.fas

    @property
    def model_name(self) -> str:
        from facewise.models.attributes.livefusion import LiveFusion

        return "fused" if isinstance(self.model, LiveFusion) else "minifasnet"

    def set_threshold(self, t: LiveThreshold | None) -> None:
        if t is not None and self.model is not None and t.model != self.model_name:
            raise FacewiseError(f"the liveness threshold was fitted for the {t.model} scorer, "
                                f"but this installation scores with {self.model_name}")
        self.fitted = t

    def threshold(self) -> tuple[float, str]:
        """The threshold in force and where it came from."""
        if self.fitted is not None:
            return self.fitted.threshold, f"fitted ({self.fitted.source or 'threshold file'})"
        if self.model is not None and hasattr(self.model, "threshold"):
            return float(self.model.threshold), "fused model boundary"
        return card_threshold(), "card"

    def scores(self, pixels: np.ndarray, faces: list[Face]) -> np.ndarray | None:
        if self.model is None or not faces:
            return None
        boxes = np.array([[f.box.x1, f.box.y1, f.box.x2, f.box.y2] for f in faces])
        return np.asarray(self.model.live_scores(pixels, boxes))

    def _explained(self, pixels: np.ndarray, faces: list[Face], with_map: bool) -> list[dict[str, Any]]:
        model = self.model
        if model is None:
            return []
        if not hasattr(model, "explain"):
            scores = self.scores(pixels, faces)
            return [{"score": round(float(s), 4)} for s in (scores if scores is not None else [])]
        out = []
        for f in faces:
            box = [f.box.x1, f.box.y1, f.box.x2, f.box.y2]
            try:
                out.append(model.explain(pixels, box, with_map=with_map))
            except FacewiseError as exc:  # a face too small for a map still gets its score and cues
                log.info("no occlusion map: %s", exc)
                out.append(model.explain(pixels, box, with_map=False))
        return out

    def analyze(self, pixels: np.ndarray, faces: list[Face], what: tuple[str, ...]) -> list[dict[str, Any]]:
        thr, source = self.threshold()
        base = {"threshold": round(thr, 4), "threshold_source": source, "model": self.model_name}
        out = []
        for ex in self._explained(pixels, faces, "live_map" in what):
            res = {**ex, **base}
            out.append({"score": res["score"], "is_live": bool(res["score"] >= res["threshold"]), **res})
        return out

    @classmethod
    def summary(cls, result: dict[str, Any]) -> str:
        return f"{result['score']:.2f}"

    def reason(self, result: dict[str, Any]) -> str | None:
        s, thr = result["score"], result["threshold"]
        if s >= thr:
            return None
        why = f" ({', '.join(result['fired'])})" if result.get("fired") else ""
        return f"not live (P(live) {s:.2f} < {thr:.2f}){why}"
