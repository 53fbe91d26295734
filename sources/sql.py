"""``type: sql`` — any SQLAlchemy database. Queries get ``:since``/``:until`` as bound
parameters (never string formatting), plus the metric's own ``params``."""

from __future__ import annotations

import importlib.util
import logging
import math
import re
import sqlite3
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from monitor.dburl import url_problem
from monitor.durations import Seconds
from sources.base import (
    FatalSourceError,
    PollRequest,
    RetriableSourceError,
    Source,
    SourceConfig,
    require_query,
)
from sources.binds import Problems, bind_problems
from sources.registry import register

log = logging.getLogger(__name__)

_ISO_T = re.compile(r"^\d{4}-\d\d-\d\dT\d\d")


class SqlSourceConfig(SourceConfig):
    """A database reachable through a SQLAlchemy URL (the URL may hold a password)."""

    type: Literal["sql"]
    url: SecretStr = Field(description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db")
    timeout: Seconds = Field(30.0, gt=0, description="before a query is abandoned: 30s, 2m "
                             "or plain seconds")

    @field_validator("url")
    @classmethod
    def _url_usable(cls, value: SecretStr) -> SecretStr:
        # parsed and its dialect loaded now, so `cxmon validate` catches `url: notaurl`
        text = value.get_secret_value()
        if text.split("://", 1)[0].split("+", 1)[0].lower() == "postgres":
            # libpq's and Heroku's spelling, which SQLAlchemy does not know
            raise ValueError("SQLAlchemy has no 'postgres' dialect: write postgresql+psycopg://"
                             " (the rest of the URL unchanged)")
        problem = url_problem(text)
        if problem:
            raise ValueError(problem)
        return value


class SqlParams(BaseModel):
    """A SQL metric's ``params``: bind values, under any name.

    Why a model: a ``:journy`` in the query with ``params: {journey: ...}`` passed
    ``cxmon validate`` and failed every poll ("A value is required for bind parameter
    'journy'"); :meth:`query_problems` reports it with the rest of the config."""

    model_config = ConfigDict(extra="allow")

    def query_problems(self, query: Any) -> Problems:
        """Bind parameters of ``query`` that no param gives a value, and params named like
        the poll's own ``since``/``until`` (which the poll would overwrite)."""
        used = set(sa.text(query)._bindparams) if isinstance(query, str) else None
        return bind_problems(used, self.model_extra or {},
                             literal="a literal colon before a name in the SQL is written \\:")


@register("sql")
class SqlSource(Source):
    """Runs the metric's ``query`` with ``since``/``until`` bound; one engine per source."""

    Config = SqlSourceConfig
    Params = SqlParams
    config: SqlSourceConfig

    def __init__(self, name: str, config: SqlSourceConfig) -> None:  # type: ignore[override]
        super().__init__(name, config)
        self._engine: sa.Engine | None = None
        self._warned_iso_t: set[str] = set()

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            url = sa.make_url(self.config.url.get_secret_value())
            try:
                self._engine = sa.create_engine(
                    url, pool_pre_ping=True,
                    connect_args=_timeout_args(url, self.config.timeout))
            except ImportError:  # the URL's default driver (mysql:// is MySQLdb) is missing
                raise FatalSourceError(
                    f"source {self.name}: {driver_problem(url)}") from None
            _utc_sessions(self._engine)
        return self._engine

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        stmt = sa.text(require_query(self.name, request, "a SQL statement"))
        sqlite = self.engine.dialect.name == "sqlite"
        since: Any = _sqlite_time(request.since) if sqlite else request.since
        until: Any = _sqlite_time(request.until) if sqlite else request.until
        params = {**request.params, "since": since, "until": until}
        bound = {k: v for k, v in params.items() if k in stmt._bindparams}
        frame = self._run(request, stmt, bound)
        if sqlite and ("since" in bound or "until" in bound):
            frame = self._sqlite_iso_t(request, stmt, bound, frame)
        return frame

    def _run(self, request: PollRequest, stmt: sa.TextClause,
             bound: dict[str, Any]) -> pd.DataFrame:
        try:
            with self.engine.connect() as conn:
                result = conn.execute(stmt, bound)
                return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        except OperationalError as exc:
            if _is_sqlite_bad_query(exc):
                raise FatalSourceError(
                    f"source {self.name}: query for metric {request.metric} failed on "
                    f"{self.where}: {_reason(exc)}"
                ) from None
            if _is_bad_url_option(exc):
                raise FatalSourceError(
                    f"source {self.name}: the driver refused a connection option in url for "
                    f"{self.where} ({_reason(exc)}); check the source's url"
                ) from None
            if _is_login_failure(exc):
                raise FatalSourceError(
                    f"source {self.name}: the database {self.where} rejected the credentials "
                    f"or database name in url ({_reason(exc)}); check the source's url"
                ) from None
            raise RetriableSourceError(
                f"source {self.name}: database {self.where} unreachable or busy "
                f"({_reason(exc)})"
            ) from None
        except (DBAPIError, SQLAlchemyError) as exc:
            raise FatalSourceError(
                f"source {self.name}: query for metric {request.metric} failed on "
                f"{self.where}: {_reason(exc)}"
            ) from None

    @property
    def where(self) -> str:
        """The database, for messages: ``host:port/name`` or SQLite's file, never the user
        or password (a failure said "database unreachable or busy" and, with several SQL
        sources, not which database)."""
        return database_where(self.config.url.get_secret_value())

    def _sqlite_iso_t(self, request: PollRequest, stmt: sa.TextClause, bound: dict[str, Any],
                      frame: pd.DataFrame) -> pd.DataFrame:
        """Times stored as ISO text with a ``T`` (``2026-01-05T10:00:00``) on SQLite.

        SQLite compares text, and ``T`` sorts after the space of the bound
        ``2026-01-05 10:00:00``: ``ts >= :since and ts < :until`` then returned the whole
        day of ``since`` and nothing of the day of ``until`` (an hourly tick: no row at all),
        silently. When the rows show ``T`` times, or there are none, the query is run again
        with ``:since``/``:until`` in the ``T`` form; its rows are used (and a warning says
        how to write the query) when they are ``T`` times, all inside the polled range, and
        more than the first run found inside it. A query comparing ``datetime(ts)`` is right
        either way and keeps its first result.
        """
        column = request.timestamp_column
        if len(frame) and not _iso_t(frame, column):
            return frame  # the usual case: no second query
        again = {**bound}
        for key in ("since", "until"):
            if key in again:
                again[key] = again[key].replace(" ", "T", 1)
        other = self._run(request, stmt, again)
        if not len(other) or not _iso_t(other, column):
            return frame
        inside = _inside(other, column, request)
        if not inside.all() or int(inside.sum()) <= int(_inside(frame, column, request).sum()):
            return frame
        if request.metric not in self._warned_iso_t:
            self._warned_iso_t.add(request.metric)
            log.warning(
                "source %s: metric %s: %s holds ISO text times with a 'T' "
                "(%s), which SQLite compares as text with :since/:until "
                "('%s'): polled with :since/:until in the 'T' form instead. Write the "
                "query as datetime(%s) >= datetime(:since) and datetime(%s) < "
                "datetime(:until) to compare times, whatever their text form",
                self.name, request.metric, column, other[column].dropna().iloc[0],
                bound.get("since", bound.get("until")), column, column)
        return other

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


#: per database, the driver the docs name (psycopg is a cxmon dependency; pymysql is pure
#: Python, ``pip install pymysql``), for a URL naming a driver that is missing
_DRIVERS = {"mysql": "pymysql", "mariadb": "pymysql", "postgresql": "psycopg"}


def driver_problem(url: str | sa.URL) -> str | None:
    """Why the URL's DBAPI driver cannot be loaded here (None when it can), with the URL
    prefix of a driver that is installed.

    Why: ``mysql://`` means SQLAlchemy's default MySQL driver, ``mysqlclient``, which cxmon
    does not install: the config validated, and every poll failed with
    ``ModuleNotFoundError: No module named 'MySQLdb'`` and nothing about the URL.

    >>> driver_problem("sqlite:///x.db") is None
    True
    """
    parsed = sa.make_url(url)
    try:
        parsed.get_dialect().import_dbapi()
    except ImportError as exc:
        backend = parsed.get_backend_name()
        module = exc.name or str(exc)
        other = _DRIVERS.get(backend)
        if not other or other == parsed.get_driver_name():
            fix = f"; install {module} where cxmon runs"
        elif importlib.util.find_spec(other) is not None:
            fix = f"; write {backend}+{other}:// ({other} is installed)"
        else:
            fix = f"; pip install {other} and write {backend}+{other}://"
        return (f"url: the driver of {parsed.drivername}:// ({module}) is not "
                f"installed{fix}")
    except Exception:  # a dialect that fails otherwise: the poll will say
        pass
    return None


def database_where(url: str | sa.URL) -> str:
    """Which database ``url`` names, without its user or password.

    >>> database_where("postgresql+psycopg://cx:secret@db.example.com:5433/kpi")
    'db.example.com:5433/kpi'
    >>> database_where("sqlite:////var/lib/cx/kpi.db"), database_where("sqlite://")
    ('/var/lib/cx/kpi.db', ':memory:')
    """
    try:
        parsed = sa.make_url(url)
    except Exception:
        return "the database"
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    host = f"{parsed.host}{f':{parsed.port}' if parsed.port else ''}" if parsed.host else ""
    return f"{host}/{parsed.database or ''}".strip("/") or "the database"


def range_problem(query: str, column: str = "ts") -> str | None:
    """What a metric's SQL misses to read only the polled range, or None (``column``: the
    metric's timestamp, for the fix the message shows).

    Why: a query without ``:since``/``:until`` (``select ... from kpi``) is valid and
    polls fine, but every tick reads the whole table and the tick drops all but the polled
    buckets as ``before_cursor``, a warning each tick and a poll that grows with the table.
    ``cxmon validate`` says so before the first run.

    >>> range_problem("select ts, n from kpi where ts >= :since and ts < :until") is None
    True
    >>> range_problem("select ts, n from kpi")[:34]
    'uses neither :since nor :until, so'
    """
    names = set(sa.text(query)._bindparams)
    missing = [p for p in ("since", "until") if p not in names]
    if not missing:
        return None
    if len(missing) == 2:
        return ("uses neither :since nor :until, so every poll reads the whole result and "
                "all but the polled buckets are dropped (rejected as before_cursor); filter "
                f"on the timestamp: where {column} >= :since and {column} < :until")
    if missing == ["until"]:
        return ("uses :since but not :until, so each poll reads every row after its start (a "
                f"backfill chunk reads up to now); add: and {column} < :until")
    return ("uses :until but not :since, so each poll reads every row before its end; "
            f"add: {column} >= :since and")


def _timeout_args(url: sa.URL, seconds: float) -> dict[str, Any]:
    """Driver arguments that make ``timeout`` bound connecting and each query.

    ``timeout`` was accepted and documented but never passed on: a hung server or a runaway
    query held a tick (or ``validate --poll``, a backfill) for as long as the database liked.
    Keys the URL already sets (``?connect_timeout=5``) are left to the URL.
    """
    whole = max(1, math.ceil(seconds))
    args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        args = {"connect_timeout": whole,
                "options": f"-c statement_timeout={math.ceil(seconds * 1000)}"}
    elif url.get_backend_name() in ("mysql", "mariadb"):
        args = {"connect_timeout": whole, "read_timeout": whole}
    return {k: v for k, v in args.items() if k not in url.query}


#: Per dialect, the statement that makes a session compare and return times in UTC.
_SESSION_UTC = {"postgresql": "SET TIME ZONE 'UTC'", "mysql": "SET time_zone = '+00:00'",
                "mariadb": "SET time_zone = '+00:00'"}


def _utc_sessions(engine: sa.Engine) -> None:
    """Run every connection of ``engine`` in UTC.

    ``:since`` is bound as an aware time. A server whose time zone is local (initdb's default
    is the host's) compares a naive ``timestamp`` column with it in that zone, so a poll of
    09:00-12:00 UTC returned the rows stored as 04:00-07:00 (New York): shifted data, silently.
    In UTC the comparison matches the documented rule, naive values are UTC.
    """
    statement = _SESSION_UTC.get(engine.dialect.name)
    if statement is None:
        return

    @sa.event.listens_for(engine, "connect")
    def _set_utc(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(statement)
        finally:
            cursor.close()
        if engine.dialect.name == "postgresql":
            dbapi_conn.commit()  # psycopg opened a transaction for the SET


def _sqlite_time(value: datetime) -> str:
    """``value`` as naive UTC text, SQLite's own ``datetime()`` format.

    SQLite has no time type: ``ts >= :since`` compares text. The driver's default binding of
    an aware datetime adds ``+00:00``, which sorts after ``2026-01-05 00:00:00``, so the
    first bucket of every poll was lost. Naive text sorts right against the usual stored
    forms (``2026-01-05 00:00:00``, with ``.000000`` or with ``+00:00``).

    >>> _sqlite_time(datetime(2026, 1, 5, 1, tzinfo=UTC))
    '2026-01-05 01:00:00'
    """
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def _iso_t(frame: pd.DataFrame, column: str) -> bool:
    """Whether ``frame[column]`` holds text times with a ``T`` separator."""
    if column not in frame.columns:
        return False
    values = frame[column].dropna()
    return bool(len(values)) and all(isinstance(v, str) and _ISO_T.match(v) for v in values)


def _inside(frame: pd.DataFrame, column: str, request: PollRequest) -> pd.Series:
    """Per row, whether its time (naive = UTC) is inside ``[since, until)``."""
    if column not in frame.columns or not len(frame):
        return pd.Series([], dtype=bool)
    times = pd.to_datetime(frame[column], utc=True, errors="coerce", format="ISO8601")
    return (times >= pd.Timestamp(request.since)) & (times < pd.Timestamp(request.until))


#: Login failures: MySQL/MariaDB error codes (access denied, unknown database) and PostgreSQL
#: messages/SQLSTATEs (28000/28P01 invalid authorization, 3D000 unknown database).
_LOGIN_CODES = {1044, 1045, 1049, 1698}
_LOGIN_TEXT = ("password authentication failed", "role \"", "does not exist",
               "authentication failed", "access denied")


#: libpq's words for a URL option it cannot use (``?sslmode=bogus``, ``?conect_timeout=5``):
#: a config error that no retry cures, not an unreachable database
_BAD_OPTION = re.compile(r"invalid (\w+ value|connection option|dsn|port number|value for "
                         r"parameter)")


def _is_bad_url_option(exc: BaseException) -> bool:
    """Whether the driver refused the URL's connection options before connecting.

    Why: ``?sslmode=bogus`` read ``database ... unreachable or busy``, at WARNING, and was
    retried for ever like an outage."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return _BAD_OPTION.search(text) is not None


def _is_login_failure(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _LOGIN_CODES:
        return True
    if getattr(orig, "sqlstate", None) in {"28000", "28P01", "3D000"}:
        return True
    text = str(orig or exc).lower()
    return "fatal:" in text and any(t in text for t in _LOGIN_TEXT)


def _is_sqlite_bad_query(exc: OperationalError) -> bool:
    """SQLite reports a missing table or column and a syntax error as ``OperationalError``
    (PostgreSQL and MariaDB as ``ProgrammingError``): a wrong query, not a busy database, so
    fatal rather than retried every tick."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return isinstance(getattr(exc, "orig", None), sqlite3.Error) and (
        text.startswith("no such ") or "syntax error" in text
        or "incomplete input" in text or "ambiguous column" in text)


def _reason(exc: BaseException) -> str:
    """The driver's message without the statement or parameters (they may hold secrets)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
