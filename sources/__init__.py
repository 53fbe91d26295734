"""Pollers: one module per source type, registered by ``type:``."""

from sources import (  # noqa: F401  (registers the built-in types)
    demo,
    files,
    google_analytics,
    http_json,
    prometheus,
    salesforce,
    servicenow,
    sql,
    zendesk,
)
from sources.base import (
    FatalSourceError,
    MissingSourceError,
    PollRequest,
    RetriableSourceError,
    Source,
    SourceConfig,
    SourceError,
)
from sources.registry import config_class, create, register, source_types

__all__ = [
    "FatalSourceError",
    "MissingSourceError",
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
