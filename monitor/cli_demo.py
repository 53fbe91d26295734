"""``cxmon demo``: replay a simulated retailer's KPIs, print what cxmon found, then poll live."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from monitor.cli_options import log_level_option, log_settings
from monitor.cli_run import _log_tick
from monitor.clock import FakeClock, SystemClock

if TYPE_CHECKING:

    from monitor.pipeline import TickResult
    from monitor.store import Store
    from sources.demo import ResolvedIncident


def demo(
    once: Annotated[
        bool, typer.Option("--once", help="Stop after replaying history instead of polling live.")
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(metavar="<url>",
                     help="Store URL (default: a fresh SQLite file in a temp dir)."),
    ] = None,
    anchor: Annotated[
        str | None,
        typer.Option(metavar="<time>", help="Day 0 of the demo data, a UTC date such as 2026-01-05 "
                     "(default: 28 days before today)."),
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Days replayed from day 0 (the scripted "
                                      "incidents are in days 21-27); without --once, live "
                                      "polling then catches up to now.")] = 28,
    step_hours: Annotated[
        int,
        typer.Option("--step-hours", min=1, max=24,
                     help="Simulated hours per replay tick (detection is still hourly)."),
    ] = 6,
    log_level: log_level_option("warning") = None,  # type: ignore[valid-type]
) -> None:
    """Replay a few weeks of a simulated retailer's KPIs, print the alerts, then poll live."""
    from monitor.cli import _hm, _load, _open_store, _setup_logging, console
    from monitor.pipeline import Pipeline
    from monitor.scheduler import Scheduler, replay
    from sources.demo import HOLIDAY_DAYS, default_anchor, incidents_at

    _setup_logging(*log_settings(log_level, None, "warning"))
    now = SystemClock().now()
    start = _demo_anchor(anchor) if anchor else default_anchor(now)
    end = min(start + timedelta(days=days), now) if not anchor else start + timedelta(days=days)
    own_store = store is None
    if store is None:
        store = f"sqlite:///{Path(tempfile.mkdtemp(prefix='cxmon-demo-')) / 'demo.db'}"
    env = {**os.environ, "CXMON_DEMO_STORE": store, "CXMON_DEMO_ANCHOR": start.isoformat(),
           "CXMON_DEMO_HOLIDAY": demo_holiday(start)}
    demo_yaml = resources.files("monitor") / "examples" / "demo.yaml"
    with resources.as_file(demo_yaml) as path:
        cfg = _load(path, env=env)
    st = _open_store(cfg)
    clock = FakeClock(start + timedelta(hours=1))
    # the wall clock: the replay's ticks carry their simulated end (TickResult.finished_at);
    # /readyz is served only while polling live, on the wall clock
    from dashboards.telemetry import Telemetry  # exporter: /metrics, /healthz, /readyz

    telemetry = Telemetry(cfg, st)
    pipeline = Pipeline(cfg, st, clock=clock, console=console, sources=telemetry.sources)
    pipeline.warming_level = logging.INFO  # said once below, not as four warnings
    console.rule("[bold]cxmon demo")
    console.print(
        f"Replaying {days} day{'s' if days != 1 else ''} of an omnichannel retailer "
        f"({len(cfg.metrics)} KPIs, "
        f"from {_hm(start)} UTC); store: {st.url_redacted}\n"
        "The demo starts without history, so the first week is the detectors' warm-up "
        "(they learn each KPI's weekly pattern before they alert).\n"
        + (f"Day {HOLIDAY_DAYS[0]} ({demo_holiday(start)}) is a public holiday in the data "
           "(online -40 %, stores closed): demo.yaml's calendar has the detectors skip it "
           "(not scored, not learned).\n" if days > HOLIDAY_DAYS[0] else "")
    )
    step = timedelta(hours=step_hours)
    steps = int((end - clock.now()) / step) + 1
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} ticks"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("replaying", total=steps)
        def on_step(_t: datetime, results: list[TickResult]) -> None:
            for r in results:
                telemetry.on_tick(r)
            progress.advance(task)

        replay(pipeline, clock, end, step=step, on_step=on_step,
               on_deliver=telemetry.on_deliver)
    table_metric = {m.query: m.name for m in cfg.metrics if m.query}
    replayed = [t for t in incidents_at(start) if t.start < end]
    _demo_summary(st, replayed, table_metric)
    pipeline.close()
    if once:
        st.close()
        _demo_explore_hint(store if own_store else "<your --store URL>", start, end)
        return
    console.print(f"\nPolling live (Ctrl-C to stop); store: {st.url_redacted}")
    live = Pipeline(cfg, st, clock=SystemClock(), console=console, sources=telemetry.sources)
    try:
        if (port := telemetry.serve()) is not None:
            console.print(f"Prometheus metrics: http://{cfg.exporter.address}:{port}/metrics")
        Scheduler(live, on_tick=telemetry.chain(_log_tick),
                  on_deliver=telemetry.on_deliver).run_until_stopped()
    finally:
        telemetry.stop()
        live.close()
        st.close()
        console.print(f"stopped; the demo's store stays at {st.url_redacted}")


