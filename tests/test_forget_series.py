"""A series that stops arriving is forgotten after ``forget_after`` (bucket time): its
detector and post-rule state leave memory and its checkpoint rows leave the store, after the
"no data" alert and without any more of them; if it returns it is learned afresh (logged
once), and a restart does not bring it back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from dashboards.exporter import Exporter
from monitor.clock import FakeClock
from monitor.config import ConfigError, parse_config
from monitor.forgetting import DEFAULT_FORGET_AFTER, ForgetSchedule, forget_after
from monitor.pipeline import Pipeline
from monitor.store import Store, detector_checkpoints_t, series_t
from sources.base import PollRequest, Source, SourceConfig
from tests.dying_commit import die_at_commit

T0 = datetime(2026, 3, 2, tzinfo=UTC)
STEP = timedelta(hours=1)
GONE = T0 + timedelta(days=2)  # campaign b sends nothing from here ...
BACK = GONE + timedelta(days=2)  # ... until here
A = 'orders{campaign="a",journey="shop"}'
B = 'orders{campaign="b",journey="shop"}'

CONFIG = """
store: {{url: "sqlite:///{db}"{every}}}
sources:
  shop: {{type: demo}}
metrics:
  - name: orders
    source: shop
    interval: 1h
    query: orders
    timestamp: ts
    split_by: [campaign]
    value: {{sum: n}}
    labels: {{journey: shop}}
    no_data_after: 3h
    {forget}
alerting:
  receivers: [{{name: console, console: {{format: json}}}}]
