"""A first tick learns a long history in chunks of bounded memory (``HISTORY_CHUNK_POINTS``)
and must end exactly where learning it in one piece ends: same points, anomalies, detector
checkpoints and cursor; and a failure part way leaves nothing half-learned."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

import monitor.pipeline as pipeline_mod
from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.pipeline import Pipeline
from monitor.store import Store
from sources.base import RetriableSourceError
from tests.test_sources_pipeline import CONFIG, STEP, T0, Shop

NOW = T0 + timedelta(days=9)


class SpikyShop(Shop):
    """Two channels of orders with a spike in the history; can fail its n-th poll once."""

    def __init__(self, fail_on: int | None = None) -> None:
        super().__init__()
        self.revised[T0 + timedelta(days=8, hours=3)] = 5_000
        self.fail_on = fail_on

    def fetch(self, request):
        if self.fail_on is not None and len(self.requests) + 1 == self.fail_on:
            self.fail_on = None
            self.requests.append(request)
            raise RetriableSourceError("source shop: HTTP 503")
        return super().fetch(request)


def first_tick(tmp_path, name: str, shop: SpikyShop, ticks: int = 1):
    cfg = parse_config(CONFIG.format(db=tmp_path / f"{name}.db", extra="history: 9d"), env={})
    store = Store.open(cfg.store.url)
    p = Pipeline(cfg, store, clock=FakeClock(NOW), sources={"shop": shop},
                 notifiers={"console": object()})  # type: ignore[dict-item] - never delivered
    results = [p.tick("orders") for _ in range(ticks)]
    state = {
        "points": store.load_points(metric="orders"),
        "anomalies": sorted(store.anomalies()["id"]) if not store.anomalies().empty else [],
        "checkpoints": {n: store.load_checkpoints(n)
                        for n in ("orders/default", "orders/default#rules")},
        "cursor": store.get_cursor("orders"),
    }
    store.close()
    return results, state


def same(a: dict, b: dict) -> None:
    pd.testing.assert_frame_equal(a["points"], b["points"])
    assert a["anomalies"] == b["anomalies"] and a["anomalies"]  # the spike is found in both
    assert a["checkpoints"] == b["checkpoints"] and all(a["checkpoints"].values())
    assert a["cursor"] == b["cursor"] == datetime.fromisoformat(NOW.isoformat())


def test_a_chunked_history_ends_where_one_piece_ends(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pipeline_mod, "HISTORY_FIRST_CHUNK", 10**6)
    [whole], one_piece = first_tick(tmp_path, "whole", shop := SpikyShop())
    assert len(shop.requests) == 1
    monkeypatch.setattr(pipeline_mod, "HISTORY_FIRST_CHUNK", 7)
    monkeypatch.setattr(pipeline_mod, "HISTORY_CHUNK_POINTS", 50)  # 3 series: 16 buckets
    [chunked], in_chunks = first_tick(tmp_path, "chunked", shop := SpikyShop())
    assert [r.until - r.since for r in shop.requests[:3]] == [7 * STEP, 16 * STEP, 16 * STEP]
    assert shop.requests[-1].until == NOW and len(shop.requests) == 1 + -(-(9 * 288 - 7) // 16)
    same(one_piece, in_chunks)
    assert (chunked.rows_in, chunked.rows_stored) == (whole.rows_in, whole.rows_stored)
    assert sorted(a.id for a in chunked.anomalies) == sorted(a.id for a in whole.anomalies)
    assert chunked.since == whole.since and chunked.incidents == whole.incidents == []


@pytest.mark.parametrize("fail_on", [3, 20])
def test_a_history_that_fails_part_way_is_learned_again_from_scratch(
        tmp_path, monkeypatch, fail_on: int) -> None:
    monkeypatch.setattr(pipeline_mod, "HISTORY_FIRST_CHUNK", 10**6)
    _, one_piece = first_tick(tmp_path, "whole", SpikyShop())
    monkeypatch.setattr(pipeline_mod, "HISTORY_FIRST_CHUNK", 7)
    monkeypatch.setattr(pipeline_mod, "HISTORY_CHUNK_POINTS", 50)
    (failed, again), retried = first_tick(tmp_path, "retried", SpikyShop(fail_on), ticks=2)
    assert failed.error and not again.error
    same(one_piece, retried)


# -- catch-up after downtime ------------------------------------------------------------------

DOWN_AT = T0 + timedelta(days=7)  # the spike (day 8, 03:00) comes while cxmon is down


def catch_up(tmp_path, name: str, shop: SpikyShop, ticks: int = 1):
    """A first tick at ``DOWN_AT``, then ``ticks`` ticks at ``NOW`` (two days later)."""
    cfg = parse_config(CONFIG.format(db=tmp_path / f"{name}.db", extra="history: 7d"), env={})
    store = Store.open(cfg.store.url)
    clock = FakeClock(DOWN_AT)
    p = Pipeline(cfg, store, clock=clock, sources={"shop": shop},
                 notifiers={"console": object()})  # type: ignore[dict-item] - never delivered
    assert p.tick("orders").ok
    clock.advance(NOW - DOWN_AT)
    results = [p.tick("orders") for _ in range(ticks)]
    state = {
        "points": store.load_points(metric="orders"),
        "anomalies": sorted(store.anomalies()["id"]),
        "frame": store.anomalies(),
        "checkpoints": {n: store.load_checkpoints(n)
                        for n in ("orders/default", "orders/default#rules")},
        "cursor": store.get_cursor("orders"),
        "incidents": [(i["key"], i["opened_at"], i["resolved_at"]) for i in store.incidents()],
    }
    store.close()
    return results, state


def whole_catch_up(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline_mod, "HISTORY_FIRST_CHUNK", 10**6)
    monkeypatch.setattr(pipeline_mod, "MAX_CATCHUP_BUCKETS", 10**6)
    (whole,), state = catch_up(tmp_path, "whole", shop := SpikyShop())
    assert shop.requests[-1].since == DOWN_AT and shop.requests[-1].until == NOW
    assert state["incidents"]  # the spike opened an incident (and it resolved)
    return whole, state


def small_chunks(monkeypatch) -> None:
    monkeypatch.setattr(pipeline_mod, "HISTORY_FIRST_CHUNK", 7)
    monkeypatch.setattr(pipeline_mod, "HISTORY_CHUNK_POINTS", 50)  # 3 series: 16 buckets
    monkeypatch.setattr(pipeline_mod, "MAX_CATCHUP_BUCKETS", 12)


def test_a_catch_up_in_chunks_ends_where_one_piece_ends(tmp_path, monkeypatch) -> None:
    whole, one_piece = whole_catch_up(tmp_path, monkeypatch)
    small_chunks(monkeypatch)
    (chunked,), in_chunks = catch_up(tmp_path, "chunked", shop := SpikyShop())
    catch = [r for r in shop.requests if r.since >= DOWN_AT]
    # the series count of the first tick sizes the chunks (16 buckets), capped at 12 a poll
    assert [r.until - r.since for r in catch[:2]] == [12 * STEP, 12 * STEP]
    assert catch[-1].until == NOW and len(catch) == -(-(2 * 288) // 12)
    assert in_chunks["cursor"] == one_piece["cursor"] == datetime.fromisoformat(NOW.isoformat())
    pd.testing.assert_frame_equal(in_chunks["points"], one_piece["points"])
    assert in_chunks["anomalies"] == one_piece["anomalies"]
    assert in_chunks["checkpoints"] == one_piece["checkpoints"]
    # the same incident, opened at the spike; resolved when a chunk first saw it quiet, not
    # at the end of the whole gap (one piece cannot tell when in the gap it went quiet)
    [(key, opened, resolved)] = in_chunks["incidents"]
    [(key1, opened1, resolved1)] = one_piece["incidents"]
    assert (key, opened) == (key1, opened1) and resolved1 == NOW
    assert opened < resolved <= opened + 12 * STEP + timedelta(hours=1)
    assert (chunked.since, chunked.until) == (whole.since, whole.until)
    assert chunked.rows_stored == whole.rows_stored and chunked.anomalies
    assert sorted(a.id for a in chunked.anomalies) == sorted(a.id for a in whole.anomalies)
    assert [c.incident.key for c in chunked.incidents] == [c.incident.key for c in whole.incidents]


def test_a_catch_up_that_fails_part_way_keeps_its_committed_chunks(tmp_path, monkeypatch
                                                                   ) -> None:
    _, one_piece = whole_catch_up(tmp_path, monkeypatch)
    small_chunks(monkeypatch)
    requests_of_first_tick = 1 + -(-(7 * 288 - 7) // 16)
    shop = SpikyShop(fail_on=requests_of_first_tick + 30)  # the 30th catch-up chunk fails
    (failed, resumed), state = catch_up(tmp_path, "failed", shop, ticks=2)
    assert failed.error and failed.until == NOW  # the tick meant to reach NOW ...
    assert not resumed.error and resumed.since == DOWN_AT + 29 * 12 * STEP  # ... kept 29 chunks
    assert state["cursor"] == one_piece["cursor"]
    pd.testing.assert_frame_equal(state["points"], one_piece["points"])
    frame = state["frame"]
    assert sorted(frame[frame["kind"] != "no_data"]["id"]) == one_piece["anomalies"]
    # the failed poll left the metric 228 intervals behind: told as no data, as any outage
    assert frame[frame["kind"] == "no_data"]["value"].tolist() == [228.0]
    assert state["checkpoints"] == one_piece["checkpoints"]
    assert [i[:2] for i in state["incidents"]][:1] == [i[:2] for i in one_piece["incidents"]]
