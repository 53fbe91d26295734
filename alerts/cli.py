"""Delivery commands: ``cxmon alerts deliver`` (the outbox worker alone) and
``cxmon serve-feedback`` (Slack's feedback endpoint alone). ``cxmon run`` starts the feedback
endpoint too when ``alerting.feedback`` is configured (:func:`start_feedback`)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from monitor.cli_options import ConfigOpt, LogFormat, LogLevel, log_settings
from monitor.durations import format_duration

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from alerts.display import Names
    from alerts.feedback_server import FeedbackServer
    from monitor.config import MonitorConfig
    from monitor.store import Store

__all__ = ["register", "start_feedback"]

log = logging.getLogger("cxmon.delivery")



def start_feedback(config: MonitorConfig, store: Store, *,
                   registry: CollectorRegistry | None = None) -> FeedbackServer | None:
    """Start the feedback endpoint in the background if the config has one; None (logged)
    when its address cannot be used: a taken port ended ``cxmon run`` in a traceback, where
    alerting matters more than the buttons (as with the exporter). ``registry``: the
    exporter's, so refused requests show on ``/metrics``."""
    fb = config.alerting.feedback
    if fb is None:
        return None
    from alerts.feedback_server import FeedbackApp, FeedbackServer

    app = FeedbackApp(store, fb.signing_secret.get_secret_value(), max_age=fb.max_age,
                      path=fb.path, registry=registry, serve_metrics=fb.metrics)
    try:
        server = FeedbackServer(app, fb.host, fb.port)
    except OSError as exc:
        log.error("alerting.feedback.listen: cannot listen on %s:%s (%s); the feedback "
                  "endpoint is off", fb.host, fb.port, exc.strerror or exc)
        return None
    return server.start()


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _exit_if_dead(dead: int, until_empty: bool) -> None:
    """``--until-empty`` is for cron, like ``run --once``: exit 1 when it dead-lettered a
    notification (it exited 0, and a never-sent alert went unnoticed)."""
    if until_empty and dead:
        typer.echo(f"{dead} notification(s) dead-lettered (cxmon alerts status; "
                   "cxmon alerts retry requeues them)", err=True)
        raise typer.Exit(1)


def _note_left_for_others(rows: list, grace: timedelta) -> None:
    """Say what ``--until-empty`` leaves pending: rows for receivers this config lacks wait
    for a worker that has them (a config roll-out), and are dead-lettered by the first pass
    after ``grace`` if none does."""
    if rows:
        names = ", ".join(sorted({r.receiver for r in rows}))
        typer.echo(f"{len(rows)} notification(s) for receivers not in this config ({names}) "
                   f"left pending for another worker; dead-lettered after "
                   f"{format_duration(grace)} if no worker takes them", err=True)


def _budgets(config: MonitorConfig, receivers: Iterable[str]) -> str:
    """The attempts a requeued notification gets, per receiver: its receiver's
    ``max_attempts`` in this config (the outbox reads the same at delivery time), so
    ``alerts retry`` says what "a fresh retry budget" means for a pager and a chat channel."""
    by_name = {r.name: r.effective_delivery.max_attempts for r in config.alerting.receivers}
    parts = [f"{name} {by_name[name]}" if name in by_name else f"{name} (not in this config)"
             for name in sorted(set(receivers))]
    return "; attempts: " + ", ".join(parts) if parts else ""


def superseded_dead(rows: Iterable[Any]) -> dict[int, int]:
    """Dead-lettered updates and reminders that a later notification of the same incident
    and receiver makes stale, as {id: the later one's id}.

    Why: after a receiver's day-long outage ``retry --all`` re-sent every dead reminder and
    update, hours out of date, ahead of what they were followed by. A first message (the
    thread's anchor) and a resolution are never stale; the newest message of each incident
    and receiver is kept too.

    >>> from types import SimpleNamespace as Row
    >>> rows = [Row(id=1, status="dead", incident_key="i", receiver="r", payload={}),
    ...         Row(id=2, status="dead", incident_key="i", receiver="r",
    ...             payload={"update": True, "repeat": True}),
    ...         Row(id=3, status="dead", incident_key="i", receiver="r",
    ...             payload={"update": True}),
    ...         Row(id=4, status="sent", incident_key="i", receiver="x", payload={})]
    >>> superseded_dead(rows)
    {2: 3}
    """
    from alerts.payload import message_kind

    latest: dict[tuple[str, str], int] = {}
    listed = sorted(rows, key=lambda r: r.id)
    for r in listed:
        latest[(r.incident_key, r.receiver)] = r.id
    return {r.id: latest[(r.incident_key, r.receiver)] for r in listed
            if r.status == "dead" and message_kind(r.payload) in ("update", "reminder")
            and latest[(r.incident_key, r.receiver)] > r.id}


