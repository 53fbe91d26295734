"""Shared fixtures.

Store fixtures: ``store_url`` runs a test against SQLite (a file in tmp_path) and against the
real PostgreSQL server (each test in its own throw-away schema, via ``search_path`` in the
URL, so ``Store(store_url)`` needs nothing special). PostgreSQL tests skip locally when the
server is unreachable, but fail when ``CI`` is set: CI must never silently drop a backend.
"""

from __future__ import annotations

import functools
import logging
import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import settings
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from monitor.store import Store

# Shared CI machines are noisy: no per-example time limits (speed lives in benchmarks).
settings.register_profile("cxmon", deadline=None)
settings.load_profile("cxmon")

PG_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A CLI command run in a test (``cxmon run``) sets up the root logger for the whole
    process: undo it, so a later command's output is not mixed with INFO log lines."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def pg_base_url() -> str:
    """The PostgreSQL server used by tests (override with ``CXMON_TEST_PG_URL``)."""
    return os.environ.get("CXMON_TEST_PG_URL") or PG_DEFAULT_URL


PG_URL = pg_base_url()  # the server's base URL (public schema); for tests that need their own


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def server_problem(url: str) -> str | None:
    """Why the database server at ``url`` cannot be used, or None if it answers."""
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        engine.dispose()
    return None


@functools.cache
def _pg_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None if it can (checked once per session)."""
    return server_problem(pg_base_url())


def pg_url_available() -> bool:
    """True if the test PostgreSQL server answers."""
    return _pg_problem() is None


def require_postgres() -> None:
    """Skip (locally) or fail (in CI) the calling test when PostgreSQL is unreachable."""
    problem = _pg_problem()
    if problem is None:
        return
    where = make_url(pg_base_url()).render_as_string(hide_password=True)
    message = f"PostgreSQL at {where} is unreachable ({problem})"
    if in_ci():
        pytest.fail(f"{message}; CI is set, so PostgreSQL tests must run", pytrace=False)
    pytest.skip(f"{message}; set CXMON_TEST_PG_URL or start the server")


def _schema_url(base: str, schema: str) -> str:
    url = make_url(base)
    options = " ".join(filter(None, [url.query.get("options"), f"-csearch_path={schema}"]))
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    require_postgres()
    schema = f"cxmon_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_base_url(), poolclass=NullPool)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        yield _schema_url(pg_base_url(), schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'cxmon.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """A store URL for each backend: an empty SQLite file, then an empty PostgreSQL schema."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated store on each backend, closed after the test."""
    s = Store.open(store_url)
    try:
        yield s
    finally:
        s.close()