"""


class Shop(Source):
    """Orders per hour of two campaigns; ``b`` is silent in ``[GONE, BACK)``."""

    def __init__(self) -> None:
        super().__init__("shop", SourceConfig(type="demo"))

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        rows = []
        for ts in pd.date_range(request.since, request.until, freq=STEP, inclusive="left"):
            rng = np.random.default_rng(int(ts.timestamp()))
            for campaign, level in (("a", 200.0), ("b", 80.0)):
                if campaign == "b" and GONE <= ts < BACK:
                    continue
                rows.append({"ts": ts, "campaign": campaign, "n": int(rng.poisson(level))})
        return pd.DataFrame(rows, columns=["ts", "campaign", "n"])


def make(tmp_path, clock: FakeClock, forget: str = "forget_after: 12h",
         checkpoint_every: str | None = None) -> Pipeline:
    every = f", checkpoint_every: {checkpoint_every}" if checkpoint_every else ""
    cfg = parse_config(CONFIG.format(db=tmp_path / "s.db", forget=forget, every=every), env={})
    store = Store.open(cfg.store.url)
    return Pipeline(cfg, store, clock=clock, sources={"shop": Shop()},
                    notifiers={"console": object()})  # type: ignore[dict-item] - not delivered


def run(p: Pipeline, clock: FakeClock, until: datetime) -> int:
    """Tick every hour up to ``until``; returns the series forgotten meanwhile."""
    forgotten = 0
    while clock.now() < until:
        clock.advance(STEP)
        result = p.tick("orders")
        assert result.ok, result.error
        forgotten += result.forgotten
    return forgotten


def checkpoint_rows(store: Store, key: str) -> list[str]:
    q = (sa.select(detector_checkpoints_t.c.detector)
         .join_from(detector_checkpoints_t, series_t).where(series_t.c.key == key))
    with store.engine.connect() as conn:
        return sorted(conn.execute(q).scalars())


def held(p: Pipeline, key: str) -> bool:
    """Whether any in-memory structure of the metric still holds ``key``."""
    dets = p._detectors["orders"]
    return (any(key in rs for rs in dets.rule_states.values())
            or any(det.get_state([key]) for det in dets.detectors.values())
            or key in dets._labels)


def no_data_of_b(store: Store) -> pd.DataFrame:
    a = store.anomalies()
    return a[(a["series"] == B) & (a["kind"] == "no_data")]


def test_a_series_gone_is_alerted_then_forgotten_and_learned_afresh_when_back(
        tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(T0 + STEP)
    p = make(tmp_path, clock)
    run(p, clock, GONE + 5 * STEP)
    assert len(no_data_of_b(p.store)) == 1  # the gap is alerted first ...
    assert checkpoint_rows(p.store, B) == ["orders/default", "orders/default#rules"]
    assert held(p, B)
    caplog.set_level(logging.INFO, logger="monitor.pipeline")
    forgotten = run(p, clock, GONE + 14 * STEP)  # ... forgotten 12h after its last point
    assert forgotten == 1
    assert checkpoint_rows(p.store, B) == []
    assert checkpoint_rows(p.store, A) == ["orders/default", "orders/default#rules"]
    assert not held(p, B) and held(p, A)
    assert B not in p.store._series_ids  # nor in the store's cache of series ids
    said = [r.getMessage() for r in caplog.records if "forgot" in r.getMessage()]
    assert said == [f"orders: forgot 1 series without data for 12h (as of "
                    f"{(GONE + 12 * STEP).isoformat()}; 2 checkpoint rows deleted): {B}"]
    assert run(p, clock, BACK) == 0  # a day more: no further no-data alert, nothing to forget
    assert len(no_data_of_b(p.store)) == 1
    caplog.clear()
    run(p, clock, BACK + 4 * STEP)  # b is back: learned afresh, said once
    back = [r for r in caplog.records if "came back" in r.getMessage()]
    assert [r.getMessage() for r in back] == [
        f"orders: 1 series came back after they were forgotten (no data for forget_after): "
        f"learning them afresh: {B}"]
    rules = p._detectors["orders"].rule_states["default"]
    first = rules.get_state([B])[B]
    assert int.from_bytes(first[4:12], "little", signed=True) == pd.Timestamp(BACK).value
    assert checkpoint_rows(p.store, B) == ["orders/default", "orders/default#rules"]
    p.close()


def test_a_restart_does_not_bring_a_forgotten_series_back(tmp_path) -> None:
    clock = FakeClock(T0 + STEP)
    p = make(tmp_path, clock)
    run(p, clock, GONE + 14 * STEP)
    assert not held(p, B)
    p.close()
    p.store.close()
    again = make(tmp_path, clock)  # a new process on the same store
    run(again, clock, GONE + 16 * STEP)
    assert not held(again, B) and held(again, A)
    assert checkpoint_rows(again.store, B) == []
    assert len(no_data_of_b(again.store)) == 1
    again.close()


def test_with_sparse_checkpoints_a_restart_does_not_replay_a_forgotten_series_back(
        tmp_path) -> None:
    """``store.checkpoint_every`` longer than the run: the tick that forgets b writes the
    checkpoints all the same, so a restart replays from there, not from b's older points."""
    clock = FakeClock(T0 + STEP)
    p = make(tmp_path, clock, checkpoint_every="3d")
    run(p, clock, GONE + 14 * STEP)
    assert not held(p, B)
    mark = p.store.checkpointed("orders")
    assert mark is not None and GONE < mark < GONE + 14 * STEP  # the forgetting tick's
    p.close()
    p.store.close()
    again = make(tmp_path, clock, checkpoint_every="3d")
    run(again, clock, GONE + 16 * STEP)
    assert not held(again, B) and held(again, A)
    assert checkpoint_rows(again.store, B) == []
    assert len(no_data_of_b(again.store)) == 1
    again.close()


