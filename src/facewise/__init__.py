"""facewise: detect, recognise, verify and analyse faces, with calibrated thresholds."""

from .api import FaceWise
from .errors import (
    FacewiseError,
    ImageError,
    ModelNotFoundError,
    MultipleFacesError,
    NoFaceError,
    NotFoundError,
    ProfileMismatchError,
)
from .imageio import load_image
from .pipeline import Pipeline
from .profiles import Profile, load_profile
from .types import Box, Detection, EnrollResult, Face, Identification, Person, Quality, Sample, Verification

__version__ = "0.1.0"

__all__ = [
    "Box", "Detection", "EnrollResult", "Face", "FaceWise", "FacewiseError", "Identification", "ImageError",
    "ModelNotFoundError", "MultipleFacesError", "NoFaceError", "NotFoundError", "Person", "Pipeline", "Profile",
    "ProfileMismatchError", "Quality", "Sample", "Verification", "load_image", "load_profile",
]
