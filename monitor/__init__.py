"""cxmon's monitor: config, store, scheduler, the tick pipeline and the CLI.

The flat public API; everything else is an implementation detail.
"""

from monitor.clock import Clock, FakeClock, SystemClock
from monitor.durations import Duration, format_duration, parse_duration
from monitor.errors import ConfigError, Problem, StoreError
from monitor.model import Anomaly, Direction, Notification, Series, ValueKind, series_key

__all__ = [
    "Anomaly",
    "Clock",
    "ConfigError",
    "Direction",
    "Duration",
    "FakeClock",
    "Notification",
    "Problem",
    "Series",
    "StoreError",
    "SystemClock",
    "ValueKind",
    "format_duration",
    "parse_duration",
    "series_key",
]
