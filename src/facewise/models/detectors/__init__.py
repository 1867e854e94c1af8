"""models/detectors"""
