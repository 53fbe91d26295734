"""The configurable retry policy (``alerting.delivery``, ``receivers[].delivery``): validated
by path, applied per receiver by the outbox at each failure, on an injected clock."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from alerts.notifiers.base import Notifier, NotifyError
from alerts.notifiers.factory import receiver_notifier
from alerts.outbox import DeliveryPolicy, OutboxWorker
from monitor.clock import FakeClock
from monitor.config import DeliveryConfig, MonitorConfig, parse_config
from monitor.errors import ConfigError
from monitor.model import Notification
from monitor.store import Store

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
HEAD = """
sources: {s: {type: sql, url: "sqlite://"}}
metrics: [{name: m, source: s, value: v}]
"""
TWO_RECEIVERS = HEAD + """
alerting:
  delivery: {max_attempts: 3, backoff: 10s, max_backoff: 1m}
  receivers:
    - {name: slack}
    - {name: pagerduty, delivery: {max_attempts: 6}}
"""


class Down(Notifier):
    """A receiver that fails every send (retryable), counting the attempts."""

    def __init__(self) -> None:
        self.calls = 0

    def send(self, payload: Mapping[str, Any]) -> None:
        self.calls += 1
        raise NotifyError("503 service unavailable", retryable=True)


def notifiers_for(config: MonitorConfig) -> dict[str, Down]:
    """A failing notifier per receiver, carrying its config as receiver_notifier's do."""
    out = {}
    for r in config.alerting.receivers:
        out[r.name] = Down()
        out[r.name].delivery = r.effective_delivery
    return out


def enqueue(store: Store, *receivers: str, at: datetime = T0) -> None:
    with store.transaction() as tx:
        tx.enqueue([Notification(f"i-{r}", r, f"i-{r}", {"r": r}) for r in receivers], at)


def run_until_settled(store: Store, worker: OutboxWorker, clock: FakeClock
                      ) -> dict[str, list[timedelta]]:
    """Deliver, then jump the clock to the next due retry, until nothing is pending; the
    waits each receiver was given between its attempts. Never sleeps."""
    waits: dict[str, list[timedelta]] = {}
    for _ in range(1000):
        worker.deliver_due()
        pending = store.notifications("pending")
        if not pending:
            return waits
        for row in pending:
            if row.next_attempt_at > clock.now():
                waits.setdefault(row.receiver, []).append(row.next_attempt_at - clock.now())
        clock.set(min(r.next_attempt_at for r in pending))
    raise AssertionError("never settled")


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    return [(p.path, p.message) for p in info.value.problems]


# -- config ---------------------------------------------------------------------------------


def test_defaults_match_the_outbox_and_the_policy_it_had() -> None:
    d = parse_config(HEAD, env={}).alerting.delivery
    assert d == DeliveryConfig()
    assert (d.max_attempts, d.backoff, d.max_backoff) == (10, timedelta(seconds=5),
                                                          timedelta(minutes=15))
    p = DeliveryPolicy()
    assert (p.max_attempts, p.base_delay, p.max_delay) == (d.max_attempts, d.backoff,
                                                           d.max_backoff)


def test_receiver_override_falls_back_to_the_global_values() -> None:
    c = parse_config(TWO_RECEIVERS, env={})
    slack, pager = (r.effective_delivery for r in c.alerting.receivers)
    assert slack == DeliveryConfig(max_attempts=3, backoff=timedelta(seconds=10),
                                   max_backoff=timedelta(minutes=1))
    assert pager == DeliveryConfig(max_attempts=6, backoff=timedelta(seconds=10),
                                   max_backoff=timedelta(minutes=1))
    assert c.alerting.receivers[0].delivery is None  # what the user wrote is kept apart


def test_the_factory_puts_the_receivers_policy_on_its_notifier() -> None:
    c = parse_config(HEAD + """
alerting:
  receivers: [{name: term, console: {format: json}, delivery: {max_attempts: 2}}]
""", env={})
    n = receiver_notifier(c.alerting.receivers[0])
    assert n is not None and n.delivery is not None and n.delivery.max_attempts == 2
    assert n.delivery.backoff == timedelta(seconds=5)


