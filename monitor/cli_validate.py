"""``cxmon validate`` (check a config, optionally poll its metrics once) and
``cxmon config-schema``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from monitor.cli_options import ConfigOpt
from monitor.clock import SystemClock
from monitor.config import MonitorConfig, config_json_schema, display_warnings


def validate(
    config: ConfigOpt,
    poll: Annotated[bool, typer.Option(
        "--poll", help="Also poll the latest buckets of every metric once and check the rows "
        "as a tick would (columns, timestamps, values); nothing is stored. Exit 1 if a poll "
        "fails.")] = False,
    intervals: Annotated[int, typer.Option(
        min=1, max=10_000, help="With --poll: how many of the latest buckets.")] = 3,
    show: Annotated[bool, typer.Option(
        "--show", help="Print the effective config as YAML on stdout (include: files "
        "merged, ${VAR}s replaced, defaults filled, every secret masked as ***); the summary "
        "and warnings go to stderr.")] = False,
    section: Annotated[str | None, typer.Argument(
        metavar="SECTION", show_default=False,
        help="With --show: print one part, a dotted path such as metrics.NAME, sources.NAME, "
             "alerting.receivers.NAME or store.")] = None,
) -> None:
    """Check a config file; print every problem with its path (exit 2 if any).

    \b
    Examples:
      cxmon validate -c cxmon.yaml
      cxmon validate -c cxmon.yaml --poll --intervals 24
      cxmon validate -c cxmon.yaml --show > effective.yaml
      cxmon validate -c cxmon.yaml --show metrics.checkout_dropoff_rate"""
    from monitor.cli import _load, console, err_console

    if section is not None and not show:
        raise typer.BadParameter(f"{section!r} is a section to show: add --show",
                                 param_hint="SECTION")
    if show and poll:
        raise typer.BadParameter("--show and --poll: one at a time (--show prints YAML "
                                 "only)", param_hint="--show")
    cfg = _load(config)
    shown = None
    if show:
        from monitor.config.effective import ShowPathError, effective_yaml

        try:
            shown = effective_yaml(cfg, section)
        except ShowPathError as exc:
            raise typer.BadParameter(exc.args[0], param_hint="SECTION") from None
        console = err_console  # stdout is the YAML alone: `--show > effective.yaml`
    console.print(
        f"[green]✓[/] {escape(str(config))}: {len(cfg.sources)} source(s), "
        f"{len(cfg.metrics)} metric(s){escape(_paused_note(cfg))}, "
        f"{len(cfg.used_detectors()) + len(cfg.unused_detectors())} detector(s), "
        f"{len(cfg.alerting.receivers)} receiver(s)",
        soft_wrap=True,  # one line, also in a log or a pipe
    )
    from alerts.routing import route_warnings  # a matcher no alert can satisfy: a typo

    for where, text in [*missing_files(cfg), *sql_warnings(cfg), *short_histories(cfg),
                        *utc_clocks(cfg), *utc_days(cfg), *display_warnings(cfg),
                        *unused_detectors(cfg), *route_warnings(cfg.alerting, cfg.metrics)]:
        console.print(f"[yellow]warning[/] {escape(cfg.shown_path(where))}: {escape(text)}",
                      soft_wrap=True)
    if (line := _calendar_summary(cfg)) is not None:
        console.print(line, soft_wrap=True, highlight=False)
    if shown is not None:
        sys.stdout.write(shown)
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


def _poll_metrics(cfg: MonitorConfig, intervals: int) -> None:
    """``validate --poll``: one line per metric; exit 1 when any poll failed."""
    from monitor.cli import console, err_console
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


def unused_detectors(cfg: MonitorConfig) -> list[tuple[str, str]]:
    """``(config path, message)`` for every detector the file defines that no metric lists:
    not an error (one kept for later), but a tuned detector that scores nothing is more often
    a metric's ``detectors:`` that still names another one."""
    return [(f"detectors.{name}", f"no metric lists {name!r} in its detectors, so it scores "
             "nothing" + ("" if name != "default" else
                          " (every metric lists its detectors)"))
            for name in cfg.unused_detectors()]


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


def utc_clocks(cfg: MonitorConfig) -> list[tuple[str, str]]:
    """``(config path, message)`` for every sub-daily metric whose business lives in a zone
    the config names (its calendar's ``timezone``, or its source's for naive times) while
    its seasonal detectors learn the time of day on the UTC clock (no ``timezone``): each
    change of summer time then moves every peak an hour off what they learned, for a week
    of false alarms, and nothing else in the file says so."""
    out = []
    for i, m in enumerate(cfg.metrics):
        if m.timezone is not None or m.interval >= timedelta(days=1):
            continue
        if not any("timezone" in type(c).model_fields and "timezone" not in c.model_fields_set
                   for c in cfg.detectors_for(m).values()):
            continue
        cals = cfg.calendar_for(m)
        zone = cals.of(m.labels).config.timezone if cals is not None and hasattr(
            cals.of(m.labels), "config") else None
        source_zone = getattr(cfg.sources.get(m.source), "timezone", None)
        zone = zone if zone not in (None, "UTC") else source_zone
        if zone in (None, "UTC") or not _has_summer_time(zone):
            continue
        out.append((f"metrics[{i}]", f"its {'calendar' if zone != source_zone else 'source'}"
                    f" is in {zone} but its detectors learn the time of day in UTC, so each "
                    f"change of summer time moves its daily peaks an hour off what they "
                    f"learned; set timezone: {zone}"))
    return out


