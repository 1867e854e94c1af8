"""The two tiny protocols every backend implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from facewise.types import Detection


@runtime_checkable
class Detector(Protocol):
    """Finds faces: ``detect(rgb_image) -> [Detection]`` with boxes, 5 landmarks and scores."""

    model_id: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...


@runtime_checkable
class Embedder(Protocol):
    """Maps aligned face crops (N, size, size, 3) RGB uint8 to (N, dim) L2-normalised float32 vectors.

    ``template`` holds the five landmark positions (ArcFace order) of this model's alignment in
    pixels of its ``size`` x ``size`` input.
    """

    model_id: str
    dim: int
    size: int
    template: np.ndarray

    def embed(self, aligned: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Landmarker(Protocol):
    """Re-estimates the five landmarks of detections: ``refine(rgb_image, dets) -> dets``."""

    model_id: str

    def refine(self, image: np.ndarray, dets: list[Detection]) -> list[Detection]: ...


@runtime_checkable
class HeadPoseModel(Protocol):
    """Head pose of faces: ``estimate(rgb_image, boxes) -> (N, 3)`` yaw, pitch, roll in degrees (FSA-Net's signs)."""

    def estimate(self, image_rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray: ...