def test_bad_values_are_reported_by_path() -> None:
    assert problems(HEAD + """
alerting:
  delivery: {max_attempts: 0, backoff: 0s, max_backoff: -1m}
""") == [
        ("alerting.delivery.max_attempts", "Input should be greater than or equal to 1"),
        ("alerting.delivery.backoff", "must be greater than 0s"),
        ("alerting.delivery.max_backoff",
         "invalid duration '-1m': expected e.g. 30s, 5m, 1h30m, 1d, 1w"),
    ]
    assert problems(HEAD + """
alerting:
  delivery: {max_attempts: yes, backoff: 1m, max_backoff: 30s}
""") == [
        ("alerting.delivery.max_attempts", "Input should be a valid integer"),
        ("alerting.delivery.max_backoff", "max_backoff 30s is shorter than backoff 1m"),
    ]


def test_receiver_overrides_are_checked_against_the_global_values() -> None:
    assert problems(HEAD + """
alerting:
  delivery: {max_backoff: 10m}
  receivers:
    - {name: a, delivery: {backoff: 30m}}
    - {name: b, delivery: {max_backoff: 1s}}
    - {name: c, delivery: {max_attempts: -1, backoff: 0s}}
    - {name: d, delivery: {backoff: 2m, max_backoff: 1m}}
    - {name: e, delivery: {give_up_after: 6h}}
""") == [
        ("alerting.receivers[0].delivery.backoff",
         "max_backoff 10m is shorter than backoff 30m (alerting.delivery.max_backoff)"),
        ("alerting.receivers[1].delivery.max_backoff",
         "max_backoff 1s is shorter than backoff 5s (alerting.delivery.backoff)"),
        ("alerting.receivers[2].delivery.max_attempts",
         "Input should be greater than or equal to 1"),
        ("alerting.receivers[2].delivery.backoff", "must be greater than 0s"),
        ("alerting.receivers[3].delivery.max_backoff",
         "max_backoff 1m is shorter than backoff 2m"),
        ("alerting.receivers[4].delivery.give_up_after",
         "unknown key 'give_up_after' (keys here: max_attempts, backoff, max_backoff)"),
    ]


# -- the outbox, on a fake clock -------------------------------------------------------------


def test_a_receiver_override_gets_more_attempts(store: Store) -> None:
    c = parse_config(TWO_RECEIVERS, env={})
    notifiers = notifiers_for(c)
    clock = FakeClock(T0)
    worker = OutboxWorker(store, notifiers, clock)
    enqueue(store, "slack", "pagerduty")
    waits = run_until_settled(store, worker, clock)
    assert notifiers["slack"].calls == 3 and notifiers["pagerduty"].calls == 6
    dead = {r.receiver: r.attempts for r in store.notifications("dead")}
    assert dead == {"slack": 3, "pagerduty": 6}
    # the schedule follows the config: 10 s doubling, capped at max_backoff 1m
    s = timedelta(seconds=1)
    assert waits["slack"] == [10 * s, 20 * s]
    assert waits["pagerduty"] == [10 * s, 20 * s, 40 * s, 60 * s, 60 * s]


def test_defaults_unchanged_when_not_configured(store: Store) -> None:
    c = parse_config(HEAD + "alerting: {receivers: [{name: hook}]}\n", env={})
    notifiers = notifiers_for(c)
    clock = FakeClock(T0)
    enqueue(store, "hook")
    waits = run_until_settled(store, OutboxWorker(store, notifiers, clock), clock)
    assert notifiers["hook"].calls == 10
    assert [int(w.total_seconds()) for w in waits["hook"]] == [
        5, 10, 20, 40, 80, 160, 320, 640, 900]
    assert clock.now() - T0 == sum(DeliveryPolicy().schedule(), timedelta())  # 36m15s
    assert store.notifications("dead")[0].attempts == 10


def test_queued_rows_follow_the_config_after_a_restart(store: Store) -> None:
    """The policy is not stored with a row: a restart with more patience applies to it."""
    clock = FakeClock(T0)
    before = notifiers_for(parse_config(TWO_RECEIVERS, env={}))
    enqueue(store, "slack")
    OutboxWorker(store, before, clock).deliver_due()
    OutboxWorker(store, before, clock).deliver_due()  # not due yet
    assert store.notifications("pending")[0].attempts == 1
    after = notifiers_for(parse_config(
        TWO_RECEIVERS.replace("max_attempts: 3", "max_attempts: 5"), env={}))
    run_until_settled(store, OutboxWorker(store, after, clock), clock)
    assert before["slack"].calls + after["slack"].calls == 5
    assert store.notifications("dead")[0].attempts == 5


