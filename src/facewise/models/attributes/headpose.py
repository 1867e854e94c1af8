"""Head pose (yaw, pitch, roll in degrees) from FSA-Net or, cheaply, from five facial landmarks.

Sign convention (shared by :class:`FSANet` and :func:`pose_from_landmarks`; it is FSA-Net's own,
the 300W-LP / AFLW2000 convention):

* **yaw > 0**: the face turns towards the image's left, i.e. the person turns to *their* right and
  the nose moves towards the image-left eye.  Mirroring the image negates yaw.
* **pitch > 0**: the face tilts up (chin raised).
* **roll > 0**: in-plane rotation that raises the image-left eye above the image-right eye, i.e. the
  face is turned clockwise as seen on screen.  Mirroring the image negates roll.

FSA-Net models: omasaht/headpose-fsanet-pytorch (MIT), trained on 300W-LP.  As in that project's
demo, the detector box is cropped as is (no margin added), converted to BGR, resized to 64x64 and
normalised as ``(x - 127.5) / 128``; the two models' outputs are averaged (and, by default, averaged
with the mirrored crop's, see ``flip_average``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import onnxruntime as ort

from facewise.models._detect_util import bgr_and_boxes
from facewise.models.attributes import Attribute, TypedDict
from facewise.models.catalogue import ModelCard, is_available
from facewise.models.protocols import HeadPoseModel
from facewise.models.runtime import onnx_session
from facewise.types import Face

logger = logging.getLogger(__name__)

__all__ = ["FSANet", "HeadPose", "pose_from_landmarks"]

INPUT_SIZE = 64

# Generic face geometry for pose_from_landmarks, in units of the inter-pupil distance: depth of the
# nose tip in front of the eye/mouth plane, eye-line to mouth-line distance, and the frontal height
# of the nose tip between the eye line (0) and the mouth line (1).  Fitted against FSA-Net on LFW.
_NOSE_DEPTH = 0.65
_EYE_MOUTH_DIST = 1.0
_NOSE_T0 = 0.48


class FSANet:
    """FSA-Net head-pose ensemble (1x1 and var capsule variants).

    Args:
        model_1x1_path: path of ``fsanet-1x1-iter-688590.onnx``.
        model_var_path: path of ``fsanet-var-iter-688590.onnx``.
        threads: onnxruntime intra-op threads per session.
        margin: fraction of the box size added on every side before cropping.  0 (default) follows
            the reference demo, which crops the detector box unchanged.
        flip_average: also run the horizontally flipped crop and average (negating its yaw and
            roll).  The raw models are not exactly mirror-consistent (on LFW, |yaw(img) + yaw(mirror)|
            has a median of about 4 degrees); averaging makes mirroring negate yaw and roll exactly,
            at twice the (small) cost.
    """

    options: ClassVar[frozenset[str]] = frozenset({"margin", "flip_average"})

    @classmethod
    def from_card(cls, card: ModelCard, paths: list[Path], threads: int = 1, **options: Any) -> FSANet:
        """The card's two files (1x1, var); ``threads`` 0 counts as one."""
        one_by_one, var = paths
        return cls(one_by_one, var, threads=threads or 1, **options)

    def __init__(
        self,
        model_1x1_path: str | PathLike[str],
        model_var_path: str | PathLike[str],
        threads: int = 1,
        margin: float = 0.0,
        flip_average: bool = True,
    ) -> None:
        self.margin = float(margin)
        self.flip_average = bool(flip_average)
        self._models: list[tuple[ort.InferenceSession, str]] = []
        for path in (Path(model_1x1_path), Path(model_var_path)):
            if not path.is_file():
                raise FileNotFoundError(f"head-pose model not found: {path}")
            sess = onnx_session(path, threads)
            self._models.append((sess, sess.get_inputs()[0].name))
            logger.debug("loaded FSA-Net model %s", path.name)

    def _crop(self, bgr: np.ndarray, box: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        if self.margin:
            mx, my = (x2 - x1) * self.margin, (y2 - y1) * self.margin
            x1, y1, x2, y2 = x1 - mx, y1 - my, x2 + mx, y2 + my
        # Pixels whose centres lie inside the box, clipped to the image: [round(x1), round(x2)).  This
        # is the reference demo's crop up to one pixel, and mirroring box and image mirrors the crop.
        ix1 = min(max(int(round(x1)), 0), w - 1)
        iy1 = min(max(int(round(y1)), 0), h - 1)
        ix2 = min(max(int(round(x2)), ix1 + 1), w)
        iy2 = min(max(int(round(y2)), iy1 + 1), h)
        roi = bgr[iy1:iy2, ix1:ix2]
        return cv2.resize(roi, (INPUT_SIZE, INPUT_SIZE))

    def _predict(self, roi: np.ndarray) -> np.ndarray:
        blob = ((roi.transpose(2, 0, 1)[None].astype(np.float32) - 127.5) / 128.0).astype(np.float32)
        # The exported graphs have a fixed batch of 1.
        preds = [sess.run(None, {name: blob})[0].reshape(3) for sess, name in self._models]
        return np.asarray(np.mean(preds, axis=0, dtype=np.float64))

    def estimate(self, image_rgb: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """``[N, 3]`` float32 array of (yaw, pitch, roll) degrees, one row per box ``(x1, y1, x2, y2)``."""
        bgr, box_arr = bgr_and_boxes(image_rgb, boxes)
        if len(box_arr) == 0:
            return np.zeros((0, 3), dtype=np.float32)
        out = np.zeros((box_arr.shape[0], 3), dtype=np.float64)
        for i, box in enumerate(box_arr):
            roi = self._crop(bgr, box)
            pose = self._predict(roi)
            if self.flip_average:
                yaw_f, pitch_f, roll_f = self._predict(np.ascontiguousarray(roi[:, ::-1]))
                pose = (pose + np.array([-yaw_f, pitch_f, -roll_f])) / 2.0
            out[i] = pose
        return out.astype(np.float32)


def pose_from_landmarks(landmarks5: np.ndarray) -> tuple[float, float, float]:
    """Approximate ``(yaw, pitch, roll)`` in degrees from five landmarks; same signs as :class:`FSANet`.

    ``landmarks5`` is ``[5, 2]`` pixel coordinates ordered: image-left eye, image-right eye, nose tip,
    image-left mouth corner, image-right mouth corner (the YuNet / ArcFace order).

    Roll is the angle of the eye line.  In the roll-corrected frame (eye line horizontal) a
    weak-perspective model of a generic face, whose nose tip stands ``depth`` inter-pupil distances
    in front of the eye/mouth plane, gives

    * yaw: the nose's horizontal offset from the eye-centre/mouth-centre line, divided by the
      (foreshortened) eye distance, is ``depth * tan(yaw)``;
    * pitch: the nose's height between the eye line (0) and the mouth line (1) is
      ``t0 - (depth / eye_mouth) * tan(pitch)``.

    The constants were fitted against FSA-Net on LFW with YuNet landmarks (agreement: about 5 degrees
    mean absolute difference for yaw and pitch).  The result is only as good as the landmarks: YuNet's
    landmarks, for instance, follow an in-plane rotation only partly, so roll is underestimated.
    """
    pts = np.asarray(landmarks5, dtype=np.float64).reshape(5, 2)
    eye_l, eye_r, nose, mouth_l, mouth_r = pts
    eye_vec = eye_r - eye_l
    eye_dist = float(np.hypot(eye_vec[0], eye_vec[1]))
    # Image y grows downwards: roll > 0 when the image-left eye is higher (smaller y).
    roll = math.degrees(math.atan2(eye_r[1] - eye_l[1], eye_vec[0]))

    # Rotate into the roll-corrected frame, origin at the eye centre, y towards the mouth.
    theta = math.atan2(eye_vec[1], eye_vec[0])
    c, s = math.cos(theta), math.sin(theta)
    unrotate = np.array([[c, s], [-s, c]])
    eye_c = (eye_l + eye_r) / 2.0
    n = unrotate @ (nose - eye_c)
    m = unrotate @ ((mouth_l + mouth_r) / 2.0 - eye_c)
    if eye_dist < 1e-6 or m[1] <= 1e-6:
        logger.debug("degenerate landmarks for pose: %s", pts.tolist())
        return 0.0, 0.0, float(roll)

    t = float(n[1] / m[1])  # nose height between eye line (0) and mouth line (1)
    offset = float(n[0] - t * m[0])  # > 0: nose towards the image-right eye
    yaw = -math.degrees(math.atan2(offset, _NOSE_DEPTH * eye_dist))
    pitch = math.degrees(math.atan2((_NOSE_T0 - t) * _EYE_MOUTH_DIST, _NOSE_DEPTH))
    return float(yaw), float(pitch), float(roll)


class PoseResult(TypedDict):
    """Head pose in degrees and where it came from: ``fsanet``, or ``landmarks`` (five-landmark geometry)."""

    yaw: float
    pitch: float
    roll: float
    source: str


class HeadPose(Attribute):
    """The ``pose`` attribute: yaw, pitch, roll (0.1 degree) from FSA-Net, from the five landmarks without it."""

    name = "pose"
    model_ids = ("fsanet",)
    result = PoseResult
    column = "yaw/pitch/roll"

    def __init__(self) -> None:
        self.model: HeadPoseModel | None = None

    def available(self) -> bool:
        return True  # falls back to five-landmark geometry

    def load(self, threads: int) -> None:
        if is_available("fsanet"):
            from facewise.models.registry import load_headpose

            self.model = load_headpose("fsanet", threads or 1)  # shared with a pipeline that takes yaw from it

    @classmethod
    def summary(cls, result: dict[str, Any]) -> str:
        return f"{result['yaw']:+.0f}/{result['pitch']:+.0f}/{result['roll']:+.0f}"

    def analyze(self, pixels: np.ndarray, faces: list[Face], what: tuple[str, ...]) -> list[dict[str, object]]:
        if self.model is not None:
            poses = self.model.estimate(pixels, np.array([[f.box.x1, f.box.y1, f.box.x2, f.box.y2] for f in faces]))
            source = "fsanet"
        else:
            poses = np.array([pose_from_landmarks(f.landmarks) for f in faces])
            source = "landmarks"
        return [{"yaw": round(float(y), 1), "pitch": round(float(p), 1), "roll": round(float(r), 1), "source": source}
                for y, p, r in poses]
