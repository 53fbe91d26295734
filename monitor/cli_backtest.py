"""``cxmon backtest``: replay history through the detectors, optionally scored against
known incidents."""

from __future__ import annotations

import json
import statistics
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from monitor.cli_options import ConfigOpt
from monitor.clock import SystemClock
from monitor.config import MonitorConfig
from monitor.errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Callable

    from detectors.feedback import Verdict
    from monitor.backtest import BacktestResult
    from monitor.backtest_incidents import KnownIncident


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
        Path | None, typer.Option(help="Write anomalies to this .csv or .json file (raw "
                                  "numbers; the table prints them as alerts do).")
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

    Like a metric's first live tick, the detectors first learn from the metric's `history:` \
before --start. Feedback stored so far (not_anomaly, expected, confirmed) applies as in \
`cxmon run`: from just after the anomaly it refers to. Nothing is stored or sent. Prints a \
table of anomalies and a summary (with what the feedback suppressed); with --incidents, \
how well they match incidents known to have happened.

    Example: cxmon backtest -c cxmon.yaml --start 2026-01-01 --end 2026-02-01 --no-feedback"""
    from monitor.backtest import run_backtest
    from monitor.backtest_incidents import IncidentsError, load_incidents
    from monitor.cli import (
        _g,
        _hm,
        _is_tty,
        _load,
        _parse_time,
        _print_table,
        console,
        err_console,
        unknown_metric_message,
    )

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
            known = load_incidents(incidents, {m.name for m in cfg.metrics}, labels={
                m.name: {*m.dimensions, *m.split_by, *m.labels} for m in cfg.metrics})
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
        from alerts.anomaly_text import AnomalyText

        table = Table(title=f"Anomalies {_hm(t0)} – {_hm(t1)} UTC")
        # numbers as the alert says them (58.7%, 3.10 / 5, 42 tickets; bands clamped to the
        # metric's possible values); --output keeps the detector's raw numbers for machines
        words = AnomalyText.from_config(cfg)
        # each time on display.timezone's clock, as alerts say it (2026-03-30 09:00 CEST)
        reading = words.names

        def when(metric: str, ts: Any) -> str:
            return _hm(ts) if reading.timezone == "UTC" else reading.at(
                {"metric": metric, "timestamp": ts})

        # a metric with several detectors has a row per detector that flagged a point: the
        # same time and series twice with two expected values, told apart only by this
        by_detector = frame["detector"].dropna().nunique() > 1
        table.add_column("time", no_wrap=True)
        table.add_column("series", overflow="fold", ratio=1)
        if by_detector:
            table.add_column("detector", no_wrap=True)
        for col in ("value", "expected", "band", "sev"):
            table.add_column(col, justify="right", no_wrap=True)
        for row in frame.head(50).itertuples():
            lead = [when(row.metric, row.timestamp), row.series]
            if by_detector:
                lead.append(row.detector if isinstance(row.detector, str) else "")
            if row.kind == "no_data":  # a silence, not a value: "no data" and the last one
                table.add_row(*lead, "no data", f"last {_g(row.expected)}", "",
                              str(row.severity))
                continue
            text = words.text(row)
            table.add_row(*lead, text["value"], text["expected"], text["band"],
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
    from monitor.cli import _store_file, err_console
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
    from monitor.cli import _hm, _print_table, _table_width, console, err_console
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


def register(app: typer.Typer) -> None:
    """Add ``backtest`` to the ``cxmon`` app."""
    app.command("backtest")(backtest)