def test_a_requeued_dead_letter_gets_the_receivers_full_budget(store: Store) -> None:
    """``cxmon alerts retry`` resets attempts; the receiver's max_attempts applies again."""
    c = parse_config(TWO_RECEIVERS, env={})
    notifiers = notifiers_for(c)
    clock = FakeClock(T0)
    worker = OutboxWorker(store, notifiers, clock)
    enqueue(store, "pagerduty")
    run_until_settled(store, worker, clock)
    (dead,) = store.notifications("dead")
    assert store.requeue_dead([dead.id], clock.now()) == [dead.id]
    run_until_settled(store, worker, clock)
    assert notifiers["pagerduty"].calls == 12
    assert store.notifications("dead")[0].attempts == 6


def test_many_attempts_do_not_overflow_the_backoff(store: Store) -> None:
    """``base * 2**99`` overflows timedelta: the worker would crash before counting the attempt."""
    c = parse_config(HEAD + """
alerting:
  delivery: {max_attempts: 100, backoff: 1s, max_backoff: 1h}
  receivers: [{name: hook}]
""", env={})
    notifiers = notifiers_for(c)
    clock = FakeClock(T0)
    enqueue(store, "hook")
    waits = run_until_settled(store, OutboxWorker(store, notifiers, clock), clock)
    assert notifiers["hook"].calls == 100
    assert max(waits["hook"]) == timedelta(hours=1) == waits["hook"][-1]
    assert DeliveryPolicy(max_attempts=10_000).delay(9_999) == DeliveryPolicy().max_delay


def test_explicit_policies_win_and_code_built_notifiers_use_the_workers(store: Store) -> None:
    clock = FakeClock(T0)
    plain, configured = Down(), Down()
    configured.delivery = DeliveryConfig(max_attempts=4)
    worker = OutboxWorker(store, {"plain": plain, "configured": configured}, clock,
                          DeliveryPolicy(max_attempts=2))
    assert worker.policy_for("plain").max_attempts == 2
    assert worker.policy_for("configured").max_attempts == 4
    assert worker.policy_for("configured").lease == worker.policy.lease
    explicit = OutboxWorker(store, {"configured": configured}, clock,
                            policies={"configured": DeliveryPolicy(max_attempts=7)})
    assert explicit.policy_for("configured").max_attempts == 7


def test_alerts_retry_says_the_fresh_budget_per_receiver(tmp_path: Path) -> None:
    """``cxmon alerts retry`` names the attempts each requeued notification gets: its
    receiver's max_attempts, what the outbox reads when it sends."""
    from typer.testing import CliRunner

    from monitor.cli import app

    db = tmp_path / "r.db"
    with Store(f"sqlite:///{db}") as store:
        store.migrate()
        enqueue(store, "slack", "pagerduty", "gone")
        for row in store.notifications():
            store.mark_dead(row.id, "HTTP 503")
    path = tmp_path / "cxmon.yaml"
    path.write_text(f"store: sqlite:///{db}\n" + TWO_RECEIVERS)
    result = CliRunner().invoke(app, ["alerts", "retry", "-c", str(path), "--all"])
    assert result.exit_code == 0, result.output
    assert ("(due now; attempts: gone (not in this config), pagerduty 6, slack 3; "
            in result.output)


@pytest.mark.parametrize(("doc", "marker", "spans"), [
    ("README.md", "delivery: {max_attempts: 8,", {"chat": "20m30s", "pager": "2h20m30s"}),
    ("docs/operations.md", "delivery: {max_attempts: 10,", {"pagerduty": "3h6m15s"}),
])
def test_the_documented_examples_load_and_their_spans_hold(
    doc: str, marker: str, spans: dict[str, str]
) -> None:
    """The docs' delivery examples are valid config, and the times they quote are the sums
    of the waits the outbox uses."""
    from monitor.durations import format_duration

    text = (Path(__file__).resolve().parents[1] / doc).read_text()
    start = text.rindex("```yaml\n", 0, text.index(marker)) + len("```yaml\n")
    block = text[start:text.index("```", start)]
    env = {"SLACK_BOT_TOKEN": "xoxb-" + "x" * 12, "PD_ROUTING_KEY": "x" * 32}
    c = parse_config(HEAD + block, env=env)
    notifiers = {r.name: n for r in c.alerting.receivers
                 if (n := receiver_notifier(r)) is not None}
    worker = OutboxWorker(cast(Store, None), notifiers, FakeClock(T0))  # policy_for: no store
    got = {name: format_duration(sum(worker.policy_for(name).schedule(), timedelta()))
           for name in spans}
    assert got == spans
