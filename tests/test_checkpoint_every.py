"""``store.checkpoint_every``: detector checkpoints are written at most that often; a new
process replays the points stored since the last checkpoint, so its scores and anomalies are
exactly those of a process that never stopped, and a kill between two checkpoints neither
loses nor repeats an anomaly or a notification."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from monitor.clock import FakeClock
from monitor.config import ConfigError, parse_config
from monitor.pipeline import Pipeline, TickResult
from monitor.store import Store
from sources.base import PollRequest, Source, SourceConfig
from tests.dying_commit import die_at_commit

T0 = datetime(2026, 3, 2, tzinfo=UTC)
STEP = timedelta(hours=1)
START = T0 + timedelta(days=15)  # the first tick learns 14 days of history
N = 10  # ticks before the kill
SPIKES = (START + 4 * STEP, START + 5 * STEP, START + N * STEP)  # bucket ends

CONFIG = """
store: {{url: "sqlite:///{db}"{every}}}
sources:
  shop: {{type: demo}}
metrics:
  - name: orders
    source: shop
    interval: 1h
    history: 14d
    query: orders
    timestamp: ts
    split_by: [journey]
    value: {{sum: n}}
alerting:
  route: {{receiver: console, group_wait: 0s}}
  receivers: [{{name: console, console: {{format: json}}}}]
"""


class Shop(Source):
    """Hourly orders of three journeys with a daily cycle; ``checkout`` spikes in the
    buckets ending at ``SPIKES``."""

    def __init__(self) -> None:
        super().__init__("shop", SourceConfig(type="demo"))

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        rows = []
        for ts in pd.date_range(request.since, request.until, freq=STEP, inclusive="left"):
            rng = np.random.default_rng(int(ts.timestamp()))
            cycle = 1.0 + 0.5 * np.sin(2 * np.pi * ts.hour / 24)
            for journey, level in (("checkout", 300.0), ("search", 900.0), ("login", 120.0)):
                n = float(rng.poisson(level * cycle))
                if journey == "checkout" and ts + STEP in SPIKES:
                    n *= 4
                rows.append({"ts": ts, "journey": journey, "n": n})
        return pd.DataFrame(rows, columns=["ts", "journey", "n"])


def make(tmp_path, name: str, clock: FakeClock, every: str | None) -> Pipeline:
    extra = f", checkpoint_every: {every}" if every else ""
    cfg = parse_config(CONFIG.format(db=tmp_path / f"{name}.db", every=extra), env={})
    return Pipeline(cfg, Store.open(cfg.store.url), clock=clock, sources={"shop": Shop()},
                    notifiers={"console": object()})  # type: ignore[dict-item] - not delivered


def ticks(p: Pipeline, clock: FakeClock, n: int) -> list[TickResult]:
    out = []
    for _ in range(n):
        r = p.tick("orders")
        assert r.ok, r.error
        out.append(r)
        clock.advance(STEP)
    return out


def stored(store: Store) -> tuple[list[tuple], list[tuple]]:
    """Anomalies and outbox rows, as comparable tuples."""
    anomalies = store.anomalies(metric="orders")
    a = sorted(zip(anomalies["id"], anomalies["series"], anomalies["score"], strict=True))
    n = sorted((r.idempotency_key, r.receiver, r.incident_key) for r in store.notifications())
    return a, n


def test_a_restart_between_checkpoints_scores_exactly_as_an_uninterrupted_run(
        tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    # C: ticks 1..N+1 without stopping, checkpoints every tick (the default)
    clock_c = FakeClock(START)
    c = make(tmp_path, "c", clock_c, None)
    run_c = ticks(c, clock_c, N + 1)
    assert all(r.checkpointed for r in run_c)
    # A: ticks 1..N, checkpoints at most daily: only the first tick (history) writes them
    clock = FakeClock(START)
    a = make(tmp_path, "a", clock, "1d")
    run_a = ticks(a, clock, N)
    assert [r.checkpointed for r in run_a] == [True] + [False] * (N - 1)
    assert a.store.checkpointed("orders") == START
    assert a.store.get_cursor("orders") == START + (N - 1) * STEP
    a.close()  # a kill -9: nothing more is written
    a.store.close()
    # B: a new process on A's store runs tick N+1
    caplog.set_level(logging.INFO, logger="monitor.pipeline")
    b = make(tmp_path, "a", clock, "1d")
    (tick_b,) = ticks(b, clock, 1)
    tick_c = run_c[-1]
    assert tick_c.scores is not None and tick_b.scores is not None
    assert tick_c.scores["score"].notna().all()  # warmed up: the comparison means something
    pd.testing.assert_frame_equal(tick_b.scores.reset_index(drop=True),
                                  tick_c.scores.reset_index(drop=True), check_exact=True)
    assert tick_b.anomalies == tick_c.anomalies and tick_b.anomalies  # the last spike
    assert tick_b.replayed == N - 1
    assert [r.message for r in caplog.records].count(
        f"orders: replayed {N - 1} buckets of stored points ({START.isoformat()} to "
        f"{(START + (N - 1) * STEP).isoformat()}) through the detectors restored from their "
        "checkpoints") == 1
    # A then B stored every anomaly and notification exactly once, as C did
    assert stored(b.store) == stored(c.store)
    _, notifications = stored(c.store)
    spiked = set(c.store.anomalies(metric="orders")["ts"])
    assert {t - STEP for t in SPIKES} <= spiked and notifications
    b.close()
    c.close()


def test_a_second_tick_after_the_restart_replays_nothing_and_checkpoints_when_due(
        tmp_path) -> None:
    clock = FakeClock(START)
    a = make(tmp_path, "a", clock, "3h")
    run_a = ticks(a, clock, 5)
    # first tick; then the first tick at least 3h of bucket time after it
    assert [r.checkpointed for r in run_a] == [True, False, False, True, False]
    a.close()
    b = make(tmp_path, "a", clock, "3h")
    first, second = ticks(b, clock, 2)
    assert (first.replayed, second.replayed) == (1, 0)
    assert (first.checkpointed, second.checkpointed) == (False, True)
    assert b.store.checkpointed("orders") == b.store.get_cursor("orders")
    b.close()


def test_a_failed_tick_between_checkpoints_replays_on_the_next(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick that fails drops its detectors; the next one restores the checkpoint and
    replays the committed ticks since, and scores as if nothing had failed."""
    clock_c = FakeClock(START)
    c = make(tmp_path, "c", clock_c, None)
    run_c = ticks(c, clock_c, 6)
    clock = FakeClock(START)
    a = make(tmp_path, "a", clock, "1d")
    ticks(a, clock, 4)
    shop = a.sources["shop"]
    fetch = shop.fetch

    def down(request: PollRequest) -> pd.DataFrame:
        raise RuntimeError("source down")

    monkeypatch.setattr(shop, "fetch", down)
    failed = a.tick("orders")
    assert not failed.ok
    monkeypatch.setattr(shop, "fetch", fetch)
    (again,) = ticks(a, clock, 1)
    assert again.replayed == 3
    (last,) = ticks(a, clock, 1)
    assert last.scores is not None and run_c[-1].scores is not None
    pd.testing.assert_frame_equal(last.scores.reset_index(drop=True),
                                  run_c[-1].scores.reset_index(drop=True), check_exact=True)
    a.close()
    c.close()