def _say_requeued(done: list[int], asked: list[int], receiver: str | None,
                  budgets: str = "", skipped: Mapping[int, int] | None = None) -> None:
    """Report ``alerts retry``: what was requeued, what --all left dead as superseded, and
    exit 1 naming every id that was not (not dead, wrong receiver, no such id), so a typo is
    not taken for a retried alert."""
    if done:
        typer.echo(f"requeued {len(done)} notification(s): {', '.join(map(str, done))} "
                   f"(due now{budgets}; the running monitor or `cxmon alerts deliver` sends "
                   "them)")
    if skipped:
        shown = ", ".join(f"{i} (by {later})" for i, later in sorted(skipped.items()))
        typer.echo(f"left dead {len(skipped)} update(s)/reminder(s) a later message of the "
                   f"same incident superseded: {shown} (--stale sends them too)")
    missed = [i for i in asked if i not in done]
    for i in missed:
        typer.echo(f"notification {i} is not dead-lettered"
                   + (f" for receiver {receiver}" if receiver else "")
                   + " (cxmon alerts status)", err=True)
    if not done and not asked and not skipped:
        typer.echo("no dead-lettered notifications"
                   + (f" for receiver {receiver}" if receiver else ""))
    if missed:
        raise typer.Exit(1)


def _open_key(store: Store, given: str) -> str | None:
    """The open incident ``given`` names: its key, or the start of exactly one open key
    (keys are long: ``journey=checkout@2026-01-05T10:00Z``). None (said) otherwise."""
    keys = [str(r["key"]) for r in store.open_incidents()]
    if given in keys:
        return given
    found = [k for k in keys if k.startswith(given)]
    if len(found) == 1:
        return found[0]
    if found:
        typer.echo(f"{given} matches {len(found)} open incidents ({', '.join(found)}): give "
                   "more characters", err=True)
    else:  # a typo (journey=suport): the keys it could have meant
        shown = ", ".join(keys[:10]) + (f" and {len(keys) - 10} more" if keys[10:] else "")
        typer.echo(f"{given} matches no open incident; open: {shown or 'none'} (cxmon alerts "
                   "acks lists them)", err=True)
    return None


def _acked_key(keys: list[str], given: str) -> tuple[str | None, str]:
    """The acknowledged incident ``given`` names (its key, or the start of exactly one
    acknowledged key, as ``ack`` takes), or None and why: ``unack`` took only whole keys, so
    the prefix that acknowledged an incident did not unacknowledge it."""
    if given in keys:
        return given, ""
    found = [k for k in keys if k.startswith(given)]
    if len(found) == 1:
        return found[0], ""
    if found:
        return None, (f"{given} matches {len(found)} acknowledged incidents "
                      f"({', '.join(found)}): give more characters")
    return None, f"{given} is not acknowledged (cxmon alerts acks lists who is)"


def _group_text(names: Names, incident: Mapping[str, Any]) -> str:
    """An open incident's group as people read it (its summary's ``group`` labels; ``""``
    without names, or for an incident stored without them)."""
    if not names:
        return ""
    summary = incident.get("summary")
    return names.listed(summary.get("group") if isinstance(summary, Mapping) else None)


