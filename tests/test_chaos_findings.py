"""Findings of the real-process chaos review (scripts/chaos_restart.py, docs/operations.md
"Chaos test"), each kept as a regression test.

A backoff's retry time was compared exactly with the next tick's start: a scheduled tick
that started a few ms earlier in its second than the failed one was skipped, so the backoff
was one interval longer at random (seen in a real run: 4 min became 5)."""

from __future__ import annotations

import logging
from datetime import timedelta

from tests.test_sources_pipeline import T0, run, setup

MS = timedelta(milliseconds=1)


def test_a_backoff_of_two_intervals_polls_again_at_the_second_scheduled_tick(
        tmp_path, caplog) -> None:
    p, store, clock, shop = setup(tmp_path)
    run(p, clock, T0 + timedelta(minutes=30))
    shop.down = True
    clock.set(T0 + timedelta(minutes=35) + 30 * MS)  # real ticks start a few ms late
    assert p.tick("orders").error  # first failure: no backoff yet
    clock.set(T0 + timedelta(minutes=40) + 20 * MS)
    with caplog.at_level(logging.WARNING, logger="monitor.pipeline"):
        assert p.tick("orders").error  # second: back off two intervals (10 min)
    assert "(backing off: retried from 2026-01-05 00:49:30 UTC)" in caplog.text
    clock.set(T0 + timedelta(minutes=45) + 10 * MS)
    assert p.tick("orders").skipped.startswith("backing off")
    shop.down = False
    clock.set(T0 + timedelta(minutes=50) + 10 * MS)  # the tick two intervals later
    result = p.tick("orders")
    p.close()
    store.close()
    assert not result.skipped and result.ok


def test_a_fatal_source_error_says_when_the_tick_is_retried(tmp_path, caplog) -> None:
    """A rejected password is retried with the same backoff as an outage (it may be fixed
    on the database's side); the log said so only for retriable errors, so between two
    ERROR lines minutes apart nothing told an SRE whether the metric was given up."""
    from sources.base import FatalSourceError

    p, store, clock, shop = setup(tmp_path)
    run(p, clock, T0 + timedelta(minutes=30))

    def rejected(request):
        raise FatalSourceError("source shop: the database db:5432/kpi rejected the credentials")

    shop.fetch = rejected  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="monitor.pipeline"):
        clock.set(T0 + timedelta(minutes=35))
        assert p.tick("orders").error
        clock.set(T0 + timedelta(minutes=40))
        assert p.tick("orders").error
    p.close()
    store.close()
    first, second = (r.getMessage() for r in caplog.records
                     if r.getMessage().startswith("tick of orders failed"))
    assert first.endswith("(retried on the next tick)")
    assert second.endswith("(backing off: retried from 2026-01-05 00:49:30 UTC)")
    assert all(r.levelno == logging.ERROR for r in caplog.records
               if r.getMessage().startswith("tick of orders failed"))
