"""The source contract: a poller returns the raw rows of one metric's query for a time range.

Sources do I/O only. They never detect or alert. Errors are classified so the pipeline knows
what to do: retry later (:class:`RetriableSourceError`), wait for data that is not there yet
(:class:`MissingSourceError`, retried like a retriable error), stop and tell the user what to
fix (:class:`FatalSourceError`). A bad row is not an error here: the pipeline counts and skips it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError


class SourceError(RuntimeError):
    """A poll failed. The message names the source and never contains secrets."""


class RetriableSourceError(SourceError):
    """Temporary failure (timeout, 429, 5xx, connection refused): retry with backoff.

    ``retry_after``: seconds the server asked to wait (a ``Retry-After`` longer than the
    poll's ``max_wait``); the pipeline does not poll the source again sooner."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MissingSourceError(RetriableSourceError):
    """The data is not there yet (a ``files`` path or glob matching no file): the cursor
    waits and later ticks poll again.

    Why its own class: it is neither an outage of the source (``retriable``) nor a mistake
    that retrying cannot fix (``fatal``); ``cxmon_source_poll_errors_total`` counts it as
    ``kind="missing"`` so an alert on fatal or retriable errors does not page for a drop
    folder that is briefly empty."""


class FatalSourceError(SourceError):
    """Needs a human (bad credentials, bad query, missing table): retrying will not help."""


class SourceConfig(BaseModel):
    """Base of every source's config class. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
    type: str
    #: the finest time grain of this source's data (None: any); a metric's ``interval`` must
    #: be a whole multiple of it, or rows pile up on the first bucket of each grain
    finest_interval: ClassVar[timedelta | None] = None

    def resolve_paths(self, config_dir: Path) -> Self:
        """This config with its relative file paths taken from ``config_dir`` (the config
        file's folder; :func:`monitor.config.load_config` calls it). No paths: ``self``."""
        return self

    def label_values(self, query: str | None, label: str) -> tuple[str, ...]:
        """Values ``label`` takes in ``query``'s rows, when known without fetching (default:
        unknown, empty). Lets ``cxmon dashboards build`` make a dashboard for every value of
        a ``split_by`` label without polling the source."""
        return ()


@dataclass(frozen=True, slots=True)
class PollRequest:
    """What to fetch: one metric's query for ``since <= timestamp < until`` (UTC, tz-aware)."""

    metric: str
    since: datetime
    until: datetime
    query: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    timestamp_column: str = "timestamp"
    #: the metric's bucket size, for sources that count per bucket themselves
    interval: timedelta | None = None
    #: the metric's ``split_by`` labels and ``dimensions``: columns the rows must carry, for
    #: sources that choose the columns they return (ServiceNow's ``params.fields``)
    dimensions: tuple[str, ...] = ()


class NoParams(BaseModel):
    """The ``params`` of a source type that reads none (``zendesk``, ``files``, ``demo``).

    Why a model at all: with ``Params = None`` any key was accepted and then ignored, so a
    ``params`` meant for another source type (or a misplaced ``query``) did nothing, silently.
    Forbidding every key makes ``cxmon validate`` and the poll say so."""

    model_config = ConfigDict(extra="forbid")


class Source(ABC):
    """A configured source. Subclasses set ``Config`` and implement :meth:`fetch`."""

    Config: ClassVar[type[SourceConfig]]
    type_name: ClassVar[str]
    #: The model of a metric's ``params`` for this source type, checked with the config
    #: (None: any params, such as SQL bind values; :class:`NoParams`: none at all). A model
    #: may define ``metric_problems(self, dimensions) -> dict[str, str]`` (param key ->
    #: message) for params that cannot serve the metric's dimensions; ``cxmon validate``
    #: reports those under ``metrics[i].params.<key>``. It may also define
    #: ``query_problems(self, query) -> dict[tuple, str]`` (path under the metric, such as
    #: ``("query",)`` -> message) for a ``query`` the params cannot serve (http_json: an
    #: unknown ``{placeholder}``), reported under ``metrics[i].<path>``.
    Params: ClassVar[type[BaseModel] | None] = None

    def __init__(self, name: str, config: SourceConfig) -> None:
        self.name = name
        self.config = config

    @abstractmethod
    def fetch(self, request: PollRequest) -> pd.DataFrame:
        """Return the raw rows for ``request`` as a DataFrame.

        Must include ``request.timestamp_column`` and the columns the metric's value spec and
        dimensions name. Rows outside ``[since, until)`` may be returned; the pipeline drops
        them. Raise :class:`RetriableSourceError` or :class:`FatalSourceError` on failure.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Called once when the monitor stops."""


M = TypeVar("M", bound=BaseModel)


def require_query(source: str, request: PollRequest, what: str) -> str:
    """The metric's ``query``, or a fatal error naming the source, the metric and what the
    query should be (``what``: "a SOQL statement")."""
    if not request.query:
        raise FatalSourceError(f"source {source}: metric {request.metric} needs query: {what}")
    return request.query


def parse_params(model: type[M], source: str, request: Any) -> M:
    """A metric's ``params`` validated against ``model``; problems are one fatal error that
    names the source, the metric and each bad key."""
    try:
        return model.model_validate(dict(request.params))
    except ValidationError as exc:
        errs = "; ".join(f"params.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                         for e in exc.errors(include_input=False))
        raise FatalSourceError(
            f"source {source}: metric {request.metric} has invalid params ({errs})"
        ) from None
