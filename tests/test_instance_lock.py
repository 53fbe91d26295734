"""One ``cxmon run`` per store: a second one is refused, naming the first (both backends)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from monitor.cli import app
from monitor.store import Store
from monitor.store.instance_lock import InstanceLocked, LockWatch, holder_name
from tests.conftest import pg_base_url

runner = CliRunner()
T0 = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
FIRST = holder_name(T0, pid=4242, host="host-a")

CONFIG = """
store: "{url}"
sources:
  shop: {{type: demo, anchor: "2026-01-05T00:00:00Z"}}
metrics:
  - name: checkout_dropoff_rate
    source: shop
    query: checkout
    interval: 1h
    history: 1d
    timestamp: ts
    dimensions: [channel]
    value: {{ratio: [abandoned, started]}}
executor: {{type: inline}}
exporter: {{enabled: false}}
alerting:
  route: {{receiver: console}}
  receivers: [{{name: console, console: {{format: json}}}}]
"""


def _unique_holder() -> str:
    """A holder name no other test (xdist worker) uses: the session is found by it."""
    return holder_name(T0, pid=4242, host=f"host-{uuid.uuid4().hex[:8]}")


def _terminate_lock_session(holder: str) -> int:
    """End the database session holding a cxmon store lock, as a restart or an admin would."""
    engine = sa.create_engine(pg_base_url(), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            return len(conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s", (holder,)).all())
    finally:
        engine.dispose()


def test_a_second_instance_is_refused_naming_the_first(store_url: str) -> None:
    with Store(store_url) as s1, Store(store_url) as s2:
        first = s1.instance_lock(FIRST)
        first.acquire()
        try:
            with pytest.raises(InstanceLocked) as refused:
                s2.instance_lock("second").acquire()
            assert "cxmon run pid 4242 on host-a since 2026-11-29T09:30:00Z" in str(refused.value)
            assert "another cxmon run holds the store" in str(refused.value)
        finally:
            first.release()
        second = s2.instance_lock("second")
        second.acquire()  # released: the next one may start
        second.release()


def test_the_refusal_keeps_the_password_out(pg_url: str) -> None:
    url = make_url(pg_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    with Store(url) as s1, Store(url) as s2:
        first = s1.instance_lock(FIRST)
        first.acquire()
        try:
            with pytest.raises(InstanceLocked) as refused:
                s2.instance_lock("second").acquire()
        finally:
            first.release()
    assert "s3cret-pw" not in str(refused.value)
    assert "database session pid" in str(refused.value)
    assert "pg_terminate_backend(" in str(refused.value)


def test_a_postgres_lock_lost_with_its_connection_is_taken_back(pg_url: str) -> None:
    with Store(pg_url) as s1, Store(pg_url) as s2:
        holder = _unique_holder()
        first = s1.instance_lock(holder)
        first.acquire()
        try:
            assert _terminate_lock_session(holder) == 1
            assert first.check() is True  # reconnected and locked again
            with pytest.raises(InstanceLocked):
                s2.instance_lock("second").acquire()
        finally:
            first.release()


def test_the_watch_stops_the_monitor_when_another_took_the_lost_lock(pg_url: str) -> None:
    with Store(pg_url) as s1, Store(pg_url) as s2:
        holder = _unique_holder()
        first = s1.instance_lock(holder)
        first.acquire()
        stopped: list[bool] = []
        watch = LockWatch(first, on_taken=lambda: stopped.append(True))
        assert watch.check() is True and not stopped
        _terminate_lock_session(holder)
        second = s2.instance_lock("second")
        second.acquire()  # started in the window: it has the lock now
        try:
            assert watch.check() is False
            assert stopped == [True]
            assert "second" in str(watch.taken)
        finally:
            second.release()
            first.release()


def test_cxmon_run_once_is_refused_while_another_holds_the_store(
        store_url: str, tmp_path: Path) -> None:
    """``--once`` too (a cron run overlapping a service or the previous cron run); ``run``
    takes the lock on the same path before its scheduler starts."""
    cfg = tmp_path / "cxmon.yaml"
    cfg.write_text(CONFIG.format(url=store_url))
    with Store(store_url) as other:
        lock = other.instance_lock(FIRST)
        lock.acquire()
        try:
            result = runner.invoke(app, ["run", "-c", str(cfg), "--once"],
                                   env={"COLUMNS": "400"})
        finally:
            lock.release()
        assert result.exit_code == 1, result.output
        assert "another cxmon run holds the store" in result.output
        assert "cxmon run pid 4242 on host-a" in result.output
        # refused before migrating: a new version does not change the schema under the old
        assert not other.has_schema()


def test_cxmon_run_once_stops_when_another_took_its_lost_lock(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long ``--once`` did not watch its lock: one whose PostgreSQL session ended went on
    ticking, flushing and sending while another ``cxmon run`` had taken the store. It now
    stops before the next tick, delivers nothing and exits 1, as ``run`` does."""
    import monitor.store.instance_lock as instance_lock
    from monitor.pipeline import Pipeline

    watches: list[LockWatch] = []

    class StepWatch(LockWatch):
        """The watch, its checks made by the test instead of every 15 s by its thread."""

        def start(self) -> None:
            watches.append(self)

    monkeypatch.setattr(instance_lock, "LockWatch", StepWatch)
    cfg = tmp_path / "cxmon.yaml"
    second_metric = """  - name: checkout_started
    source: shop
    query: checkout
    interval: 1h
    history: 1d
    timestamp: ts
    dimensions: [channel]
    value: {{sum: started}}
"""
    cfg.write_text(CONFIG.format(url=pg_url).replace(
        "executor:", second_metric.replace("{{", "{").replace("}}", "}") + "executor:"))
    other = Store(pg_url)
    taken = []
    tick = Pipeline.tick

    def tick_then_lose_the_lock(self: Pipeline, metric: str):
        result = tick(self, metric)
        if not taken:  # the session ends (a database restart), another run starts
            (watch,) = watches
            assert _terminate_lock_session(watch.lock.holder) == 1
            taken.append(other.instance_lock("the other run"))
            taken[0].acquire()
            assert watch.check() is False
        return result

    monkeypatch.setattr(Pipeline, "tick", tick_then_lose_the_lock)
    try:
        result = runner.invoke(app, ["run", "-c", str(cfg), "--once"],
                               env={"COLUMNS": "400"})
        assert result.exit_code == 1, result.output
        assert "store lock lost" in result.output
        assert "the other run" in result.output
        assert "stopped after 1 of 2 tick(s)" in result.output
        assert other.get_cursor("checkout_dropoff_rate") is not None  # the tick that ran
        assert other.get_cursor("checkout_started") is None  # ... and no other
    finally:
        for lock in taken:
            lock.release()
        other.close()
