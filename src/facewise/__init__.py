"""facewise: detect, recognise, verify and analyse faces, with calibrated thresholds."""

from facewise.api import FaceWise
from facewise.collection import Collection
from facewise.core.engine import FaceEngine
from facewise.core.imageio import load_image
from facewise.core.pipeline import Pipeline
from facewise.errors import (
    FacewiseError,
    ImageError,
    ModelNotFoundError,
    MultipleFacesError,
    NoFaceError,
    NotFoundError,
    ProfileMismatchError,
)
from facewise.models.profiles import Profile, load_profile
from facewise.types import Box, Detection, EnrollResult, Face, Identification, Person, Quality, Sample, Verification

__version__ = "0.1.0"

__all__ = [
    "Box", "Collection", "Detection", "EnrollResult", "Face", "FaceEngine", "FaceWise", "FacewiseError",
    "Identification", "ImageError", "ModelNotFoundError", "MultipleFacesError", "NoFaceError", "NotFoundError",
    "Person", "Pipeline", "Profile", "ProfileMismatchError", "Quality", "Sample", "Verification", "load_image",
    "load_profile",
]
