"""scripts/chaos_restart.py's checks find what they look for (the real run takes minutes and
is not part of the suite; its verdict is only worth something if the checks can fail)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa

from monitor.model import Notification
from monitor.store import Store

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)


def harness() -> ModuleType:
    path = Path(__file__).parents[1] / "scripts" / "chaos_restart.py"
    spec = importlib.util.spec_from_file_location("chaos_restart", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("chaos_restart", module)
    spec.loader.exec_module(module)
    return module


def test_the_checks_pass_a_clean_store_and_flag_each_broken_promise(tmp_path: Path) -> None:
    chaos = harness()
    url = f"sqlite:///{tmp_path / 's.db'}"
    with Store.open(url) as store:
        with store.transaction() as tx:
            tx.enqueue([Notification("k1", "hook", "i1", {"n": 1}),
                        Notification("k2", "hook", "i2", {"n": 2})], T0)
        for row in store.notifications():
            store.mark_sent(row.id, T0)
    engine = sa.create_engine(url)
    rec = chaos.Received()
    rec.posts += [("k1", "a"), ("k2", "b"), ("k2", "b")]  # a re-send of the same body is fine
    problems, counts = chaos.check(engine, rec)
    assert problems == [] and counts["status_sent"] == 2
    rec.posts[:] = [("k1", "a"), ("k1", "other body"), ("k9", "c")]  # k2 never arrived
    problems, _ = chaos.check(engine, rec)
    assert sorted(problems) == ["key received with 2 different bodies: k1",
                                "marked sent but never received: k2",
                                "received but not in the store: k9"]
    with engine.begin() as conn:  # a gap in one series' points: a skipped bucket
        conn.execute(sa.text("insert into series (id, key, metric, labels, created_at) "
                             "values (1, 's', 'm', '{}', :t)"), {"t": T0})
        for k in (0, 1, 3):
            conn.execute(sa.text("insert into points (series_id, ts, value, numerator) "
                                 "values (1, :ts, 1, 1)"), {"ts": T0 + k * timedelta(minutes=1)})
    rec.posts[:] = [("k1", "a"), ("k2", "b")]
    problems, _ = chaos.check(engine, rec)
    engine.dispose()
    assert len(problems) == 1 and "a bucket skipped" in problems[0]


def test_the_checks_flag_broken_cursors_checkpoints_and_openings(tmp_path: Path) -> None:
    """The checks added for several metrics and dismissals: a point beyond its metric's
    cursor (points and cursor commit apart), a stored series without a checkpoint of one of
    its metric's detectors, an incident opened twice to a receiver, a dismissed incident
    whose receiver never got its resolution."""
    chaos = harness()
    url = f"sqlite:///{tmp_path / 's.db'}"
    with Store.open(url) as store, store.transaction() as tx:
        tx.enqueue([Notification(f"i1|opened|{T0.isoformat()}|hook", "hook", "i1", {}),
                    Notification(f"i1|opened|{T0.isoformat()}1|hook", "hook", "i1", {}),
                    Notification(f"i2|opened|{T0.isoformat()}|hook", "hook", "i2", {})], T0)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for sid in (1, 2):
            conn.execute(sa.text("insert into series (id, key, metric, labels, created_at) "
                                 "values (:i, :k, 'waits', '{}', :t)"), {"i": sid, "k": f"s{sid}",
                                                                         "t": T0})
            for k in (0, 2, 4):  # every 2 minutes: no bucket skipped
                conn.execute(sa.text("insert into points (series_id, ts, value, numerator) "
                                     "values (:s, :ts, 1, 1)"),
                             {"s": sid, "ts": T0 + k * timedelta(minutes=1)})
        conn.execute(sa.text("insert into detector_checkpoints (detector, series_id, state, "
                             "updated_at) values ('waits/fast', 1, x'00', :t)"), {"t": T0})
        conn.execute(sa.text("insert into poll_cursors (metric, cursor, updated_at) "
                             "values ('waits', :c, :t)"),
                     {"c": T0 + timedelta(minutes=4), "t": T0})
    rec = chaos.Received()
    problems, _ = chaos.check(engine, rec, {"waits": timedelta(minutes=2)}, {"i2"})
    engine.dispose()
    problems = [p for p in problems if "pending" not in p]
    assert sorted(problems) == [
        "incident i1 opened 2 times to hook",
        "incident i2 dismissed but hook never told so",
        "series 2 of waits has points but no checkpoint of waits/fast",
        "waits: a point at 2026-01-05 10:04:00+00:00, beyond the cursor "
        "2026-01-05 10:04:00+00:00"]
