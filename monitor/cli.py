"""The ``cxmon`` command line."""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer
import typer.core
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from monitor.cli_options import ConfigOpt, LogFormat, LogLevel
from monitor.clock import FakeClock, SystemClock
from monitor.config import MonitorConfig, config_json_schema, display_warnings, load_config
from monitor.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable

    from detectors.feedback import Verdict
    from monitor.backtest import BacktestResult
    from monitor.backtest_incidents import KnownIncident
    from monitor.executor import FitExecutor
    from monitor.pipeline import TickResult
    from monitor.store import OutboxRow, Store
    from sources.demo import ResolvedIncident

def _is_tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Group(typer.core.TyperGroup):
    """The ``cxmon`` group. When stderr is not a terminal, usage errors are printed as plain
    lines (``Error: ...``), never boxed or hard-wrapped at 80 columns, so logs can be grepped."""

    def main(self, args=None, prog_name=None, complete_var=None,  # type: ignore[override]
             standalone_mode=True, **extra):
        if not standalone_mode or _is_tty(sys.stderr):
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # click's usage and file errors
            if type(exc).__name__ != "NoArgsIsHelpError":  # its help is already printed
                exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _hide_flag_types() -> None:
    """Typer's rich help shows a ``<bool>`` type beside every flag (``--help`` included),
    as if it took a value; flags take none, so show no type for them. A repeatable option
    or argument showed ``<list[str]>``, Python's spelling: each occurrence takes one value,
    so show that value's type; an argument with a metavar already says what to type."""
    option, argument = typer.core.TyperOption, typer.core.TyperArgument
    shown_option, shown_argument = option.display_type_rich, argument.display_type_rich

    def one_value(shown: str | None) -> str | None:
        return re.sub(r"<list\[(\w+)\]>", r"<\1>", shown) if shown else shown

    def option_type(self, ctx):  # type: ignore[no-untyped-def]
        return None if getattr(self, "is_flag", False) else one_value(shown_option(self, ctx))

    def argument_type(self, ctx):  # type: ignore[no-untyped-def]
        return None if self.metavar else one_value(shown_argument(self, ctx))

    option.display_type_rich = option_type  # type: ignore[method-assign]
    argument.display_type_rich = argument_type  # type: ignore[method-assign]


_hide_flag_types()


def _unwrap_command_summaries() -> None:
    """A group's command list shows each command's first help paragraph; in rich mode Typer
    keeps the docstring's line breaks there, so a two-line summary was broken mid-sentence
    (``notifications not sent: pending`` / ``(with the worker ...``). Join its lines."""
    import typer.rich_utils as rich_utils

    make = rich_utils._make_command_help

    def make_command_help(*, help_text: str, markup_mode):  # type: ignore[no-untyped-def]
        first, sep, rest = inspect.cleandoc(help_text).partition("\n\n")
        if not first.startswith("\b"):
            first = " ".join(first.split("\n"))
        return make(help_text=first + sep + rest, markup_mode=markup_mode)

    rich_utils._make_command_help = make_command_help  # type: ignore[assignment]


_unwrap_command_summaries()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"cxmon {version('cxmon')}")
        except PackageNotFoundError:  # pragma: no cover - a source tree that is not installed
            typer.echo("cxmon (not installed)")
        raise typer.Exit()