def _demo_explore_hint(store: str, start: datetime, end: datetime) -> None:
    """How to point the other commands at the run just replayed (its store stays). A
    ``--store`` URL is not repeated: it may hold a password. ``make demo`` installs cxmon into
    ``.venv`` without activating it, so when ``cxmon`` is not on the PATH the commands name the
    executable that is running (and say how to activate its virtualenv)."""
    from monitor.cli import console

    demo_yaml = resources.files("monitor") / "examples" / "demo.yaml"
    cxmon, activate = _cxmon_command()
    period = f"--start {start:%Y-%m-%dT%H:%MZ} --end {end:%Y-%m-%dT%H:%MZ}"
    console.print(
        "\nExplore this run with the other commands (the store stays):\n"
        + (f"  source {activate}      # cxmon is not on your PATH: activate its venv, "
           "or use its full path as below\n" if activate else "")
        + f"  export CXMON_DEMO_STORE='{store}' CXMON_DEMO_ANCHOR='{start.isoformat()}' "
        f"CXMON_DEMO_HOLIDAY='{demo_holiday(start)}'\n"
        f"  {cxmon} anomalies -c {demo_yaml}      # then: alerts status, feedback, silence, ...\n"
        f"  {cxmon} backtest -c {demo_yaml} {period}   # the same {_span(end - start)}, replayed",
        highlight=False, soft_wrap=True,
    )


def _span(length: timedelta) -> str:
    """The replayed period as the hint names it: ``4 weeks`` for the default 28 days (what
    the README shows), else its days (``--days 10``: ``10 days``, not "4 weeks")."""
    days = length.days
    if days % 7 == 0:
        return f"{days // 7} week{'s' if days > 7 else ''}"
    return f"{days} day{'s' if days > 1 else ''}"


def demo_holiday(start: datetime) -> str:
    """The demo data's public holiday (its ``HOLIDAY_DAYS`` after ``start``) as the date
    ``demo.yaml``'s calendar reads from ``CXMON_DEMO_HOLIDAY``."""
    from sources.demo import HOLIDAY_DAYS

    return (start + timedelta(days=HOLIDAY_DAYS[0])).date().isoformat()


def _cxmon_command() -> tuple[str, str | None]:
    """``cxmon`` when that is on the PATH, else the running interpreter's ``cxmon`` script and
    the ``activate`` script beside it (``.venv/bin/cxmon``, ``.venv/bin/activate``)."""
    if shutil.which("cxmon"):
        return "cxmon", None
    bindir = Path(sys.executable).parent
    script = bindir / "cxmon"
    if not script.exists():
        return "cxmon", None
    activate = bindir / "activate"
    return str(script), str(activate) if activate.exists() else None


