"""Detectors: columnar streaming and seasonal scorers, post-rules, severity. No I/O here."""

from detectors import (  # noqa: F401  (register more built-in types)
    novelty,
    prophet_detector,
    river_adapter,
    robust_seasonal,
    seasonal_baseline,
    surprise,
)
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