def register(app: typer.Typer, alerts_app: typer.Typer) -> None:
    """Add the commands (the CLI's helpers are imported when a command runs)."""

    @alerts_app.command("ack")
    def ack(
        config: ConfigOpt,
        incidents: Annotated[list[str], typer.Argument(
            metavar="INCIDENT", help="Open incident keys, or their first characters "
            "(cxmon alerts acks lists them).")],
        by: Annotated[str, typer.Option("--by", "-a", help="Who (default: $USER).")] = "",
    ) -> None:
        """Acknowledge incidents: no more reminders (repeat_interval) until one changes
        materially (severity rises a level, new series) or resolves; updates and the
        resolution are still sent."""
        from alerts.acks import acknowledge
        from alerts.display import Names
        from monitor import cli as main

        cfg = main._load(config, needs={"store"})
        names = Names.from_config(cfg)
        store = main._open_store(cfg, must_exist=True)
        failed = False
        try:
            for given in incidents:
                key = _open_key(store, given)
                if key is None:
                    failed = True
                    continue
                a = acknowledge(store, key, by=by or os.environ.get("USER", "cxmon"),
                                source="cli", now=store.clock.now())
                row = next((r for r in store.open_incidents() if r["key"] == key), {})
                group = _group_text(names, row)
                typer.echo(f"acknowledged {key}" + (f" · {group}" if group else "")
                           + f" (sev {a.severity}, {len(a.series)} series)")
        finally:
            store.close()
        if failed:
            raise typer.Exit(1)

    @alerts_app.command("unack")
    def unack(
        config: ConfigOpt,
        incidents: Annotated[list[str], typer.Argument(
            metavar="INCIDENT", help="Acknowledged incident keys, or their first "
            "characters (cxmon alerts acks lists them).")],
    ) -> None:
        """Remove acknowledgements: the incidents' reminders resume."""
        from alerts.acks import list_acks, unacknowledge
        from monitor import cli as main

        store = main._open_store(main._load(config, needs={"store"}), must_exist=True)
        problems = []
        try:
            for given in incidents:
                key, why = _acked_key([a.incident_key for a in list_acks(store)], given)
                if key is not None and unacknowledge(store, key):
                    typer.echo(f"unacknowledged {key}")
                else:
                    problems.append(why or f"{given} is not acknowledged")
        finally:
            store.close()
        for text in problems:
            typer.echo(text, err=True)
        if problems:
            raise typer.Exit(1)

    @alerts_app.command("acks")
    def acks(config: ConfigOpt) -> None:
        """List the open incidents and which are acknowledged (by whom, when)."""
        from alerts.acks import list_acks
        from alerts.display import Names
        from monitor import cli as main

        cfg = main._load(config, needs={"store"})
        names = Names.from_config(cfg)  # with display names: a "Group" column
        store = main._open_store(cfg, must_exist=True)
        try:
            by_key = {a.incident_key: a for a in list_acks(store)}
            rows = store.open_incidents()
        finally:
            store.close()
        if not rows:
            typer.echo("no open incidents, so nothing to acknowledge")
            return
        groups = [_group_text(names, r) for r in rows]
        width = max(len("Group"), *(len(g) for g in groups))
        typer.echo(f"{'Incident':44}  {'Sev':>3}  " + (f"{'Group':{width}}  " if names else "")
                   + "Acknowledged")
        for r, group in zip(rows, groups, strict=True):
            a = by_key.get(str(r["key"]))
            said = (f"by {a.acked_by} ({a.source}) at "
                    f"{a.acked_at.strftime('%Y-%m-%d %H:%M UTC')}, sev {a.severity}"
                    if a else "-")
            typer.echo(f"{r['key']:44}  {r['severity']:>3}  "
                       + (f"{group:{width}}  " if names else "") + said)

    @alerts_app.command("retry")
    def retry(
        config: ConfigOpt,
        ids: Annotated[list[int] | None, typer.Argument(
            metavar="ID", help="Dead-lettered notification ids (cxmon alerts status "
            "lists them).")] = None,
        all_dead: Annotated[bool, typer.Option("--all", help="Every dead-lettered "
                                               "notification (of --receiver, if given).")]
        = False,
        receiver: Annotated[str | None, typer.Option(
            "--receiver", "-r", help="Only notifications to this receiver.")] = None,
        stale: Annotated[bool, typer.Option(
            "--stale", help="With --all: also updates and reminders that a later message of "
            "the same incident and receiver superseded (left dead by default).")] = False,
    ) -> None:
        """Requeue dead-lettered notifications: due now, with a fresh retry budget (the
        receiver's delivery.max_attempts), sent by the running monitor or `cxmon alerts
        deliver`. For after the receiver is fixed (it
        was down past the retries, a token was rotated); ids are from `alerts status`.
        --all leaves dead the updates and reminders a later message superseded (first
        messages and resolutions always go); --stale sends those too."""
        from monitor import cli as main
        from monitor.clock import SystemClock

        if not ids and not all_dead:
            raise typer.BadParameter("give notification ids, or --all", param_hint="ID")
        if ids and all_dead:
            raise typer.BadParameter("give ids or --all, not both", param_hint="ID")
        # the store only: a ${VAR} unset here (a Slack token) must not block a requeue; the
        # receivers' delivery settings parse without it
        cfg = main._load(config, needs={"store"})
        store = main._open_store(cfg, must_exist=True)
        try:
            chosen: list[int] | None = list(ids or [])
            skipped: dict[int, int] = {}
            if all_dead:
                every = store.notifications()
                skipped = {} if stale else superseded_dead(every)
                chosen = [r.id for r in every if r.status == "dead" and r.id not in skipped
                          and (receiver is None or r.receiver == receiver)]
                skipped = {i: later for i, later in skipped.items()
                           if receiver is None or any(r.id == i and r.receiver == receiver
                                                      for r in every)}
            done = store.requeue_dead(chosen, SystemClock().now(), receiver=receiver) \
                if chosen else []
            requeued = set(done)
            budgets = _budgets(cfg, (r.receiver for r in store.notifications("pending")
                                     if r.id in requeued))
        finally:
            store.close()
        _say_requeued(done, ids or [], receiver, budgets, skipped)

    @alerts_app.command("deliver")
    def deliver(
        config: ConfigOpt,
        until_empty: Annotated[bool, typer.Option(
            "--until-empty", help="Exit when no notification is pending (waits for scheduled "
            "retries); exit 1 if one was dead-lettered.")] = False,
        every: Annotated[float, typer.Option(help="Seconds between passes.")] = 5.0,
        log_level: LogLevel = None,
        log_format: LogFormat = None,
    ) -> None:
        """Run the delivery worker alone: send what is due in the outbox, with retries."""
        from alerts.outbox import OutboxWorker
        from monitor import cli as main
        from monitor.clock import SystemClock
        from monitor.pipeline import build_notifiers

        main._setup_logging(*log_settings(log_level, log_format, "info"))
        # the receivers and Grafana links only: an unset source ${VAR} is no error here
        cfg = main._load(config, needs={"store", "alerting", "grafana"})
        store = main._open_store(cfg, must_exist=True)  # a fresh one holds nothing
        clock = SystemClock()
        worker = OutboxWorker(store, build_notifiers(cfg, main.console, store), clock)
        stop = _stop_event()
        dead = 0
        try:
            while not stop.is_set():
                report = worker.deliver_due()
                dead += report.dead
                if report.sent or report.retried or report.dead:
                    log.info("delivery: %d sent, %d to retry, %d dead", report.sent,
                             report.retried, report.dead)
                wait = every
                if until_empty:
                    now = clock.now()
                    pending = store.notifications("pending")
                    orphaned = now - worker.policy.orphan_after
                    others = [p for p in pending if p.receiver not in worker.notifiers
                              and p.next_attempt_at > orphaned]
                    foreign = {p.id for p in others}
                    pending = [p for p in pending if p.id not in foreign]
                    if not pending:
                        _note_left_for_others(others, worker.policy.orphan_after)
                        break
                    # the next retry; due rows wait for their incident
                    later = [p.next_attempt_at - now for p in pending if p.next_attempt_at > now]
                    wait = min([every, *(d.total_seconds() for d in later)])
                stop.wait(wait)
        finally:
            store.close()
        _exit_if_dead(dead, until_empty)

    @app.command("serve-feedback")
    def serve_feedback(config: ConfigOpt, log_level: LogLevel = None,
                       log_format: LogFormat = None) -> None:
        """Serve the endpoint Slack's feedback buttons post to (alerting.feedback)."""
        from monitor import cli as main

        main._setup_logging(*log_settings(log_level, log_format, "info"))
        cfg = main._load(config, needs={"store", "alerting"})
        if cfg.alerting.feedback is None:
            main.err_console.print("[bold red]alerting.feedback is not configured[/]")
            raise typer.Exit(2)
        store = main._open_store(cfg, must_exist=True)  # a fresh one holds nothing
        server = start_feedback(cfg, store)
        if server is None:  # the address is taken (logged): nothing left to do
            store.close()
            raise typer.Exit(1)
        stop = _stop_event()
        try:
            stop.wait()
        finally:
            if server is not None:
                server.stop()
            store.close()