def _demo_anchor(text: str) -> datetime:
    """``--anchor`` as a time, or a usage error naming the option and the value typed (not the
    internal demo.yaml it is passed on to)."""
    accepted = "expected a UTC date such as 2026-01-05 (or a time at 00:00 UTC: 2026-01-05T00:00Z)"
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        ts = None
    if ts is None or ts is pd.NaT:
        raise typer.BadParameter(f"{text!r} is not a date; {accepted}", param_hint="--anchor")
    ts = (ts.tz_localize("UTC") if ts.tzinfo is None else ts).tz_convert("UTC")
    if ts != ts.normalize():
        raise typer.BadParameter(f"{text!r} is not at 00:00 UTC (the demo's days start at "
                                 f"midnight UTC); {accepted}", param_hint="--anchor")
    return ts.to_pydatetime()


def _demo_summary(
    store: Store, truth: list[ResolvedIncident], table_metric: dict[str, str]
) -> None:
    """What was injected, what cxmon found, and the incidents that match nothing."""
    from monitor.cli import _g, console

    anomalies = store.anomalies()
    incidents = store.incidents()
    table = Table(title="Scripted incidents vs. what cxmon found")
    table.add_column("scripted incident", overflow="fold")
    table.add_column("window (UTC)", overflow="fold")
    table.add_column("found")
    table.add_column("first alert", overflow="fold")
    matched: set[int] = set()
    for inc in truth:
        hits = [i for i in incidents
                if _incident_matches(i, inc, table_metric.get(inc.table, inc.table))]
        matched.update(i["id"] for i in hits)
        first = min((i["opened_at"] for i in hits), default=None)
        table.add_row(
            inc.name,
            f"{inc.start:%m-%d %H:%M} – {inc.end:%m-%d %H:%M}",
            "[green]yes[/]" if hits else "[red]no[/]",
            f"{first:%m-%d %H:%M}" if first else "-",
        )
    if not truth:
        table.add_row("(none in the replayed period)", "-", "-", "-")
    console.print(table)
    others = [i for i in incidents if i["id"] not in matched]
    for i in others:
        top = ((i.get("summary") or {}).get("top") or [{}])[0]
        series = escape(str(top.get("series", i["key"])))
        console.print(
            f"  not scripted: {i['opened_at']:%m-%d %H:%M} {series}"
            f" value {_g(top.get('value'))} vs expected {_g(top.get('expected'))}",
            highlight=False,
        )
    counts = store.outbox_counts()
    console.print(
        f"{_incidents_said(len(incidents), len(others))}, "
        f"{len(anomalies)} anomalous points; outbox: {counts.get('sent', 0)} sent, "
        f"{counts.get('pending', 0)} pending, {counts.get('dead', 0)} dead"
    )


def _incidents_said(opened: int, unscripted: int) -> str:
    """The closing line's incident count. It read ``4 incidents (0 matching no scripted
    incident)``, a double negative, beside a table of five rows (one incident can cover
    several scripted measures).

    >>> _incidents_said(4, 0)
    '4 incidents opened, each matching a scripted incident'
    >>> _incidents_said(0, 0)
    'no incidents opened'
    >>> _incidents_said(5, 1)
    '5 incidents opened, 1 matching no scripted incident (listed above)'
    """
    if not opened:
        return "no incidents opened"
    if not unscripted:
        return f"{opened} incidents opened, each matching a scripted incident"
    return f"{opened} incidents opened, {unscripted} matching no scripted incident (listed above)"


def _incident_matches(incident: dict, truth: ResolvedIncident, metric: str) -> bool:
    """Same journey, an anomaly in the scripted measure, and the incident overlaps the
    scripted window (plus a little slack)."""
    summary = incident.get("summary") or {}
    last = summary.get("last_anomaly_at")
    last_ts = datetime.fromisoformat(last) if last else incident["updated_at"]
    metrics = {str(k).split("{", 1)[0] for k in summary.get("series") or []}
    return (
        incident.get("journey") == truth.journey
        and (not metrics or metric in metrics)
        and incident["opened_at"] < truth.end + timedelta(hours=3)
        and last_ts >= truth.start
    )


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``cxmon`` app."""
    app.command("demo")(demo)