def test_a_kill_at_commit_between_checkpoints_neither_loses_nor_repeats_an_anomaly(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tick that finds the first spike dies at its commit (nothing of it is written); a
    new process replays the committed ticks since the checkpoint, finds the spike again,
    and stores and notifies everything once, as a run that never stopped."""
    clock_c = FakeClock(START)
    c = make(tmp_path, "c", clock_c, None)
    ticks(c, clock_c, 6)
    clock = FakeClock(START)
    a = make(tmp_path, "a", clock, "1d")
    ticks(a, clock, 4)
    die_at_commit(a.store, monkeypatch)  # a kill -9 at the tick's commit
    assert not a.tick("orders").ok  # the bucket ending at SPIKES[0]
    monkeypatch.undo()
    assert a.store.anomalies(metric="orders").empty  # nothing of it was committed
    a.close()
    b = make(tmp_path, "a", clock, "1d")
    first, _ = ticks(b, clock, 2)
    assert first.replayed == 3 and first.anomalies
    assert stored(b.store) == stored(c.store)
    b.close()
    c.close()


@pytest.mark.parametrize("every, problem", [
    ("0s", "must be greater than 0s"),
    ("90d", "must be shorter than retention (90d)"),
])
def test_checkpoint_every_is_validated(every: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(CONFIG.format(db="x.db", every=f", checkpoint_every: {every}"), env={})
    assert problem in str(err.value) and "checkpoint_every" in str(err.value)


def test_checkpoint_every_defaults_to_every_tick() -> None:
    cfg = parse_config(CONFIG.format(db="x.db", every=""), env={})
    assert cfg.store.checkpoint_every is None
    cfg = parse_config(CONFIG.format(db="x.db", every=", checkpoint_every: 1h"), env={})
    assert cfg.store.checkpoint_every == timedelta(hours=1)
