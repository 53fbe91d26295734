"""``cxmon calendar``: the holidays and events the config's ``calendar:`` names, and what the
detectors will do on each (an analyst checks this before Christmas, not after)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli_options import ConfigOpt

_WHAT = {"skip": "not scored, not learned", "score": "scored and alerted, not learned"}


def calendar(
    config: ConfigOpt,
    start: Annotated[str | None, typer.Option(
        "--from", metavar="<date>",
        help="First date listed, YYYY-MM-DD (default: today in the calendar's time zone).")
    ] = None,
    days: Annotated[int, typer.Option(
        min=1, max=3660, metavar="<days>", help="How many days to look ahead.")] = 90,
) -> None:
    """List the calendar days ahead (holidays and events), what detectors do on each, and
    the metrics it applies to."""
    from monitor.cli import _load, _print_table, console

    cfg = _load(Path(config), needs={"calendar", "metrics", "detectors"})
    if cfg.calendar is None:
        console.print("no calendar: every day is an ordinary day (add a top-level "
                      "`calendar:` with holidays or events)", highlight=False)
        return
    applies = [m.name for m in cfg.metrics if m.calendar]
    cals = cfg.calendar_for(next(m for m in cfg.metrics if m.calendar)) if applies else None
    if cals is None:
        console.print("the calendar applies to no metric (every metric sets calendar: false)",
                      highlight=False)
        return
    if start is None:
        first = datetime.now(UTC).astimezone(cals.default.zone).date()
    else:
        try:
            first = date.fromisoformat(start)
        except ValueError:
            raise typer.BadParameter(f"{start!r} is not a date (YYYY-MM-DD)",
                                     param_hint="--from") from None
    last = first + timedelta(days=days - 1)
    from rich.table import Table

    found = sorted(((d, where or "other series", cal.config.timezone, day)
                    for where, cal in cals.all() for d, day in cal.days(first, last)),
                   key=lambda row: (row[0], row[1] != "other series", row[1]))
    table = Table(title=f"Calendar {first} – {last}")
    by = cals.label is not None
    for col in ("date", "day", *(("series", "time zone") if by else ()), "name", "mode",
                "detectors"):
        table.add_column(col, no_wrap=col != "name")
    for d, where, zone, day in found:
        table.add_row(d.isoformat(), d.strftime("%a"), *((where, zone) if by else ()),
                      day.name, day.mode, _WHAT[day.mode])
    if found:
        _print_table(table)
    else:
        console.print(f"no calendar days between {first} and {last}", highlight=False)
    if by:
        own = ", ".join(f"{cals.label}={v}" for v in cals.values())
        totals = [m.name for m in cfg.metrics if m.calendar and cals.label in m.dimensions]
        console.print(f"series with {own} follow their own calendar"
                      + (f"; the totals over {cals.label} ({', '.join(totals)}) are off on any "
                         f"of those days" if totals else "")
                      + "; the other series follow the top-level one",
                      highlight=False, soft_wrap=True)
    modelling = sorted({d for m in cfg.metrics if m.calendar for d in m.detectors
                        if getattr(cfg.detectors.get(d), "holidays", None)
                        or getattr(cfg.detectors.get(d), "events", None)})
    if modelling:
        console.print(f"detector(s) {', '.join(modelling)} model holidays or events of their "
                      "own and learn these days all the same (a skip day is still not scored)",
                      highlight=False, soft_wrap=True)
    positional = sorted({d for m in cfg.metrics if m.calendar for d in m.detectors
                         if getattr(cfg.detectors.get(d), "type", None) == "novelty"})
    if positional:
        console.print(f"detector(s) {', '.join(positional)} (novelty) learn these days all the "
                      "same: their shapes are positions in their history (a skip day is still "
                      "not scored)", highlight=False, soft_wrap=True)
    skipped = [m.name for m in cfg.metrics if not m.calendar]
    console.print(f"applies to {len(applies)} metric(s)"
                  + (f"; not to {', '.join(skipped)} (calendar: false)" if skipped else ""),
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``cxmon calendar`` to the ``cxmon`` app."""
    app.command("calendar")(calendar)
