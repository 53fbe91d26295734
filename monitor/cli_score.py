"""``cxmon score`` (one series through one detector, from a CSV) and ``cxmon feedback``."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

from monitor.cli_options import ConfigOpt, input_name, read_input_text

SCORE_HELP = """Score one series with one detector, streaming, without look-ahead.

Reads --input (CSV with columns timestamp,value; timestamps in any ISO format, naive = UTC; \
- = stdin), feeds the rows in time order and writes them in time order to --output \
(- = stdout) with columns timestamp,value,anomaly_score, then any other columns of the input \
as they were (an input column anomaly_score is replaced). Rows out of time order in the input \
are sorted, not reported: they score as the sorted file would (lines with the same time keep \
their order). Messages go to stderr, so stdout is clean CSV.

A row's score uses rows at or before its time only. anomaly_score = 1 - p, p the detector's \
tail probability (0 while the detector is still warming up; empty for a value that is not a \
number, for a timestamp that is not a time and for a line that repeats an earlier line's \
timestamp: these are counted, reported with their lines and skipped, neither scored nor \
learned). Rows whose timestamp is not a time are written last, in input order. If no line's \
timestamp can be read, that is an error (exit 2). The last message counts the rows scored and \
those skipped, by why. A line with more fields than the header is \
reported and left out. Messages name lines of the input (the header is line 1). Points the \
default post-rules would flag (severity >= 25) are learned cautiously, as in 'cxmon run'.

Every detector type works with its defaults; --param k=v (repeatable, YAML values) sets its \
options, e.g. --detector river --param model=HalfSpaceTrees --param calibration=300. The \
interval is the median step of the timestamps unless --interval is given.

Example: cxmon score -d surprise -i in.csv -o scored.csv
"""


def _detector_help() -> str:
    import detectors  # noqa: F401  (registers the built-in types)
    from detectors.registry import detector_types

    return f"Detector type: {', '.join(sorted(detector_types()))}."


DETECTOR_HELP = _detector_help()  # from the registry, so a new type shows up in --help


#: Settings that may shorten a seasonal detector's warm-up, tried in this order.
_SHORTER = ({"warmup": "1d"}, {"season": "day"}, {"season": "day", "warmup": "1d"})


def shorter_warmups(detector: str, params: dict[str, Any], interval: timedelta,
                    need: object) -> list[str]:
    """The ``--param`` settings that give ``detector`` a warm-up shorter than ``need``, as
    typed: a hint that is true for this type and these params (``--param warmup=1d`` alone
    does not shorten ``seasonal_baseline``'s weekly slots, and was suggested when already
    given)."""
    from detectors.registry import create

    if not isinstance(need, timedelta):
        return []
    out: list[dict[str, str]] = []
    for extra in _SHORTER:
        if all(params.get(k) == v for k, v in extra.items()):
            continue  # already so
        if any(set(done) <= set(extra) for done in out):
            continue  # a part of it already helps
        try:
            det = create({"type": detector, **params, **extra}, interval=interval)
        except (ValueError, TypeError, KeyError):
            continue  # an option this type does not have
        period = getattr(det, "warmup_period", None)
        if isinstance(period, timedelta) and period < need:
            out.append(extra)
    return [" ".join(f"--param {k}={v}" for k, v in e.items()) for e in out]


def score_frame(frame: pd.DataFrame, detector: str, params: dict[str, Any],
                interval: timedelta | None = None,
                progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Score ``frame`` (timestamp, value) point by point; returns it with ``anomaly_score``.

    Rows come out in time order (rows out of order in ``frame`` are sorted, equal times keep
    their order). A value that is not a number (``abc``, empty) is missing: it is not fed to
    the detector and its ``anomaly_score`` is NaN (written as an empty cell). So is a row
    whose timestamp is not a time; such rows come last, in their order in ``frame``
    (``attrs["no_time_rows"]``: which rows of ``frame``). ``attrs["scored_rows"]`` counts the
    rows fed (scored, or 0 while warming up) and ``attrs["skipped"]`` the others by why, so a
    message about "every score" can say which rows it means. ``progress(done, total)`` is
    called as points are fed (a long series through Prophet takes minutes).
    """
    import detectors  # noqa: F401  (registers the built-in types)
    from detectors.base import TickBatch
    from detectors.postrules import score_for_severity
    from detectors.registry import create

    ts = pd.to_datetime(frame["timestamp"], utc=True, format="mixed", errors="coerce")
    no_time = ts.isna().to_numpy()  # not a time: like a value that is not a number, not fed
    timed = np.flatnonzero(~no_time)
    timed_ns = ts.iloc[timed].dt.as_unit("ns").astype("int64").to_numpy()
    # time order (stable: equal times keep the file's order); rows without a time go last
    order = np.concatenate((timed[np.argsort(timed_ns, kind="stable")],
                            np.flatnonzero(no_time))).astype(np.int64)
    ts_ns = np.concatenate((np.sort(timed_ns, kind="stable"),
                            np.zeros(int(no_time.sum()), dtype=np.int64)))
    values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(np.float64)[order]
    values[len(timed):] = math.nan
    no_number = ~np.isfinite(values)  # before repeats are blanked: why a row is skipped
    # a second value for a time already seen is not fed: a stream has one value per time
    repeated = np.concatenate((repeated_times(ts_ns[:len(timed)]),
                               np.zeros(int(no_time.sum()), dtype=bool)))
    # the first line of each repeated time is the one fed; it may not be a number itself
    first = np.maximum.accumulate(np.where(repeated, 0, np.arange(len(values))))
    firsts = np.unique(first[repeated])
    unfed_firsts = firsts[~np.isfinite(values[firsts])]
    values[repeated] = math.nan
    step = median_step(ts_ns[:len(timed)])
    if interval is None:
        interval = step or timedelta(hours=1)
    det = create({"type": detector, **params}, interval=interval)
    flag_at = score_for_severity(25.0)
    key = np.array(["series"], dtype=object)
    nan = np.array([math.nan])
    scores = np.full(len(values), math.nan)
    warming: list[int] = []  # rows (time order) the detector could not score yet
    fed = np.flatnonzero(np.isfinite(values))
    for n, i in enumerate(fed):
        if progress is not None and n % 100 == 0:
            progress(n, len(fed))
        batch = TickBatch(key, ts_ns[i:i + 1], values[i:i + 1], nan)
        s = float(det.score(batch).score[0])
        if not math.isfinite(s):
            warming.append(int(i))
        scores[i] = s if math.isfinite(s) else 0.0
        det.learn(batch, np.array([math.isfinite(s) and s >= flag_at]))
    if progress is not None:
        progress(len(fed), len(fed))
    out = pd.DataFrame({"timestamp": frame["timestamp"].to_numpy()[order],
                        "value": frame["value"].to_numpy()[order], "anomaly_score": scores})
    for column in frame.columns:  # a label or an id column rides along (it was dropped)
        if column not in out.columns:
            out[column] = frame[column].to_numpy()[order]
    out.attrs["repeated_rows"] = np.sort(order[repeated])  # data rows, 0-based
    out.attrs["repeated_unfed_firsts"] = np.sort(order[unfed_firsts])  # ditto: firsts not fed
    out.attrs["no_time_rows"] = np.flatnonzero(no_time)  # data rows, 0-based
    out.attrs["median_step"] = step
    out.attrs["warming_rows"] = len(warming)
    out.attrs["scored_rows"] = len(fed)  # rows with an anomaly_score (0 while warming up)
    has_time = slice(0, len(timed))  # the rows without a time are the last ones
    out.attrs["skipped"] = skip_reasons(
        int(no_time.sum()), int(repeated.sum()),
        int((no_number[has_time] & ~repeated[has_time]).sum()))
    out.attrs["all_warming"] = bool(warming) and len(warming) == int(np.isfinite(values).sum())
    period = getattr(det, "warmup_period", None)  # a property on the seasonal detectors
    out.attrs["warmup"] = period() if callable(period) else period
    out.attrs["shorter"] = (shorter_warmups(detector, params, interval, out.attrs["warmup"])
                            if out.attrs["all_warming"] else [])
    out.attrs["last_warming"] = str(frame["timestamp"].to_numpy()[order][warming[-1]]) \
        if warming else None
    return out


def skip_reasons(no_time: int, repeated: int, not_number: int) -> dict[str, int]:
    """Rows skipped (empty anomaly_score), by why, each row counted once: a row without a
    time is not looked at further, a repeated time is a repeat whatever its value."""
    counts = {"unreadable timestamp": no_time, "repeated timestamp": repeated,
              "value not a number": not_number}
    return {why: n for why, n in counts.items() if n}


def skipped_text(skipped: dict[str, int]) -> str:
    """``12 rows skipped: 12 unreadable timestamp`` (empty when none was): the rows that a
    count of scored rows leaves out, so two numbers that differ say why.

    >>> skipped_text({"unreadable timestamp": 2, "value not a number": 1})
    '3 rows skipped: 2 unreadable timestamp, 1 value not a number'
    >>> skipped_text({"repeated timestamp": 1}), skipped_text({})
    ('1 row skipped: 1 repeated timestamp', '')
    """
    total = sum(skipped.values())
    if not total:
        return ""
    reasons = ", ".join(f"{n} {why}" for why, n in skipped.items())
    return f"{total} row{'s' if total > 1 else ''} skipped: {reasons}"


def _score_with_bar(frame: pd.DataFrame, detector: str, params: dict[str, Any],
                    interval: timedelta | None) -> pd.DataFrame:
    """:func:`score_frame` with a progress bar on stderr when it is a terminal (stdout may be
    the scored CSV, so nothing else may go there)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress("scoring", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("scoring", total=None)
        return score_frame(frame, detector, params, interval,
                           progress=lambda done, total: bar.update(task, completed=done,
                                                                   total=total))


def repeated_times(ts_ns: np.ndarray) -> np.ndarray:
    """True for every row (in time order) whose timestamp equals the previous row's: the
    first value for a time is scored, later ones are reported and left unscored.

    >>> repeated_times(np.array([1, 2, 2, 3, 3, 3])).tolist()
    [False, False, True, False, True, True]
    """
    return np.concatenate(([False], np.diff(ts_ns) == 0)) if len(ts_ns) else \
        np.zeros(0, dtype=bool)


def median_step(ts_ns: np.ndarray) -> timedelta | None:
    """The median positive step between sorted timestamps (ns), or None with fewer than 2."""
    steps = np.diff(np.sort(ts_ns))
    steps = steps[steps > 0]
    return timedelta(microseconds=float(np.median(steps)) / 1e3) if len(steps) else None


def not_numbers(values: pd.Series) -> pd.Series:
    """Which values are not numbers (``abc``, empty, ``nan``, ``inf``): True where missing."""
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    return pd.Series(~np.isfinite(numeric), index=values.index)


def slash_date_warning(stamps: pd.Series) -> str | None:
    """A warning for dates written ``04/05/2026``: pandas reads each one month first where it
    can and day first where it cannot (``13/05/2026``), so a day-first export has its days
    mixed up without any error. None when no timestamp is such an ambiguous date.

    >>> w = slash_date_warning(pd.Series(["04/05/2026 10:00", "13/05/2026 10:00"]))
    >>> w.split(": ", 1)[0]
    "timestamps such as '04/05/2026 10:00' are ambiguous"
    >>> "month first (2026-04-05)" in w and "('13/05/2026 10:00' is 2026-05-13)" in w
    True
    >>> slash_date_warning(pd.Series(["2026-05-04T10:00Z", "13/05/2026", "05/05/2026"])) is None
    True
    """
    from monitor.frames import year_last_parts

    parts = year_last_parts(stamps)
    first, second = parts["first"], parts["second"]
    ambiguous = parts[(first <= 12) & (second <= 12) & (first != second)]
    if ambiguous.empty:
        return None
    month, day, year = ambiguous.iloc[0]
    said = (f"timestamps such as {str(stamps.loc[ambiguous.index[0]]).strip()!r} are "
            f"ambiguous: read month first ({year:04d}-{month:02d}-{day:02d}) where that is a "
            "date and day first otherwise")
    day_first = parts[first > 12]
    if len(day_first):
        d, m, y = day_first.iloc[0]
        said += (f" ({str(stamps.loc[day_first.index[0]]).strip()!r} is "
                 f"{y:04d}-{m:02d}-{d:02d})")
    return said + (", so a day-first file gets its days mixed up; pass --date-order dmy (or "
                   "mdy), or write ISO 8601 (YYYY-MM-DDTHH:MM)")


def not_times(stamps: pd.Series) -> pd.Series:
    """Which timestamps cannot be read as a time (any ISO format, naive = UTC): True there.

    >>> not_times(pd.Series(["2026-01-05T10:00Z", "nope", "", "2026-01-05"])).tolist()
    [False, True, True, False]
    """
    ts = pd.to_datetime(stamps, utc=True, format="mixed", errors="coerce")
    return pd.Series(ts.isna().to_numpy(), index=stamps.index)


def parse_series_csv(text: str) -> tuple[pd.DataFrame, np.ndarray, list[int]]:
    """CSV text -> (frame of the cells as typed, the file line of each row, the lines skipped
    because they have more fields than the header).

    A line with too many fields cannot be matched to columns, so it is left out and reported,
    like other bad lines, instead of failing the whole file; a short line's missing cells are
    empty. Lines are counted in the file (header = line 1, blank lines count), so a message
    points at what an editor shows.

    >>> frame, lines, extra = parse_series_csv("timestamp,value\\n\\nt1,1\\nt2,2,9\\nt3\\n")
    >>> frame.to_dict("list"), lines.tolist(), extra
    ({'timestamp': ['t1', 't3'], 'value': ['1', '']}, [3, 5], [4])
    """
    import csv
    import io

    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    extra: list[int] = []
    end = 0  # last line read so far: a record starts on the line after
    for record in reader:
        start, end = end + 1, reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # a blank line is no row
        if header is None:
            header = [h.strip() for h in record]
            continue
        if len(record) > len(header):
            extra.append(start)
            continue
        rows.append(record + [""] * (len(header) - len(record)))
        lines.append(start)
    if header is None:
        raise ValueError("no header line")
    for name in ("timestamp", "value"):
        if header.count(name) > 1:
            raise ValueError(f"column {name!r} appears {header.count(name)} times in the header")
    frame = pd.DataFrame(rows, columns=header, dtype=object) if rows else \
        pd.DataFrame({h: pd.Series(dtype=object) for h in header})
    return frame, np.asarray(lines, dtype=np.int64), extra


def separator_hint(columns: Iterable[object]) -> str:
    """A hint when the header is one column holding ``;`` or tabs: the file uses another
    separator (a spreadsheet export in a comma-decimal locale), which "lacks column(s)
    timestamp, value" alone does not say.

    >>> separator_hint(["timestamp;value"]), separator_hint(["ts", "value"])
    (' (the header is one column holding ";": the file must be comma-separated)', '')
    """
    names = [str(c) for c in columns]
    for sep, shown in ((";", '";"'), ("\t", "tabs")):
        if len(names) == 1 and sep in names[0]:
            return f" (the header is one column holding {shown}: the file must be comma-separated)"
    return ""


def _read_csv(source: str) -> tuple[pd.DataFrame, np.ndarray, list[int]]:
    """``source`` (``-`` = stdin) through :func:`parse_series_csv`, or a one-line usage
    error."""
    import csv

    text = read_input_text(source)
    try:
        return parse_series_csv(text)
    except (ValueError, csv.Error) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise typer.BadParameter(f"{input_name(source)}: not a CSV ({first})",
                                 param_hint="--input") from None


def _lines(lines: Iterable[int], limit: int = 5) -> str:
    """``line 7`` / ``lines 3, 9, ...``: where rows are in the input file."""
    shown = [str(n) for n in lines]
    text = ", ".join(shown[:limit]) + (", ..." if len(shown) > limit else "")
    return f"line{'s' if len(shown) > 1 else ''} {text}"


def _said(cfg: Any, row: Any) -> str:
    """One stored anomaly as the alert said it: ``csat · Journey: Support at 2026-11-26 13:00
    UTC: 3.10 / 5 (expected 4.30 / 5, from 42 responses), severity 51``."""
    from alerts.anomaly_text import AnomalyText

    words = AnomalyText.from_config(cfg)
    labels = row.labels if isinstance(row.labels, dict) else {}
    text = words.text(row)
    what = (f"{text['value']} (expected {text.get('expected', '-')}"
            f"{', ' + text['volume'] if text.get('volume') else ''})"
            if text.get("value") else "no data")
    at = words.names.at({"metric": row.metric, "timestamp": row.ts})
    return (f"{words.names.series(row.metric, labels)} at {at}: {what}, "
            f"severity {row.severity}")


def register(app: typer.Typer) -> None:
    """Add ``score`` and ``feedback`` to the ``cxmon`` app."""

    @app.command("score", help=SCORE_HELP)
    def score(
        detector: Annotated[str, typer.Option(
            "--detector", "-d", metavar="<type>", help=DETECTOR_HELP)] = "robust_seasonal",
        param: Annotated[list[str] | None, typer.Option(
            "--param", "-p", metavar="<k=v>",
            help="Detector option k=v (repeatable), e.g. -p season=day.")] = None,
        input: Annotated[str, typer.Option(
            "--input", "-i", metavar="<path>",
            help="CSV with columns timestamp,value; - reads stdin.")] = "-",
        output: Annotated[str, typer.Option(
            "--output", "-o", metavar="<path>",
            help="CSV to write (timestamp,value,anomaly_score); - writes stdout.")] = "-",
        interval: Annotated[str | None, typer.Option(
            "--interval", metavar="<duration>",
            help="Series interval (e.g. 5m, 1h); default: median step.")] = None,
        date_order: Annotated[str | None, typer.Option(
            "--date-order", metavar="dmy|mdy",
            help="Read dates written 04/05/2026 day first (dmy: 4 May) or month first "
                 "(mdy: April 5); default: warn when they are ambiguous.")] = None,
    ) -> None:
        import sys

        from monitor.bench.nab import detector_config
        from monitor.durations import format_duration, parse_duration

        config = detector_config(detector, param or [])
        if output != "-" and not Path(output).parent.is_dir():
            raise typer.BadParameter(f"no directory {Path(output).parent}",
                                     param_hint="--output")
        if output != "-" and Path(output).is_dir():
            raise typer.BadParameter(f"{output} is a directory", param_hint="--output")
        try:
            step = parse_duration(interval) if interval else None
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--interval") from None
        if step is not None and step <= timedelta(0):
            # a detector divides by it: say so here, not in a traceback from its constructor
            raise typer.BadParameter(f"must be positive, got {interval}", param_hint="--interval")
        if date_order not in (None, "dmy", "mdy"):
            raise typer.BadParameter(f"{date_order!r}: dmy or mdy", param_hint="--date-order")
        frame, lines, extra = _read_csv(input)
        where = input_name(input)
        missing = {"timestamp", "value"} - set(frame.columns)
        if missing:
            # an export named its columns ts/contacts: show them, so the fix (rename the
            # header) is plain without opening the file
            hint = separator_hint(frame.columns) or (
                f" (its header: {', '.join(map(str, frame.columns))}; rename the time and value "
                "columns)")
            raise typer.BadParameter(f"{where} lacks column(s) {', '.join(sorted(missing))}"
                                     + hint, param_hint="--input")
        if date_order is not None and "timestamp" in frame.columns:  # read one way, said here
            from monitor.frames import in_date_order

            frame["timestamp"] = in_date_order(frame["timestamp"], date_order)  # type: ignore[arg-type]
        no_time = not_times(frame["timestamp"])
        if len(frame) and no_time.all():  # the wrong column or format, not a few bad rows
            first = frame["timestamp"].iloc[0]
            epoch = ("; Unix times are not read here: write ISO 8601, e.g. 2026-01-05T00:00Z"
                     if pd.notna(pd.to_numeric(pd.Series([first]), errors="coerce")[0]) else "")
            raise typer.BadParameter(
                f"{where} line {lines[0]}: not a time: {first!r} (no line has a timestamp "
                f"that can be read{epoch})", param_hint="--input")
        skipped = not_numbers(frame["value"]) & ~no_time  # a row without a time: said below
        slash = slash_date_warning(frame["timestamp"])
        if slash:
            typer.echo(f"warning: {slash}", err=True)
        params = {k: v for k, v in config.items() if k != "type"}
        out = _score_with_bar(frame, detector, params, step)
        median = out.attrs["median_step"]
        if step is not None and median is not None and abs(step - median) > 0.01 * median:
            typer.echo(f"warning: --interval {interval} but the data's median step is "
                       f"{format_duration(median)}: detectors that count points per day or "
                       f"week (seasonal channels, history as a duration) used {interval}",
                       err=True)
        if output == "-":
            out.to_csv(sys.stdout, index=False)
            sys.stdout.flush()
        else:
            try:
                out.to_csv(output, index=False)
            except OSError as exc:
                typer.echo(f"cannot write {output}: {exc.strerror or exc}", err=True)
                raise typer.Exit(1) from None
        if extra:
            typer.echo(f"{len(extra)} line(s) have more fields than the header "
                       f"({_lines(extra)}): skipped (not scored, not in the output)", err=True)
        if no_time.any():
            rows = np.flatnonzero(no_time.to_numpy())
            first = repr(frame["timestamp"].iloc[rows[0]])
            typer.echo(f"{len(rows)} timestamp(s) not a time ({_lines(lines[rows])}"
                       f"{': ' if len(rows) == 1 else '; first: '}{first}): skipped "
                       "(not scored, not learned): empty anomaly_score, written after the "
                       "rows that have a time", err=True)
        if skipped.any():
            bad = lines[np.flatnonzero(skipped.to_numpy())]
            typer.echo(f"{len(bad)} value(s) not a number ({_lines(bad)}): scored as missing "
                       "(empty anomaly_score)", err=True)
        skipped_note = skipped_text(out.attrs["skipped"])
        if out.attrs.get("all_warming"):
            need, shorter = out.attrs.get("warmup"), out.attrs.get("shorter")
            typer.echo(f"no row was scored yet: {detector} was still warming up at the last row"
                       + (f" (it needs {format_duration(need)} of history"
                          + (f"; shorter: {', or '.join(shorter)}" if shorter else "") + ")"
                          if need else "")
                       + f": all {out.attrs['scored_rows']} scored rows have anomaly_score 0"
                       + (f" ({skipped_note}, empty anomaly_score)" if skipped_note else ""),
                       err=True)
        elif out.attrs.get("warming_rows"):
            typer.echo(f"{out.attrs['warming_rows']} row(s) up to {out.attrs['last_warming']} "
                       f"came while {detector} was warming up (it needs more history before "
                       "it can score): anomaly_score 0 there means 'not scored yet', not "
                       "'normal'", err=True)
        dup_rows = out.attrs["repeated_rows"]
        if len(dup_rows):
            unfed = out.attrs["repeated_unfed_firsts"]
            none = (f"; at {len(unfed)} of these times the first line is not a number either "
                    f"({_lines(lines[unfed])}), so that time has no score") if len(unfed) else ""
            typer.echo(f"{len(dup_rows)} line(s) repeat an earlier line's timestamp "
                       f"({_lines(lines[dup_rows])}): only the first line of each time is fed "
                       f"to the detector, the repeats are not (empty anomaly_score){none}",
                       err=True)
        scored = out.attrs["scored_rows"]
        typer.echo(f"scored {scored}{'' if scored == len(out) else f' of {len(out)}'} rows -> "
                   f"{'stdout' if output == '-' else output}"
                   + (f" ({skipped_note}, empty anomaly_score)" if skipped_note else ""),
                   err=True)

    @app.command("feedback")
    def feedback(
        anomaly_id: Annotated[str, typer.Argument(
            metavar="ANOMALY_ID",
            help="Anomaly id (as in alerts and the store), or a unique prefix of 8+ characters.")],
        label: Annotated[str, typer.Argument(metavar="VERDICT",
                                             help="not_anomaly | expected | confirmed")],
        config: ConfigOpt,
        note: Annotated[str | None, typer.Option("--note", help="Why.")] = None,
        user: Annotated[str | None, typer.Option("--user", help="Who.")] = None,
    ) -> None:
        """Mark an anomaly (ids: cxmon anomalies) as not_anomaly, expected or confirmed.

        not_anomaly / expected make that series need a rarer point before it alerts again \
(a week; for expected: that day and the same hour of the week for 4 weeks); confirmed \
cancels earlier such verdicts. Once every anomaly of an open incident is marked not_anomaly \
or expected, the incident is dismissed: closed at once, and whoever was told of it gets its \
resolution."""
        from monitor.cli import _load, _open_store

        verdicts = ("not_anomaly", "expected", "confirmed")
        if label not in verdicts:
            # "expected" is itself a verdict, so "expected not_anomaly, expected or confirmed"
            # read as a list of four words; name the bad value and the closest verdict instead.
            import difflib

            close = difflib.get_close_matches(label.lower().replace("-", "_"), verdicts, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise typer.BadParameter(
                f"{label!r} is not a verdict; use one of not_anomaly, expected, confirmed{hint}",
                param_hint="VERDICT")
        cfg = _load(config, needs={"store"})
        store = _open_store(cfg, must_exist=True)
        try:
            ids = store.anomaly_ids(anomaly_id) if len(anomaly_id) >= 8 else [anomaly_id]
            if len(ids) > 1:
                typer.echo(f"anomaly id prefix {anomaly_id!r} is ambiguous: matches "
                           f"{', '.join(ids[:4])}{', ...' if len(ids) > 4 else ''} "
                           "(give more characters)", err=True)
                raise typer.Exit(1)
            if ids:
                anomaly_id = ids[0]
            before = store.feedback_on(anomaly_id)
            # the verdict in force is the latest: the same one again would be a second row
            # that changes nothing (and counts twice in backtest's "stored verdicts")
            same = bool(before) and before[-1]["label"] == label
            fid = None if same else store.add_feedback(anomaly_id, label, source="cli",
                                                       user=user, note=note)
            marked = store.anomalies(ids=[anomaly_id])
            dismissed: list[str] = []
            undecided: list[tuple[str, int, int]] = []
            if label != "confirmed":  # the last anomaly of an open incident: close its page
                from alerts.dismiss import dismiss_false_alarms, still_open

                # the store's clock, that stamped the verdict just stored
                dismissed = dismiss_false_alarms(store, [anomaly_id], by=user or "cli",
                                                 now=store.clock.now())
                undecided = still_open(store, [anomaly_id])  # more anomalies to mark
        except KeyError as exc:
            message = exc.args[0] if exc.args else str(exc)
            if len(anomaly_id) < 8:
                message += " (a prefix needs at least 8 characters; ids: cxmon anomalies)"
            else:
                message += " (ids: cxmon anomalies)"
            typer.echo(message, err=True)
            raise typer.Exit(1) from None
        finally:
            store.close()
        if same:
            typer.echo(f"{anomaly_id} is already marked {label} (feedback {before[-1]['id']}):"
                       " nothing stored")
        else:
            typer.echo(f"feedback {fid}: {anomaly_id} marked {label}")
        if not marked.empty:  # which point that was, as the alert said it: a wrong id shows
            typer.echo(f"  {_said(cfg, marked.iloc[0])}")
        if before and not same:
            last = before[-1]
            typer.echo(f"note: it was already marked {last['label']} (feedback {last['id']}); "
                       "both are kept (confirmed cancels earlier not_anomaly and expected "
                       "marks)")
        for key in dismissed:
            typer.echo(f"dismissed: incident {key} closed (every anomaly of it is marked); "
                       "whoever was told of it (PagerDuty, Slack, webhooks) gets its "
                       "resolution")
        for key, unmarked, total in undecided:
            typer.echo(f"incident {key} stays open (its pages too): {unmarked} of its {total} "
                       "anomalies are not marked not_anomaly or expected; marking every one "
                       "closes it (the Slack buttons mark them all)")
