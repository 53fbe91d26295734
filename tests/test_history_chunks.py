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
