"""The real-time schedule: poll jobs fire on bucket boundaries plus the metric's delay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.scheduler import aligned_trigger

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def _next(trigger, previous: datetime | None, now: datetime) -> datetime:
    return trigger.get_next_fire_time(previous, now)


def test_poll_ticks_stay_on_bucket_boundaries_after_the_start_up_catch_up():
    """The catch-up run at start-up (10:03:37) must not shift the schedule: APScheduler's
    IntervalTrigger added the interval to the previous run, so every later tick came at
    :03:37 + 5m instead of bucket end + delay (10:07), up to an interval late."""
    start = T0 + timedelta(minutes=7)  # floor(10:03:37) + 5m interval + 2m delay
    trigger = aligned_trigger(timedelta(minutes=5), start, jitter=timedelta(0))
    catch_up = T0 + timedelta(minutes=3, seconds=37)
    assert _next(trigger, catch_up, catch_up) == start
    assert _next(trigger, start, start) == start + timedelta(minutes=5)
    late = start + timedelta(seconds=20)  # a tick that ran late does not move the next one
    assert _next(trigger, start, late) == start + timedelta(minutes=5)


def test_jitter_does_not_accumulate_from_tick_to_tick():
    """Jitter is added to each boundary, not to the previous (already jittered) fire time,
    so the ticks do not drift away from the bucket boundaries over a day."""
    interval = timedelta(minutes=1)
    trigger = aligned_trigger(interval, T0, jitter=timedelta(seconds=5))
    fire = T0
    for k in range(1, 1441):
        fire = _next(trigger, fire, fire)
        boundary = T0 + k * interval
        assert boundary <= fire <= boundary + timedelta(seconds=5)


def test_a_stop_ends_with_a_log_line_saying_it_stopped_cleanly(tmp_path, caplog):
    """After SIGTERM the last line was "stopping: waiting for running ticks to finish": the
    log alone did not show that the process got to the end."""
    import logging

    from monitor.scheduler import Scheduler
    from tests.test_sources_pipeline import setup

    caplog.set_level(logging.INFO, logger="monitor.scheduler")
    p, store, _clock, _shop = setup(tmp_path)
    sched = Scheduler(p)
    sched.stop()  # as the signal handler does
    sched.run_until_stopped(install_signal_handlers=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "monitor.scheduler"]
    assert lines[-1] == "stopped: ticks finished and the outbox delivered once more"
    p.close()
    store.close()


def test_retention_also_forgets_feedback_requests_past_the_replay_window(tmp_path):
    """The feedback endpoint purges seen requests only as new ones arrive; the retention job
    empties the table when no more clicks come."""
    from monitor.scheduler import run_retention
    from tests.test_sources_pipeline import setup

    p, store, clock, _shop = setup(tmp_path)
    now = clock.now()
    store.remember_feedback_request("v0=old", now - timedelta(minutes=11))
    store.remember_feedback_request("v0=new", now - timedelta(minutes=6))
    run_retention(p)
    assert store.remember_feedback_request("v0=old", now) is True  # forgotten
    assert store.remember_feedback_request("v0=new", now) is False  # within twice the window
    p.close()
    store.close()


def test_the_periodic_delivery_does_not_wait_behind_a_running_commit(tmp_path):
    """The 5 s delivery job blocked on the tick lock, so during a long tick (a first tick's
    history, a catch-up) APScheduler warned every 5 s that the delivery job was skipped
    ("maximum number of running instances reached"), as if delivery were stuck. Then it
    skipped while a tick ran, so nothing was sent until the tick ended. It now sends what is
    in the outbox at once and, during a tick's commit step only, leaves the group flush to
    that commit."""
    import threading

    from monitor.scheduler import Scheduler
    from tests.test_sources_pipeline import setup

    p, store, _clock, _shop = setup(tmp_path)
    reports = []
    sched = Scheduler(p, on_deliver=reports.append)
    flush_due = p.flush_due
    flushes = []
    p.flush_due = lambda **kw: flushes.append(flush_due(**kw))  # type: ignore[method-assign]
    with p._commit_lock:  # a tick is committing
        done = threading.Event()
        job = threading.Thread(target=lambda: (sched._deliver_job(), done.set()))
        job.start()
        job.join(timeout=30)
        assert done.is_set() and len(reports) == 1  # returned at once, after a send pass
        assert flushes == [None]  # the groups are the commit's
    sched._deliver_job()  # no commit running: flushes and sends
    assert len(reports) == 2 and flushes[-1] is not None
    p.close()
    store.close()


def test_a_start_within_delay_of_a_bucket_end_polls_that_bucket_when_it_is_due():
    """Started at 02:57:02 with a 1m interval and 30s delay, the first poll was 02:58:30:
    the start-up catch-up found bucket 02:56 not due yet (until 02:57:30), so it waited a
    whole interval (an hour late for an hourly metric started at 10:05 with delay 10m)."""
    from monitor.scheduler import first_poll

    m, h = timedelta(minutes=1), timedelta(hours=1)
    assert first_poll(T0 + timedelta(seconds=2), m, timedelta(seconds=30)) == \
        T0 + timedelta(seconds=30)
    assert first_poll(T0 + timedelta(minutes=5), h, timedelta(minutes=10)) == \
        T0 + timedelta(minutes=10)
    # past the delay: the next bucket, as before (the catch-up at start polled this one)
    assert first_poll(T0 + timedelta(minutes=3, seconds=37), 5 * m, 2 * m) == T0 + 7 * m
    assert first_poll(T0 + 2 * m, 5 * m, 2 * m) == T0 + 7 * m  # exactly due: polled at start
    # a delay longer than the interval
    assert first_poll(T0 + 3 * m, 5 * m, 7 * m) == T0 + 7 * m


def test_the_retention_job_prunes_every_growing_table_not_only_points(tmp_path, caplog):
    """Only raw points were ever deleted: tick records, anomalies and notifications grew
    for ever on a long-running monitor."""
    import logging

    from monitor.scheduler import run_retention
    from tests.test_sources_pipeline import setup

    p, store, clock, _shop = setup(tmp_path)
    p.tick("orders")
    assert store.ticks()
    clock.set(clock.now() + p.config.store.retention + timedelta(days=1))
    with caplog.at_level(logging.INFO, logger="monitor.scheduler"):
        deleted = run_retention(p)
    assert deleted["ticks"] >= 1 and set(deleted) >= {"points", "anomalies", "notifications"}
    assert not store.ticks()
    assert "retention: deleted" in caplog.text and "ticks older than" in caplog.text
    p.close()
    store.close()