app = typer.Typer(
    cls=_Group,
    help="cxmon: anomaly detection and alerting for customer-experience KPIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
alerts_app = typer.Typer(help="Inspect the alert outbox; run its delivery worker.",
                         no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """cxmon: anomaly detection and alerting for customer-experience KPIs."""


console = Console()
# Not a terminal (a log file, a pipe): no hard wrap at 80 columns, one problem per line.
err_console = Console(stderr=True, soft_wrap=not _is_tty(sys.stderr))



class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record and line, for log shippers that would otherwise parse the
    text with a regex: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and, for
    an exception, ``exception`` (the traceback, scrubbed of URL secrets like the message)."""

    def format(self, record: logging.LogRecord) -> str:
        from monitor.redact import redact_text

        when = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def _setup_logging(level: str, log_format: str = "auto") -> None:
    """Rich log lines on a terminal; plain one-line records (never wrapped) in a file or pipe,
    or with ``text``; one JSON object per line with ``json``."""
    handler: logging.Handler
    formatter: logging.Formatter
    if log_format == "json":
        handler, formatter = _StderrHandler(), JsonFormatter()
    elif log_format == "auto" and _is_tty(sys.stderr):
        handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=False)
        formatter = logging.Formatter("%(message)s")
    else:
        handler = _StderrHandler()
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    from monitor.redact import SecretFilter

    handler.addFilter(SecretFilter())
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for noisy in ("apscheduler", "alembic", "cmdstanpy", "prophet"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # HTTP clients log every request URL at INFO; receivers' URLs may carry secrets
    for client in ("httpx", "httpcore", "urllib3", "slack_sdk"):
        logging.getLogger(client).setLevel(logging.WARNING)


def _load(
    path: Path, env: dict[str, str] | None = None, *, needs: Collection[str] | None = None
) -> MonitorConfig:
    """Load a config or print every problem and exit 2. ``needs``: the top-level sections the
    command uses; an unset ``${VAR}`` elsewhere is no error (None: every section)."""
    try:
        return load_config(path, env=env, needs=needs)
    except ConfigError as exc:
        err_console.print(f"[bold red]{escape(exc.source)}: {len(exc.problems)} problem(s)[/]")
        for p in exc.problems:
            where = escape(p.path or "<root>")
            err_console.print(f"  [red]✗[/] [bold]{where}[/]: {escape(p.message)}",
                              highlight=False)
        raise typer.Exit(2) from None


def _store_file(config: MonitorConfig) -> Path | None:
    """The store's SQLite file (None for a server database or an in-memory one); a URL that
    does not parse is a usage error."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(config.store.url)
    except Exception:
        err_console.print("[bold red]store:[/] the store URL is not a valid SQLAlchemy URL")
        raise typer.Exit(1) from None
    path = url.database or ""
    is_file = url.get_backend_name() == "sqlite" and path not in ("", ":memory:")
    return Path(path) if is_file else None


def _open_store(config: MonitorConfig, *, must_exist: bool = False) -> Store:
    """Open (and migrate) the store. ``must_exist``: for read-only commands, a mistyped
    SQLite path is an error rather than a fresh, empty store that reports all clear."""
    from monitor.store import Store

    file = _store_file(config)
    is_file = file is not None
    if must_exist and file is not None and not file.exists():
        where = file.resolve()
        err_console.print(f"[bold red]store:[/] no store at {escape(str(where))} (check "
                          "store: in the config; a relative sqlite path is taken from the "
                          "current directory; `cxmon run` creates the store)",
                          highlight=False)
        raise typer.Exit(1)
    try:  # a server database (PostgreSQL) that must exist: look, create nothing
        return Store.open(config.store.url, create=not (must_exist and not is_file))
    except StoreError as exc:
        err_console.print(f"[bold red]store:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


def _parse_time(text: str, option: str) -> datetime:
    """``text`` as a UTC time (naive = UTC), or a usage error naming ``option``."""
    # ISO only: pandas also reads 11/10/2026, as November 10 (month first), so a European
    # 10/11/2026 would replay the wrong month without a word
    try:
        if not re.match(r"\s*\d{4}-\d{2}-\d{2}", text):
            raise ValueError(text)
        ts = pd.Timestamp(text)
    except ValueError:
        raise typer.BadParameter(
            f"not a time: {text!r} (use ISO 8601, e.g. 2026-01-05T00:00Z)", param_hint=option
        ) from None
    if ts is pd.NaT:  # '' and 'nat' parse to NaT, which has no time zone to convert
        raise typer.BadParameter(f"not a time: {text!r} (use ISO 8601, e.g. "
                                 "2026-01-05T00:00Z)", param_hint=option)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC").to_pydatetime()


@app.command()
def validate(
    config: ConfigOpt,
    poll: Annotated[bool, typer.Option(
        help="Also poll the latest buckets of every metric once and check the rows as a tick "
             "would (columns, timestamps, values); nothing is stored. Exit 1 if a poll "
             "fails.")] = False,
    intervals: Annotated[int, typer.Option(
        min=1, max=10_000, help="With --poll: how many of the latest buckets.")] = 3,
) -> None:
    """Check a config file; print every problem with its path (exit 2 if any)."""
    cfg = _load(config)
    console.print(
        f"[green]✓[/] {escape(str(config))}: {len(cfg.sources)} source(s), "
        f"{len(cfg.metrics)} metric(s){escape(_paused_note(cfg))}, "
        f"{len(cfg.detectors)} detector(s), "
        f"{len(cfg.alerting.receivers)} receiver(s)",
        soft_wrap=True,  # one line, also in a log or a pipe
    )
    for where, text in [*missing_files(cfg), *short_histories(cfg), *display_warnings(cfg)]:
        console.print(f"[yellow]warning[/] {where}: {escape(text)}", soft_wrap=True)
    if (line := _calendar_summary(cfg)) is not None:
        console.print(line, soft_wrap=True, highlight=False)
    if poll:
        _poll_metrics(cfg, intervals)


def _calendar_summary(cfg: MonitorConfig, days: int = 90, today: date | None = None
                      ) -> str | None:
    """``calendar: 6 days in the next 90 ...``: what the calendar will do soon, so a config
    whose calendar names no day (a wrong year, an empty list) shows it before the holiday."""
    metric = next((m for m in cfg.metrics if m.calendar), None)
    cals = cfg.calendar_for(metric) if metric is not None else None
    if cals is None:
        return None
    today = today or datetime.now(UTC).astimezone(cals.default.zone).date()
    end = today + timedelta(days=days - 1)
    found = {d for _, cal in cals.all() for d, _day in cal.days(today, end)}
    following = sum(m.calendar for m in cfg.metrics)
    nxt = min(found) if found else None
    return (f"calendar: {len(found)} day(s) in the next {days}"
            + (f" (next {nxt.isoformat()}; `cxmon calendar` lists them)" if nxt else "")
            + f", for {following} of {len(cfg.metrics)} metric(s)")


def _paused_note(cfg: MonitorConfig) -> str:
    """`` (paused: a, b)`` for the metrics with ``enabled: false``, else ``""``."""
    paused = [m.name for m in cfg.metrics if not m.enabled]
    return f" (paused: {', '.join(paused)})" if paused else ""


def _refuse_all_paused(cfg: MonitorConfig, config: Path) -> None:
    """Exit 2 when every metric has ``enabled: false``: a monitor that polls nothing would
    look healthy while watching nothing."""
    if not cfg.active_metrics:
        err_console.print(f"{escape(str(config))}: every metric has enabled: false; nothing to "
                          "run (set enabled: true on one, or remove the key)", soft_wrap=True)
        raise typer.Exit(2)


def _poll_metrics(cfg: MonitorConfig, intervals: int) -> None:
    """``validate --poll``: one line per metric; exit 1 when any poll failed."""
    from monitor.probe import probe_all

    probes = probe_all(cfg, SystemClock().now(), intervals)
    for p in probes:
        mark = "[red]✗[/]" if not p.ok else "[yellow]![/]" if p.stale else "[green]✓[/]"
        span = f"{p.since:%m-%d %H:%M}–{p.until:%m-%d %H:%M} UTC"
        console.print(f"{mark} {escape(p.metric)} ({escape(p.source)}, {span}): "
                      f"{escape(p.verdict())}", soft_wrap=True)
    failed = [p.metric for p in probes if not p.ok]
    if failed:
        err_console.print(f"[bold red]{len(failed)} of {len(probes)} metric(s) could not be "
                          f"polled: {', '.join(failed)}[/]")
        raise typer.Exit(1)


def short_histories(cfg: MonitorConfig) -> list[tuple[str, str]]:
    """``(config path, message)`` for every metric whose ``history`` is shorter than the
    warm-up of one of its detectors (``robust_seasonal`` learns a week before it scores):
    not an error, but ``run`` would show values and bands and alert on nothing for that long,
    with no other sign why."""
    from monitor.detection import MetricDetectors
    from monitor.durations import format_duration
    from monitor.pipeline import post_rules

    out = []
    for i, m in enumerate(cfg.metrics):
        dets = MetricDetectors(m.name, m.interval,
                               {n: cfg.detector(n) for n in m.detectors}, post_rules(m))
        for name, period in dets.warmup_periods().items():
            if m.history < period:
                kind = dets.types.get(name, name)
                det = kind if name in ("default", kind) else f"{name} [{kind}]"
                out.append((f"metrics[{i}].history",
                            f"{format_duration(m.history)} is shorter than the warm-up of "
                            f"{det} ({format_duration(period)}): for about "
                            f"{format_duration(period - m.history)} after its first run, "
                            f"{m.name} gets no alerts from it; set history: "
                            f"{format_duration(period)} or more"))
    return out


def missing_files(cfg: MonitorConfig) -> list[tuple[str, str]]:
    """``(config path, message)`` for every ``files`` path or metric glob that matches no
    file now, and every Google Analytics ``credentials_file`` that does not exist: not an
    error (a drop folder may still be empty, a key may be mounted at start), but usually a
    typo or the wrong folder, which ``run`` would only reveal at its first tick."""
    from sources.files import FilesSource, FilesSourceConfig
    from sources.google_analytics import GoogleAnalyticsSourceConfig

    out = []
    for name, sc in cfg.sources.items():
        if isinstance(sc, GoogleAnalyticsSourceConfig) and sc.credentials_file and not Path(
                sc.credentials_file).is_file():
            out.append((f"sources.{name}.credentials_file",
                        f"no file {sc.credentials_file} (a relative path is taken from the "
                        "config's folder)"))
        if not isinstance(sc, FilesSourceConfig):
            continue
        src = FilesSource(name, sc)
        if not src.files():
            out.append((f"sources.{name}.path", f"no file matches {src.pattern()} (yet)"))
        for i, m in enumerate(cfg.metrics):
            if m.source == name and m.query and not src.files(m.query):
                out.append((f"metrics[{i}].query",
                            f"no file matches {src.pattern(m.query)} (yet)"))
    return sorted(out, key=lambda w: not w[0].startswith("sources"))  # as in the file


@app.command("config-schema")
def config_schema() -> None:
    """Print the config's JSON Schema (point your editor's YAML plugin at it)."""
    sys.stdout.write(json.dumps(config_json_schema(), indent=2) + "\n")


@app.command()
def run(
    config: ConfigOpt,
    once: Annotated[bool, typer.Option(help="Tick every metric once, deliver, exit.")] = False,
    log_level: LogLevel = "info",
    log_format: LogFormat = "auto",
) -> None:
    """Run the monitor: poll, detect and alert on schedule until SIGINT/SIGTERM.

    Exit codes with --once: 0 when every metric ticked, even if some notifications failed \
to send with an error that may pass (timeout, 429, 5xx): they stay pending in the outbox, \
a warning says how many, and the next run retries them; 1 when a tick failed, a \
notification was dead-lettered (it will never be sent) or the store or executor could not be \
opened; 2 for a bad option or config."""
    from alerts.cli import start_feedback
    from monitor.executor import WaitingExecutor
    from monitor.pipeline import Pipeline
    from monitor.scheduler import Scheduler

    _setup_logging(log_level, log_format)
    cfg = _load(config)
    _refuse_all_paused(cfg, config)
    store = _open_store(cfg)
    from dashboards.telemetry import Telemetry  # exporter: /metrics, /healthz, /readyz

    fits = _open_fit_executor(cfg, store)
    clock = SystemClock()  # one clock: /readyz ages the ticks by the time the pipeline keeps
    telemetry = Telemetry(cfg, store, clock=clock)
    on_tick = telemetry.chain(_log_tick)
    # --once exits after the tick: its fits must land in that tick's checkpoint.
    fit_executor = (WaitingExecutor(fits.executor, where=fits.description, clock=clock)
                    if once else fits.executor)
    pipeline = Pipeline(cfg, store, clock=clock, console=console,
                        sources=telemetry.sources, fit_executor=fit_executor)
    try:
        if once:
            results = [pipeline.tick(m.name) for m in cfg.active_metrics]
            for r in results:
                on_tick(r)
                if r.skipped:
                    logging.getLogger("cxmon.tick").info("%s: nothing to do (%s)",
                                                         r.metric, r.skipped)
            # Every metric has ticked: a new incident's first message has nothing more to
            # wait for (group_wait), and this process will not be here when it is due.
            report = pipeline.deliver(group_wait=True)
            telemetry.on_deliver(report)
            failed = [r.metric for r in results if r.error]
            if failed or report.dead:
                dead = f", {report.dead} notification(s) dead-lettered" if report.dead else ""
                err_console.print(
                    f"[bold red]{len(failed)} of {len(results)} tick(s) failed{dead}[/]"
                )
                raise typer.Exit(1)
            if report.retried:  # exit 0: the next run retries them (see --help)
                err_console.print(
                    f"[yellow]{report.retried} notification(s) could not be sent and stay "
                    "pending in the outbox; the next run retries them (cxmon alerts status)[/]"
                )
            return
        logging.getLogger(__name__).info(
            "cxmon running: %d metric(s)%s, store %s; Ctrl-C to stop",
            len(cfg.active_metrics), _paused_note(cfg), store.url_redacted,
        )
        telemetry.serve()
        # Slack buttons, if alerting.feedback is set
        feedback = start_feedback(cfg, store, registry=telemetry.exporter.registry)
        try:
            Scheduler(pipeline, on_tick=on_tick,
                      on_deliver=telemetry.on_deliver).run_until_stopped()
        finally:
            if feedback is not None:
                feedback.stop()
    finally:
        telemetry.stop()
        pipeline.close()
        fits.close()
        store.close()


def _open_fit_executor(cfg: MonitorConfig, store: Store) -> FitExecutor:
    """The ``executor:`` for slow model fits; exit 1 if a Dask scheduler is unreachable."""
    from monitor.executor import open_executor

    try:
        fits = open_executor(cfg.executor)
    except (OSError, TimeoutError) as exc:
        err_console.print(f"[bold red]executor:[/] cannot reach the Dask scheduler: "
                          f"{escape(str(exc) or type(exc).__name__)}")
        store.close()
        raise typer.Exit(1) from None
    logging.getLogger(__name__).info("model fits run: %s", fits.description)
    return fits


def _log_tick(result: TickResult) -> None:
    """One line per completed tick (failures are logged once, by the pipeline)."""
    log = logging.getLogger("cxmon.tick")
    if not result.error and not result.skipped:
        log.info(
            "%s: %s..%s rows=%d stored=%d rejected=%d anomalies=%d",
            result.metric, _hm(result.since), _hm(result.until), result.rows_in,
            result.rows_stored, sum(result.rejected.values()), len(result.anomalies),
        )


def _print_table(table: Table) -> None:
    """Print a table; not to a terminal (a pipe, a file): one row per line, however long."""
    if _is_tty(sys.stdout):
        console.print(table)
    else:
        Console(file=console.file, width=_table_width(table)).print(table)


def _table_width(table: Table) -> int:
    """The width a table needs to print every row on one line."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update(width=10_000), table).maximum


def _hm(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M") if ts else "-"


def _hms(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"


@app.command()
def demo(
    once: Annotated[
        bool, typer.Option(help="Stop after replaying history instead of polling live.")
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(help="Store URL (default: a fresh SQLite file in a temp dir)."),
    ] = None,
    anchor: Annotated[
        str | None,
        typer.Option(help="Day 0 of the demo data, a UTC date such as 2026-01-05 "
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
    log_level: LogLevel = "warning",
) -> None:
    """Replay a few weeks of a simulated retailer's KPIs, print the alerts, then poll live."""
    from monitor.pipeline import Pipeline
    from monitor.scheduler import Scheduler, replay
    from sources.demo import HOLIDAY_DAYS, default_anchor, incidents_at

    _setup_logging(log_level)
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
        f"  {cxmon} backtest -c {demo_yaml} {period}   # the same 4 weeks, replayed",
        highlight=False, soft_wrap=True,
    )


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
        f"{len(incidents)} incidents ({len(others)} matching no scripted incident), "
        f"{len(anomalies)} anomalous points; outbox: {counts.get('sent', 0)} sent, "
        f"{counts.get('pending', 0)} pending, {counts.get('dead', 0)} dead"
    )


def _g(x: object) -> str:
    """A number in 4 significant digits (anything else as is)."""
    return f"{x:.4g}" if isinstance(x, int | float) else str(x)


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


@app.command()
def backtest(
    config: ConfigOpt,
    start: Annotated[str, typer.Option(
        metavar="<time>", help="First bucket to replay (ISO 8601, UTC; e.g. 2026-01-05 or "
                               "2026-01-05T06:00Z).")],
    end: Annotated[str, typer.Option(metavar="<time>",
                                     help="End of the replay, exclusive (ISO 8601, UTC); "
                                     "an end after now stops at now.")],
    metric: Annotated[
        list[str] | None, typer.Option(metavar="<name>",
                                       help="Only this metric (repeatable).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write anomalies to this .csv or .json file.")
    ] = None,
    incidents: Annotated[
        Path | None, typer.Option(
            help="CSV of incidents known to have happened (columns start,end[,metric]"
                 "[,labels][,name]): also report incidents found/missed, time to detect, "
                 "false episodes, precision and recall.")
    ] = None,
    incidents_json: Annotated[
        Path | None, typer.Option(
            help="With --incidents: also write that report to this .json file.")
    ] = None,
    no_feedback: Annotated[
        bool, typer.Option("--no-feedback",
                           help="Ignore the feedback verdicts in the store (`cxmon feedback`, "
                                "Slack buttons), to compare with the default, which applies "
                                "them as `cxmon run` would now.")
    ] = False,
) -> None:
    """Replay history through the detectors (no look-ahead).

    Like a metric's first live tick, the detectors first learn from the metric's `history:`
    before --start. Feedback stored so far (not_anomaly, expected, confirmed) applies as in
    `cxmon run`: from just after the anomaly it refers to. Nothing is stored or sent. Prints a
    table of anomalies and a summary (with what the feedback suppressed); with --incidents,
    how well they match incidents known to have happened.

    Example: cxmon backtest -c cxmon.yaml --start 2026-01-01 --end 2026-02-01 --no-feedback"""
    from monitor.backtest import run_backtest
    from monitor.backtest_incidents import IncidentsError, load_incidents

    cfg = _load(config)
    t0, t1 = _parse_time(start, "'--start'"), _parse_time(end, "'--end'")
    if t1 <= t0:
        raise typer.BadParameter(f"must be after --start ({start})", param_hint="'--end'")
    now = SystemClock().now()
    if t0 >= now:
        raise typer.BadParameter(f"{start} is after now ({_hm(now)} UTC): there is no data "
                                 "to replay yet", param_hint="'--start'")
    if t1 > now:  # sources have no data after now; the demo's would be made up
        err_console.print(f"warning: --end {escape(end)} is after now: the backtest stops at now "
                          f"({_hm(now)} UTC)", highlight=False, soft_wrap=True)
        t1 = now
    names = metric or [m.name for m in cfg.metrics]  # paused ones too: tune before enabling
    unknown = [n for n in names if n not in {m.name for m in cfg.metrics}]
    if unknown:
        raise typer.BadParameter(
            unknown_metric_message(unknown, [m.name for m in cfg.metrics]),
            param_hint="'--metric'")
    if output is not None:
        if output.suffix.lower() not in (".csv", ".json"):
            raise typer.BadParameter(f"{output} must end in .csv or .json",
                                     param_hint="'--output'")
        if not output.parent.exists():
            raise typer.BadParameter(f"no directory {output.parent}", param_hint="'--output'")
        if output.is_dir():  # found now, not after the whole replay (as a traceback)
            raise typer.BadParameter(f"{output} is a directory", param_hint="'--output'")
    if incidents_json is not None:
        if incidents is None:
            raise typer.BadParameter("needs --incidents", param_hint="'--incidents-json'")
        if incidents_json.suffix.lower() != ".json":
            raise typer.BadParameter("must end in .json", param_hint="'--incidents-json'")
        if not incidents_json.parent.exists() or incidents_json.is_dir():
            raise typer.BadParameter(f"cannot write {incidents_json}",
                                     param_hint="'--incidents-json'")
    known = None
    if incidents is not None:  # checked before the replay: a typo costs seconds, not minutes
        try:
            known = load_incidents(incidents, {m.name for m in cfg.metrics})
        except IncidentsError as exc:
            err_console.print(f"[bold red]--incidents:[/] {escape(str(exc))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(2) from None
    from monitor.frames import FrameError
    from sources.base import SourceError

    feedback = None if no_feedback else _stored_feedback(cfg, names)
    try:
        result = run_backtest(cfg, names, t0, t1, progress_console=console, feedback=feedback)
    except (SourceError, FrameError) as exc:
        err_console.print(f"[bold red]backtest failed:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    frame = result.anomalies
    tty = _is_tty(sys.stdout)
    if frame.empty:
        console.print(f"no anomalies {_hm(t0)} – {_hm(t1)} UTC", soft_wrap=True)
    else:
        table = Table(title=f"Anomalies {_hm(t0)} – {_hm(t1)} UTC")
        table.add_column("time", no_wrap=True)
        table.add_column("series", overflow="fold", ratio=1)
        for col in ("value", "expected", "band", "sev"):
            table.add_column(col, justify="right", no_wrap=True)
        for row in frame.head(50).itertuples():
            if row.kind == "no_data":  # a silence, not a value: "no data" and the last one
                table.add_row(_hm(row.timestamp), row.series, "no data",
                              f"last {_g(row.expected)}", "", str(row.severity))
                continue
            table.add_row(_hm(row.timestamp), row.series, f"{row.value:.4g}",
                          f"{row.expected:.4g}", f"{row.lower:.4g} – {row.upper:.4g}",
                          str(row.severity))
        _print_table(table)
    if len(frame) > 50:
        console.print(f"... and {len(frame) - 50} more (use --output to get them all)")
    for name, s in result.summary.items():
        rejected = ", ".join(f"{n} {why}" for why, n in sorted(s["rejected"].items()))
        console.print(
            f"[bold]{name}[/] ({_hm(s['start'])} – {_hm(s['end'])} UTC, whole buckets): "
            f"{s['rows']} rows, {s['points']} points in {s['series']} series, "
            f"{s['anomalies']} anomalies"
            + (f" in {s['episodes']} episode(s) of {s['buckets']} bucket(s)" if s["anomalies"]
               else "")
            + (f", rejected rows: {rejected}" if rejected else ""),
            soft_wrap=not tty,
        )
        if not s["rows"]:
            # "no anomalies" over a range the data does not cover (a wrong year, a file that
            # ends earlier) reads like "all normal": say that nothing was scored
            console.print(f"[yellow]{name}: the source returned no rows for this range, so "
                          "nothing was scored; check --start/--end (UTC) against the times in "
                          "your data[/]", soft_wrap=not tty, highlight=False)
        if name in result.warmup:
            console.print(f"[yellow]{name}: {escape(result.warmup[name])}[/]", soft_wrap=not tty)
        if s.get("calendar"):
            console.print(f"{name}: {_calendar_line(s['calendar'], s.get('calendar_learners'))}",
                          soft_wrap=not tty,
                          highlight=False)
        if s.get("calendar_unmatched"):
            label, unmatched, seen = s["calendar_unmatched"]
            console.print(
                f"[yellow]{name}: calendar.by.values {', '.join(map(repr, unmatched))} matched "
                f"no series ({label} values seen: {escape(', '.join(seen))}); series of "
                "other values follow the top-level calendar[/]", soft_wrap=not tty,
                highlight=False)
        if s.get("feedback", {}).get("stored"):
            console.print(f"{name}: {_feedback_line(s)}", soft_wrap=not tty, highlight=False)
    if no_feedback:
        console.print("feedback: not applied (--no-feedback)")
    elif feedback is not None and not any(s["feedback"]["stored"]
                                          for s in result.summary.values()):
        console.print("feedback: none stored on these metrics' anomalies "
                      "(`cxmon feedback ID LABEL` records some)", highlight=False)
    if output:
        out = frame.assign(timestamp=frame["timestamp"].map(lambda t: t.isoformat()))
        try:
            if output.suffix.lower() == ".json":
                output.write_text(out.to_json(orient="records", indent=1))
            else:
                out.to_csv(output, index=False)
        except OSError as exc:  # the replay is done: say why its result could not be kept
            err_console.print(f"[bold red]cannot write {escape(str(output))}:[/] "
                              f"{escape(exc.strerror or str(exc))}")
            raise typer.Exit(1) from None
        console.print(f"wrote {len(frame)} anomalies to {output}")
    if known is not None:
        _report_incidents(result, known, incidents_json, tty)


def _stored_feedback(config: MonitorConfig,
                     names: list[str]) -> dict[str, list[Verdict]] | None:
    """The feedback verdicts stored on the metrics' anomalies, for a backtest to apply.
    None (with a warning) when there is no store yet: backtesting before the first
    `cxmon run` is normal, and nothing is created to find that out."""
    from monitor.backtest import stored_verdicts
    from monitor.store import Store

    file = _store_file(config)
    if file is not None and not file.exists():
        err_console.print(f"warning: no store at {escape(str(file.resolve()))}: no "
                          "feedback applied", highlight=False, soft_wrap=True)
        return None
    store = Store(config.store.url)
    try:
        if not store.has_schema():
            err_console.print(f"warning: no store at {escape(store.url_redacted)} (no cxmon "
                              "tables): no feedback applied", highlight=False, soft_wrap=True)
            return None
        store.migrate()  # an older store's tables, as every command reading it does
        return stored_verdicts(store, names)
    except StoreError as exc:
        err_console.print(f"[bold red]store:[/] {escape(str(exc))} (--no-feedback replays "
                          "without the stored feedback)", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        store.close()


def _calendar_line(days: dict[str, tuple[str, str]], learners: list[str] | None = None) -> str:
    """The calendar days a backtest met, for its summary (``learners``: detectors that model
    holidays themselves and learn the days all the same)."""
    skipped = [f"{d} {name}" for d, (name, mode) in days.items() if mode == "skip"]
    scored = [f"{d} {name}" for d, (name, mode) in days.items() if mode == "score"]
    parts = []
    if skipped:
        parts.append(f"not scored or learned on {len(skipped)} calendar day(s) "
                     f"({_first(skipped)})")
    if scored:
        parts.append(f"scored but not learned on {len(scored)} ({_first(scored)})")
    if learners:
        parts.append(f"learned all the same by {', '.join(learners)}")
    return "; ".join(parts)


def _first(items: list[str], shown: int = 6) -> str:
    """The first ``shown`` items, and how many more (a year of holidays in several regions
    would otherwise make one summary line of hundreds of dates; `cxmon calendar` lists them).

    >>> _first(["a", "b", "c"], 2)
    'a, b, +1 more'
    """
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f", +{more} more" if more > 0 else "")


def _feedback_line(stats: dict[str, Any]) -> str:
    """What the stored verdicts did to one metric's replay, for the backtest summary."""
    fb = stats["feedback"]
    if not (fb["in_force"] or fb["suppressed"] or fb["added"]):
        # "feedback applied: 0 of 1 ...; 0 anomalies suppressed (--no-feedback: the same)"
        # read as if something had been applied; say why none acted here instead
        return (f"feedback: 0 of {fb['stored']} stored verdict(s) in force in the range, "
                "nothing changed (a verdict acts from just after its anomaly: not_anomaly "
                "for 7 days, expected that day and at that hour for 4 weeks; confirmed "
                "cancels them)")
    labels = ", ".join(f"{n} {label}" for label, n in sorted(fb["labels"].items()))
    line = (f"feedback applied: {fb['in_force']} of {fb['stored']} stored verdict(s) in force "
            f"in the range" + (f" ({labels})" if labels else ""))
    line += f"; {fb['suppressed']} anomalies suppressed"
    if fb["added"]:
        line += f", {fb['added']} added"
    line += (f" (--no-feedback: {fb['anomalies_without']} anomalies in "
             f"{fb['episodes_without']} episode(s))")
    if fb.get("unmatched"):
        line += (f"; {fb['unmatched']} of the verdicts in force are on series this replay "
                 "does not produce (were the metric's dimensions or labels changed?): they "
                 "apply to nothing")
    return line


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _report_incidents(result: BacktestResult, known: list[KnownIncident], path: Path | None,
                      tty: bool) -> None:
    """Print (and with --incidents-json write) how a backtest's anomalies match known
    incidents: see monitor/backtest_incidents.py for the rule."""
    from monitor.backtest_incidents import score_incidents
    from monitor.durations import format_duration

    spans = {name: (s["start"], s["end"], s["interval"]) for name, s in result.summary.items()}
    report = score_incidents(result.anomalies, known, spans)

    def ttd(detect: list[timedelta], pick: Callable[[list[timedelta]], timedelta]) -> str:
        return format_duration(pick(detect)) if detect else "-"

    def median_td(ds: list[timedelta]) -> timedelta:
        return timedelta(seconds=statistics.median(d.total_seconds() for d in ds))

    table = Table(title="Known incidents (found: an anomaly within [start, end + 1 interval))")
    table.add_column("metric", overflow="fold", ratio=1)
    for col in ("incidents", "found", "missed", "detect median", "detect max", "episodes",
                "false", "precision", "recall"):
        table.add_column(col, justify="right", no_wrap=True)
    rows = [*report.metrics.items(), ("all", report.overall)]
    for name, s in rows:
        table.add_row(f"[bold]{escape(name)}[/]" if name == "all" else escape(name),
                      str(s.incidents), str(s.found), str(len(s.missed)),
                      ttd(s.detect, median_td), ttd(s.detect, max), str(s.episodes),
                      str(s.false_episodes), _pct(s.precision), _pct(s.recall))
    if tty and _table_width(table) > console.width:
        # ten columns do not fit an 80-column terminal: rich squeezed the metric column to
        # nothing and cut the numbers ("10…"), so say each row as a line instead
        console.print(table.title, highlight=False, soft_wrap=False)
        for name, s in rows:
            console.print(
                f"{escape(name)}: found {s.found} of {s.incidents} incident(s) "
                f"({len(s.missed)} missed), detect median {ttd(s.detect, median_td)}, "
                f"max {ttd(s.detect, max)}; {s.episodes} episode(s), {s.false_episodes} "
                f"false; precision {_pct(s.precision)}, recall {_pct(s.recall)}",
                highlight=False)
    else:
        _print_table(table)
    for inc in report.overall.missed:
        where = ", ".join(filter(None, [inc.metric or "any metric",
                                        ";".join(f"{k}={v}" for k, v in inc.labels)]))
        console.print(f"[red]missed:[/] {escape(inc.label)} ({_hm(inc.start)} – {_hm(inc.end)} "
                      f"UTC, {escape(where)}, row {inc.row})", soft_wrap=not tty,
                      highlight=False)
    for inc, why in report.skipped:
        err_console.print(f"warning: incident {escape(inc.label)} (row {inc.row}) left out: "
                          f"{escape(why)}", highlight=False, soft_wrap=True)
    if path is not None:
        try:
            path.write_text(json.dumps(report.as_dict(), indent=1))
        except OSError as exc:
            err_console.print(f"[bold red]cannot write {escape(str(path))}:[/] "
                              f"{escape(exc.strerror or str(exc))}")
            raise typer.Exit(1) from None
        console.print(f"wrote the incident report to {path}")


def unknown_metric_message(unknown: list[str], defined: list[str]) -> str:
    """``unknown metric 'x' (did you mean 'y'?); defined: ...``: every ``--metric`` option
    says it the same way, with the close name for a typo, so the fix needs no trip to the
    config file.

    >>> unknown_metric_message(["contact_volum"], ["contact_volume", "csat"])
    "unknown metric 'contact_volum' (did you mean 'contact_volume'?); defined: contact_volume, csat"
    >>> unknown_metric_message(["a", "b"], ["kpi"])
    "unknown metric(s): 'a', 'b'; defined: kpi"
    """
    import difflib

    if len(unknown) == 1:
        close = difflib.get_close_matches(unknown[0], defined, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        head = f"unknown metric {unknown[0]!r}{hint}"
    else:
        head = f"unknown metric(s): {', '.join(map(repr, unknown))}"
    return f"{head}; defined: {', '.join(defined)}"


@app.command("anomalies")
def anomalies_list(
    config: ConfigOpt,
    last: Annotated[int, typer.Option("--last", "-n", min=1,
                                      help="How many, newest first.")] = 20,
    metric: Annotated[str | None, typer.Option(help="Only this metric.")] = None,
) -> None:
    """List recent stored anomalies with their ids (for cxmon feedback ID LABEL)."""
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
    from alerts.display import Names

    rows = frame.iloc[::-1].head(last)
    names = Names.from_config(cfg)  # with display names: the series as people read it
    typer.echo(f"{'ID':32}  {'TIME (UTC)':16}  {'SEV':>3}  {'KIND':8}  {'VALUE':>10}  "
               f"{'EXPECTED':>10}  SERIES")
    for r in rows.itertuples():
        said = names.series(r.metric, r.labels if isinstance(r.labels, dict) else {}) \
            if names else r.series
        # a no-data anomaly's value is a silence length (metric) or NaN (series): say "-"
        silent = r.kind == "no_data"
        typer.echo(f"{r.id:32}  {_hm(r.ts):16}  {r.severity:>3}  {r.kind:8}  "
                   f"{'-' if silent else _g(r.value):>10}  "
                   f"{'-' if silent else _g(r.expected):>10}  {said}")
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


@alerts_app.command("status")
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
        for col in ("id", "status", "receiver", "incident", *(["group"] if names else []),
                    "attempts", "next attempt", "error / reason"):
            table.add_column(col, overflow="fold")

        def incident(key: str, group: Any) -> list[str]:
            return [key, escape(names.listed(group))] if names else [key]

        for w in waiting[:show]:
            what = {"opened": "first message", "updated": "update",
                    "resolved": "resolution"}.get(w.kind, w.kind)
            table.add_row("-", "waiting", w.receiver, *incident(w.incident_key, w.group), "0",
                          _hms(w.due), f"{what}: {w.timer}")
        for r in rows:
            why = r.reason if r.status == "suppressed" else (r.last_error or "")
            later = told.get((r.incident_key, r.receiver), 0)
            if r.status == "suppressed" and later > r.id:  # the mute ended and it was told
                why = f"{why}; told later (#{later})"
            # an expired lease (its worker died) holds nothing: it was shown as a claim
            if r.status == "pending" and r.lease_owner and r.lease_until and r.lease_until > now:
                why = f"claimed by {r.lease_owner} until {_hms(r.lease_until)}; {why}"
            # dead and suppressed rows are never attempted again
            table.add_row(str(r.id), r.status, r.receiver,
                          *incident(r.incident_key, (r.payload or {}).get("group")),
                          str(r.attempts),
                          _hms(r.next_attempt_at) if r.status == "pending" else "-",
                          (why or "").strip("; ")[:200])
        _print_table(table)
    if len(unsent) > len(rows):
        console.print(f"{len(unsent) - len(rows)} more not shown (--show)", highlight=False)
    st.close()


# --- command groups defined in other modules: one register line each, below this marker ---
from monitor.bench.cli import bench_app  # noqa: E402

app.add_typer(bench_app, name="bench")
__import__("monitor.cli_alerting").cli_alerting.register(app)  # routes test, silence
__import__("monitor.cli_dashboards").cli_dashboards.register(app)  # dashboards build, push
__import__("monitor.cli_rca").cli_rca.register(app)  # rca
__import__("monitor.cli_sources").cli_sources.register(app)  # backfill
__import__("alerts.cli").cli.register(app, alerts_app)  # alerts deliver, serve-feedback
__import__("monitor.cli_score").cli_score.register(app)  # score, feedback
__import__("monitor.cli_import").cli_import.register(app)  # import lookout
__import__("monitor.cli_calendar").cli_calendar.register(app)  # calendar


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["app", "main"]
