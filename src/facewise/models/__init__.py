"""Model catalogue and inference backends (one small file per backend)."""

from facewise.models.catalogue import ModelCard, card, cards, is_available, resolve, search_path
from facewise.models.protocols import Detector, Embedder

__all__ = ["Detector", "Embedder", "ModelCard", "card", "cards", "is_available", "resolve", "search_path"]
