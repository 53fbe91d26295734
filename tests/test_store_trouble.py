"""The store's own trouble mid-run: one clear line, and the next use recovers by itself."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from monitor.errors import StoreError
from monitor.store import Store
from tests.conftest import pg_base_url

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def _one_line(message: str) -> None:
    assert "\n" not in message
    assert "[SQL:" not in message and "sqlalche.me" not in message


def test_a_database_that_refuses_connections_is_one_line_naming_the_store(
        pg_url: str) -> None:
    url = (make_url(pg_url).set(database="cxmon_no_such_database", password="s3cret-pw")
           .render_as_string(hide_password=False))
    with Store(url) as s, pytest.raises(StoreError) as err:
        s.get_cursor("orders")
    message = str(err.value)
    _one_line(message)
    assert message.startswith("store postgresql+psycopg://postgres:***@127.0.0.1")
    assert "unavailable: " in message and "cxmon_no_such_database" in message
    assert "s3cret-pw" not in message


def test_a_read_only_sqlite_store_says_what_to_check(tmp_path: Path) -> None:
    Store.open(f"sqlite:///{tmp_path / 's.db'}").close()
    url = f"sqlite:///file:{tmp_path / 's.db'}?mode=ro&uri=true"
    with Store(url) as s, pytest.raises(StoreError) as err, s.transaction() as tx:
        tx.set_cursor("orders", T0)
    message = str(err.value)
    _one_line(message)
    assert "unavailable: attempt to write a readonly database" in message
    assert "(check the permissions of the file and its folder)" in message


def test_a_connection_ended_between_ticks_is_replaced_without_an_error(pg_url: str) -> None:
    """PostgreSQL restarted, or an admin's pg_terminate_backend: the next tick's write goes
    through on a new connection and nothing written before is lost."""
    with Store.open(pg_url) as s:
        with s.transaction() as tx:
            tx.set_cursor("orders", T0)
        with s.engine.connect() as conn:  # the pool's connection, reused by the next write
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        admin = sa.create_engine(pg_base_url(), poolclass=NullPool)
        try:
            with admin.begin() as conn:
                assert conn.exec_driver_sql("SELECT pg_terminate_backend(%s)", (pid,)).scalar()
        finally:
            admin.dispose()
        with s.transaction() as tx:
            tx.set_cursor("orders", T0.replace(hour=10))
        assert s.get_cursor("orders") == T0.replace(hour=10)


def test_a_tick_on_a_store_it_cannot_write_logs_one_line_and_backs_off(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Each tick of an outage logged SQLAlchemy's traceback twice (the tick, then "could not
    record the failed tick"): about 30 lines a metric a tick."""
    import logging

    from monitor.clock import FakeClock
    from monitor.config import parse_config
    from monitor.pipeline import Pipeline
    from tests.test_checkpoint_every import CONFIG, START, Shop

    db = tmp_path / "s.db"
    Store.open(f"sqlite:///{db}").close()
    cfg = parse_config(CONFIG.format(db=db, every=""), env={})
    ro = Store(f"sqlite:///file:{db}?mode=ro&uri=true")
    p = Pipeline(cfg, ro, clock=FakeClock(START), sources={"shop": Shop()},
                 notifiers={"console": object()})  # type: ignore[dict-item]
    caplog.set_level(logging.DEBUG, logger="monitor.pipeline")
    result = p.tick("orders")
    assert not result.ok and result.error
    assert result.error.startswith("store sqlite:///file") and "unavailable: attempt to write" \
        in result.error
    failed = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in failed] == [
        "tick of orders failed (1 in a row)"]
    assert failed[0].exc_info is None and "retried on the next tick" in failed[0].getMessage()
    p.close()
    ro.close()
