"""``cxmon anomalies`` and ``cxmon alerts status``: what the store holds (anomalies, the
alert outbox), read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from monitor.cli_options import ConfigOpt
from monitor.clock import SystemClock

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from monitor.store import OutboxRow


def anomalies_list(
    config: ConfigOpt,
    last: Annotated[int, typer.Option("--last", "-n", min=1,
                                      help="How many, newest first.")] = 20,
    metric: Annotated[str | None, typer.Option(metavar="<name>",
                                              help="Only this metric.")] = None,
) -> None:
    """List recent stored anomalies with their ids (for cxmon feedback ID VERDICT)."""
    from monitor.cli import _hm, _load, _open_store, unknown_metric_message

    cfg = _load(config, needs={"store", "metrics"})
    if metric is not None and metric not in {m.name for m in cfg.metrics}:
        raise typer.BadParameter(
            unknown_metric_message([metric], [m.name for m in cfg.metrics]),
            param_hint="--metric")
    st = _open_store(cfg, must_exist=True)
    try:
        frame = st.anomalies(metric=metric)
    finally:
        st.close()
    from alerts.anomaly_text import AnomalyText

    rows = frame.iloc[::-1].head(last)
    words = AnomalyText.from_config(cfg)
    names = words.names  # with display names: the series as people read it
    # times on display.timezone's clock: UTC as ever, or 2026-03-30 09:00 CEST
    utc = names.timezone == "UTC"
    width = 16 if utc else 21

    def when(metric: str, ts: datetime | None) -> str:
        return _hm(ts) if utc or ts is None else names.at({"metric": metric, "timestamp": ts})

    typer.echo(f"{'ID':32}  {'TIME (UTC)' if utc else 'TIME':{width}}  {'SEV':>3}  {'KIND':8}  "
               f"{'VALUE':>10}  "
               f"{'EXPECTED':>10}  {'FROM':>16}  SERIES")
    for r in rows.itertuples():
        said = names.series(r.metric, r.labels if isinstance(r.labels, dict) else {}) \
            if names else r.series
        # a no-data anomaly's value is a silence length (metric) or NaN (series): say "-";
        # the others read as the alert did: 58.7%, 3.10 / 5, from 1,204 sessions
        text = words.text(r)
        typer.echo(f"{r.id:32}  {when(r.metric, r.ts):{width}}  {r.severity:>3}  {r.kind:8}  "
                   f"{text.get('value', '-'):>10}  {text.get('expected', '-'):>10}  "
                   f"{text.get('volume', '-').removeprefix('from '):>16}  {said}")
    if frame.empty:
        typer.echo("(no anomalies stored)", err=True)


def _told_later(sent: Iterable[OutboxRow]) -> dict[tuple[str, str], int]:
    """The newest sent notification id per (incident, receiver): a suppressed row older than
    it was told after its silence or inhibition ended, and read as "never told" without it."""
    out: dict[tuple[str, str], int] = {}
    for r in sent:
        key = (r.incident_key, r.receiver)
        out[key] = max(out.get(key, 0), r.id)
    return out


def alerts_status(
    config: ConfigOpt,
    show: Annotated[int, typer.Option(min=0, help="List this many notifications not sent "
                                      "(pending and dead first, newest first).")] = 20,
) -> None:
    """Outbox counts (pending, sent, dead, suppressed) and the notifications not sent: pending
    (with the worker holding them), dead-lettered (the error) and suppressed (the silence,
    time interval or inhibiting incident)."""
    from alerts.acks import list_acks
    from alerts.display import Names
    from alerts.grouping import waiting_groups
    from alerts.payload import message_kind
    from monitor.cli import _hms, _load, _open_store, _print_table, console

    cfg = _load(config, needs={"store"})
    names = Names.from_config(cfg)  # with display names: a "group" column as people read it
    st = _open_store(cfg, must_exist=True)
    counts = st.outbox_counts()
    console.print(
        f"pending {counts.get('pending', 0)} · sent {counts.get('sent', 0)} · "
        f"dead {counts.get('dead', 0)} · suppressed {counts.get('suppressed', 0)}"
    )
    if counts.get("dead", 0):  # the way back, where the dead ones are listed
        console.print("dead-lettered ones are never retried on their own: `cxmon alerts "
                      "retry ID...` (or --all) requeues them once the receiver is fixed",
                      highlight=False)
    acked = list_acks(st)
    if acked:  # reminders held back until they change materially or resolve
        console.print(f"acknowledged: {len(acked)} incident(s), no reminders "
                      f"(cxmon alerts acks)", highlight=False)
    waiting = waiting_groups(st)
    if waiting:  # not in the outbox yet: held back by the route's group timing
        first = [w for w in waiting if w.first]
        parts = []
        if first:
            parts.append(f"group_wait until {_hms(min(w.due for w in first if w.due))}")
        if len(first) < len(waiting):
            later = [w.due for w in waiting if not w.first and w.due]
            parts.append(f"group_interval until {_hms(min(later))}" if later
                         else "group_interval")
        console.print(f"waiting: {len(waiting)} ({'; '.join(parts)})", highlight=False)
    # pending and dead ones first (they need someone), newest first: the oldest ones hid
    # today's dead-lettered notification behind a month of suppressed ones
    every = st.notifications()
    unsent = sorted((r for r in every if r.status != "sent"),
                    key=lambda r: (r.status == "suppressed", -r.id))
    rows = unsent[:show]
    now = SystemClock().now()
    told = _told_later(r for r in every if r.status == "sent")
    if rows or waiting:
        table = Table()
        for col in ("id", "status", "message", "receiver", "incident",
                    *(["group"] if names else []), "attempts", "next attempt",
                    "error / reason"):
            table.add_column(col, overflow="fold")

        def incident(key: str, group: Any) -> list[str]:
            return [key, escape(names.listed(group))] if names else [key]

        for w in waiting[:show]:
            what = {"opened": "first message", "updated": "update",
                    "resolved": "resolution"}.get(w.kind, w.kind)
            table.add_row("-", "waiting", what, w.receiver, *incident(w.incident_key, w.group),
                          "0", _hms(w.due), w.timer)
        for r in rows:
            why = r.reason if r.status == "suppressed" else (r.last_error or "")
            later = told.get((r.incident_key, r.receiver), 0)
            if r.status == "suppressed" and later > r.id:  # the mute ended and it was told
                why = f"{why}; told later (#{later})"
            # an expired lease (its worker died) holds nothing: it was shown as a claim
            if r.status == "pending" and r.lease_owner and r.lease_until and r.lease_until > now:
                why = f"claimed by {r.lease_owner} until {_hms(r.lease_until)}; {why}"
            # dead and suppressed rows are never attempted again
            table.add_row(str(r.id), r.status, message_kind(r.payload), r.receiver,
                          *incident(r.incident_key, (r.payload or {}).get("group")),
                          str(r.attempts),
                          _hms(r.next_attempt_at) if r.status == "pending" else "-",
                          (why or "").strip("; ")[:200])
        _print_table(table)
    if len(unsent) > len(rows):
        console.print(f"{len(unsent) - len(rows)} more not shown (--show)", highlight=False)
    st.close()


def register(app: typer.Typer, alerts_app: typer.Typer) -> None:
    """Add ``anomalies`` to the ``cxmon`` app and ``status`` to its ``alerts`` group."""
    app.command("anomalies")(anomalies_list)
    alerts_app.command("status")(alerts_status)