def test_a_tick_that_dies_while_forgetting_leaves_nothing_half_done(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(T0 + STEP)
    p = make(tmp_path, clock)
    run(p, clock, GONE + 11 * STEP)  # the next tick forgets b
    assert held(p, B)
    die_at_commit(p.store, monkeypatch)  # a kill -9 at the tick's commit
    clock.advance(STEP)
    assert not p.tick("orders").ok
    monkeypatch.undo()
    assert checkpoint_rows(p.store, B) == ["orders/default", "orders/default#rules"]
    clock.advance(STEP)
    result = p.tick("orders")  # reloaded from the store: b is forgotten now, for good
    assert result.ok and result.forgotten == 1
    assert checkpoint_rows(p.store, B) == [] and not held(p, B)
    p.close()


def test_forget_after_0s_keeps_every_series(tmp_path) -> None:
    clock = FakeClock(T0 + STEP)
    p = make(tmp_path, clock, forget="forget_after: 0s")
    assert run(p, clock, GONE + 20 * STEP) == 0
    assert held(p, B)
    assert checkpoint_rows(p.store, B) == ["orders/default", "orders/default#rules"]
    p.close()


def test_the_forgotten_series_are_counted_on_metrics(tmp_path) -> None:
    clock = FakeClock(T0 + STEP)
    p = make(tmp_path, clock)
    exp = Exporter.from_config(p.config, registry=CollectorRegistry(), clock=clock)
    assert exp.registry.get_sample_value("cxmon_forgotten_series_total",
                                         {"cx_metric": "orders"}) == 0
    while clock.now() < GONE + 14 * STEP:
        clock.advance(STEP)
        exp.observe(p.tick("orders"))
    assert exp.registry.get_sample_value("cxmon_forgotten_series_total",
                                         {"cx_metric": "orders"}) == 1
    p.close()


def test_forgetting_is_looked_for_at_most_once_an_hour_of_bucket_time() -> None:
    s = ForgetSchedule()
    t = T0
    assert s.due("m", t)
    s.done("m", t)
    assert not s.due("m", t + timedelta(minutes=55))
    assert s.due("m", t + STEP)
    assert s.due("m", t - STEP)  # a backfill moved the cursor back


def _metric(extra: str):
    text = CONFIG.format(db="x.db", forget=extra, every="")
    return parse_config(text, env={}).metric("orders")


def test_forget_after_defaults_to_30_days_or_twice_no_data_after() -> None:
    assert forget_after(_metric("")) == DEFAULT_FORGET_AFTER == timedelta(days=30)
    far = _metric("").model_copy(update={"no_data_after": timedelta(days=20)})
    assert forget_after(far) == timedelta(days=40)
    assert forget_after(_metric("forget_after: 2d")) == timedelta(days=2)
    assert forget_after(_metric("forget_after: 0s")) is None


@pytest.mark.parametrize("value", ["3h", "2h", "-1h"])
def test_forget_after_must_come_after_no_data(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        _metric(f"forget_after: {value}")
    assert "metrics[0].forget_after" in str(err.value)


def test_the_store_deletes_only_the_checkpoints_of_the_series_forgotten(store: Store) -> None:
    from tests.test_store import make_frame, make_series

    series = make_series(3)
    a, b, c = (s.key for s in series)
    with store.transaction() as tx:
        tx.ensure_series(series)
        tx.upsert_points(make_frame(series[:2], 2))  # c has no points
        for name in ("m/fast", "m/fast#rules", "other/fast"):
            tx.save_checkpoints(name, {a: b"1", b: b"2", c: b"3"})
    with store.transaction() as tx:
        assert tx.delete_checkpoints(["m/fast", "m/fast#rules"], [b, "unknown"]) == 2
    assert store.load_checkpoints("m/fast") == {a: b"1", c: b"3"}
    assert store.load_checkpoints("m/fast#rules") == {a: b"1", c: b"3"}
    assert set(store.load_checkpoints("other/fast")) == {a, b, c}  # other names untouched
    later = datetime(2030, 1, 1, tzinfo=UTC)
    assert store.series_with_points_before([a, c, "unknown"], later) == {a}
    assert store.series_with_points_before([a], datetime(2000, 1, 1, tzinfo=UTC)) == set()


class Silent(Shop):
    """Both campaigns stop at ``GONE``: the whole metric goes silent."""

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        frame = super().fetch(request)
        return frame[frame["ts"] < GONE]


def test_a_whole_metric_silent_for_forget_after_forgets_every_series(tmp_path) -> None:
    clock = FakeClock(T0 + STEP)
    p = make(tmp_path, clock)
    p.sources["shop"] = Silent()
    assert run(p, clock, GONE + 14 * STEP) == 2  # a and b (split_by: no total)
    assert not held(p, A) and not held(p, B)
    assert checkpoint_rows(p.store, A) == [] and checkpoint_rows(p.store, B) == []
    a = p.store.anomalies()
    no_data = a[a["kind"] == "no_data"]
    assert len(no_data)  # the metric's own staleness anomaly speaks for the silence ...
    assert not no_data["series"].isin([A, B]).any()  # ... not one per forgotten series
    p.close()
