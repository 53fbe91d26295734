"""Pollers: one module per source type, registered by ``type:``."""

from sources import demo, sql  # noqa: F401  (registers the built-in types)
from sources.base import (
    FatalSourceError,
    PollRequest,
    RetriableSourceError,
    Source,
    SourceConfig,
    SourceError,
)
from sources.registry import config_class, create, register, source_types

__all__ = [
    "FatalSourceError",
    "PollRequest",
    "RetriableSourceError",
    "Source",
    "SourceConfig",
    "SourceError",
    "config_class",
    "create",
    "register",
    "source_types",
]
