"""Evaluation harness: pure metrics, pair-list parsing and plots (no models, no images)."""
