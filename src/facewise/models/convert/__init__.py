"""Converters that turn a model file of another framework into an ONNX graph (run once, cached)."""