def utc_days(cfg: MonitorConfig) -> list[tuple[str, str]]:
    """``(config path, message)`` for every metric with a ``timezone`` off UTC whose interval
    is a day or longer: its buckets are still UTC days (weeks from Thursday 00:00 UTC, the
    Unix epoch), so hourly or finer rows are summed over 01:00-01:00 in Berlin or
    19:00-19:00 in New York, not the local calendar day the ``timezone`` suggests. Rows
    dated per day (no time) keep their date, so only finer rows are affected."""
    from monitor.durations import format_duration

    out = []
    for i, m in enumerate(cfg.metrics):
        if m.timezone is None or m.interval < timedelta(days=1) or not _off_utc(m.timezone):
            continue
        out.append((f"metrics[{i}].interval",
                    f"buckets of {format_duration(m.interval)} are UTC days, not days in "
                    f"{m.timezone}: timezone sets its detectors' wall clock only, so rows "
                    "with a time of day are summed from 00:00 UTC; export one row per local "
                    "day (a date without a time keeps its date) to bucket by local days"))
    return out


def _off_utc(zone: str) -> bool:
    """Whether ``zone``'s clocks differ from UTC in winter or summer (Europe/London does)."""
    from zoneinfo import ZoneInfo

    year = datetime.now(UTC).year
    tz = ZoneInfo(zone)
    return any(datetime(year, month, 1, tzinfo=tz).utcoffset() for month in (1, 7))


def _has_summer_time(zone: str) -> bool:
    """Whether ``zone`` changes its clocks (Europe/Berlin does; Etc/GMT-1, Asia/Tokyo not)."""
    from zoneinfo import ZoneInfo

    year = datetime.now(UTC).year
    tz = ZoneInfo(zone)
    return datetime(year, 1, 1, tzinfo=tz).utcoffset() != datetime(year, 7, 1,
                                                                    tzinfo=tz).utcoffset()


def sql_warnings(cfg: MonitorConfig) -> list[tuple[str, str]]:
    """``(config path, message)`` for every ``sql`` source whose URL names a driver that is
    not installed (``mysql://`` is mysqlclient; the poll would fail), and every ``sql``
    metric whose query does not bound the polled range with ``:since`` and ``:until``: it
    works, but each tick reads the whole table and drops nearly all of it, which only
    showed as a ``before_cursor`` warning at every tick of ``run``."""
    from sources.sql import SqlSourceConfig, driver_problem, range_problem

    out = []
    for name, sc in cfg.sources.items():
        # not a config error: the file may be validated where the driver is not needed
        if isinstance(sc, SqlSourceConfig) and (problem := driver_problem(
                sc.url.get_secret_value())):
            out.append((f"sources.{name}.url", problem.removeprefix("url: ")))
    for i, m in enumerate(cfg.metrics):
        if isinstance(cfg.sources.get(m.source), SqlSourceConfig) and m.query and (
                problem := range_problem(m.query, m.timestamp)):
            out.append((f"metrics[{i}].query", problem))
    return out


def missing_files(cfg: MonitorConfig) -> list[tuple[str, str]]:
    """``(config path, message)`` for every ``files`` path or metric glob that matches no
    file now, and every Google Analytics ``credentials_file`` that does not exist: not an
    error (a drop folder may still be empty, a key may be mounted at start), but usually a
    typo or the wrong folder, which ``run`` would only reveal at its first tick."""
    from sources.base import SourceError
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
        globs = [(f"sources.{name}.path", None)] + [
            (f"metrics[{i}].query", m.query) for i, m in enumerate(cfg.metrics)
            if m.source == name and m.query]
        for where, query in globs:
            try:
                found = src.files(query)
            except SourceError as exc:  # an object store that cannot be listed from here
                out.append((where, f"{str(exc).removeprefix(f'source {name}: ')} (a tick "
                            "would fail the same way)"))
                break  # the same cause for every glob of this source
            if not found:
                gone = src.missing_bucket(query)
                out.append((where, f"no file matches {src.pattern(query)}"
                            f"{f': {gone}' if gone else ' (yet)'}"))
    return sorted(out, key=lambda w: not w[0].startswith("sources"))  # as in the file


def config_schema() -> None:
    """Print the config's JSON Schema (point your editor's YAML plugin at it)."""
    sys.stdout.write(json.dumps(config_json_schema(), indent=2) + "\n")


def register(app: typer.Typer) -> None:
    """Add ``validate`` and ``config-schema`` to the ``cxmon`` app."""
    app.command("validate")(validate)
    app.command("config-schema")(config_schema)
