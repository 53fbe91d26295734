"""A checkpoint the detectors cannot use (an older cxmon's state format, changed detector
settings) is relearned from the stored points, not learned afresh from the next tick.

Why: learning afresh meant a week without alerts (robust_seasonal's warm-up) after an upgrade
that changed the state format, though the store held every point the detectors needed."""

from __future__ import annotations

import logging

import pytest

from monitor.clock import FakeClock
from tests.test_checkpoint_every import START, make, ticks


def test_an_unusable_checkpoint_is_relearned_from_the_stored_points(
        tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(START)
    a = make(tmp_path, "a", clock, None)
    ticks(a, clock, 3)
    names = a._detectors["orders"].checkpoint_names()
    keys = list(a.store.load_checkpoints(names[0]))
    assert keys
    with a.store.transaction() as tx:  # as an older release wrote them
        tx.save_checkpoints(names[0], {k: b"old-format" for k in keys})
    a.close()
    a.store.close()

    caplog.set_level(logging.INFO, logger="monitor.pipeline")
    b = make(tmp_path, "a", clock, None)
    (tick,) = ticks(b, clock, 1)
    messages = [r.message for r in caplog.records]
    assert any(m.startswith(f"orders: checkpoint not usable ({names[0]}: detector settings "
                            "changed, or written by an older cxmon); relearning from the "
                            "points stored since") for m in messages), messages
    assert tick.replayed > 24 * 7  # a week of hourly buckets and more: the warm-up
    # warm at once: every series scored, as before the upgrade (afresh: no scores for a week)
    assert tick.scores is not None and tick.scores["score"].notna().all()
    assert tick.checkpointed
    b.close()
    b.store.close()

    # the relearned state replaced the old rows: the next restart restores it, no relearn
    caplog.clear()
    c = make(tmp_path, "a", clock, None)
    (again,) = ticks(c, clock, 1)
    assert not any("not usable" in r.message for r in caplog.records)
    assert again.scores is not None and again.scores["score"].notna().all()
    c.close()
