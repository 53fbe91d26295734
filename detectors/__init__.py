"""Detectors: columnar streaming and seasonal scorers, post-rules, severity. No I/O here."""

from detectors import robust_seasonal  # noqa: F401  (registers the built-in types)
from detectors.base import Detector, DetectorConfig, Scores, TickBatch
from detectors.registry import config_class, create, detector_types, register

__all__ = [
    "Detector",
    "DetectorConfig",
    "Scores",
    "TickBatch",
    "config_class",
    "create",
    "detector_types",
    "register",
]
