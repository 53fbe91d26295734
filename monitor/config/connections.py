"""Config of the services cxmon connects to: the store database, the Grafana server, and
the shared ``connections`` sources refer to by name.

They hold URLs and secrets, so this is where a URL is checked against what ``Store()``
accepts and masked before it reaches a repr or a log."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    GetJsonSchemaHandler,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from monitor.config.fields import _STRICT, _positive
from monitor.dburl import STORE_BACKENDS, STORE_EXAMPLES, url_problem
from monitor.durations import Duration, format_duration
from monitor.redact import redact_url as _redact_url


def redact_url(url: str) -> str:
    """The URL with secrets masked (see :func:`monitor.redact.redact_url`)."""
    return _redact_url(url)


class StoreConfig(BaseModel):
    """Where series and state are kept; ``store: <url>`` is shorthand for ``{url: ...}``."""

    model_config = _STRICT

    url: str = "sqlite:///cxmon.db"
    retention: Duration = timedelta(days=90)  # how long raw points are kept
    #: Write each metric's detector checkpoints at most this often (bucket time); ticks in
    #: between commit everything else, and a restart replays the points stored since the
    #: last checkpoint. None (the default): every tick, as before.
    checkpoint_every: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_url(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data

    _retention_positive = field_validator("retention")(_positive)

    @field_validator("checkpoint_every")
    @classmethod
    def _checkpoint_every_positive(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else _positive(value)

    @model_validator(mode="after")
    def _replayable(self) -> StoreConfig:
        # a restart replays the points since the last checkpoint: they must still be stored
        if self.checkpoint_every is not None and self.checkpoint_every >= self.retention:
            raise ValueError(
                f"checkpoint_every ({format_duration(self.checkpoint_every)}) must be shorter "
                f"than retention ({format_duration(self.retention)}): a restart replays the "
                "points stored since the last checkpoint")
        return self

    @field_validator("url")
    @classmethod
    def _url_usable(cls, value: str) -> str:
        # what Store() refuses, refused here too, so `cxmon validate` agrees with `cxmon run`
        problem = url_problem(value, STORE_BACKENDS)
        if problem:
            raise ValueError(f"{problem} ({STORE_EXAMPLES})" if "unsupported" in problem
                             else problem)
        return value

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # The URL may carry a database password: never show it in reprs or logs.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "url" else value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler.resolve_ref_schema(handler(core_schema))
        url = {"type": "string", "description": "database URL (shorthand for {url: ...})"}
        return {"anyOf": [url, dict(schema)]}


class GrafanaConfig(BaseModel):
    """The Grafana server dashboards and annotations are pushed to."""

    model_config = _STRICT

    url: str
    token: SecretStr | None = None


class ConnectionConfig(BaseModel):
    """Settings several sources share, defined once in the main file (``connections:``) and
    named by a source (``connection: lake``). Why: with ``include:``, each team's file
    repeated the same object-store endpoint and credentials for every S3 source, and a key
    rotation meant editing every team's file."""

    model_config = _STRICT

    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec options of a files source's URL path "
        "(s3://: endpoint_url, key, secret, client_kwargs, config_kwargs); a source's own "
        "storage_options keys win, nested mappings merged key by key")


def merged_options(shared: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """``shared`` with ``own`` over it, nested mappings merged key by key.

    >>> merged_options({"endpoint_url": "http://minio:9000", "config_kwargs": {"retries": 3}},
    ...                {"config_kwargs": {"connect_timeout": 5}})
    {'endpoint_url': 'http://minio:9000', 'config_kwargs': {'retries': 3, 'connect_timeout': 5}}
    """
    out = dict(shared)
    for key, value in own.items():
        below = out.get(key)
        out[key] = (merged_options(below, value)
                    if isinstance(below, Mapping) and isinstance(value, Mapping) else value)
    return out
