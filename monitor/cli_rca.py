"""``cxmon rca``: dimensional root cause of one snapshot of a CSV file, printed as JSON."""

from __future__ import annotations

import io
import json
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from detectors.mixshift import mix_shift
from detectors.rootcause import RootCauseError, analyse, expected_from_history, prepare, rows_at
from monitor.cli_options import input_name, read_input_text
from monitor.cli_score import separator_hint


def rca(
    input: Annotated[str, typer.Option(
        "--input", metavar="<path>",
        help="CSV file, one row per leaf (and time); - reads stdin.")],
    dimensions: Annotated[str, typer.Option(
        metavar="<columns>", help="Comma-separated dimension columns.")],
    time_column: Annotated[
        str | None, typer.Option(metavar="<column>",
                                 help="Time column: rows before --at are history.")
    ] = None,
    at: Annotated[str | None, typer.Option(
        metavar="<time>", help="The anomalous time (with --time-column).")] = None,
    actual: Annotated[str | None, typer.Option(
        metavar="<column>", help="Actual value column.")] = None,
    expected: Annotated[str | None, typer.Option(
        metavar="<column>", help="Expected value column.")] = None,
    value: Annotated[
        str | None, typer.Option(
            metavar="<column>", help="Value column; expected values come from history.")
    ] = None,
    denominator: Annotated[
        str | None, typer.Option(
            metavar="<column>",
            help="Denominator column: the KPI is sum(value)/sum(denominator).")
    ] = None,
    top: Annotated[int, typer.Option(help="How many candidate root causes to print.")] = 3,
) -> None:
    """Which dimension values drove the change: ranked root causes as JSON.

    Either --actual and --expected columns (one snapshot; additive), or --value \
[--denominator] with --time-column and --at (rows before --at are history, rows at --at the \
snapshot). --input - reads the CSV from stdin.
    """
    text = read_input_text(input)
    try:
        result = run_rca(
            text, input_name(input), [d.strip() for d in dimensions.split(",") if d.strip()],
            time_column=time_column, at=at, actual=actual, expected=expected, value=value,
            denominator=denominator, top=top,
        )
    except RootCauseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result, indent=2))


def run_rca(
    text: str,
    path: str,
    dims: list[str],
    *,
    time_column: str | None,
    at: str | None,
    actual: str | None,
    expected: str | None,
    value: str | None,
    denominator: str | None,
    top: int,
) -> dict[str, object]:
    """The ``cxmon rca`` result for the CSV ``text`` (read from ``path``, which messages
    name) as a JSON-able dict; raises RootCauseError for bad input."""
    if top < 1:
        raise RootCauseError("--top must be at least 1")
    if not dims:
        raise RootCauseError("--dimensions needs at least one column")
    roles = {"--actual": actual, "--expected": expected, "--value": value,
             "--denominator": denominator, "--time-column": time_column}
    for option, column in roles.items():
        if column is not None and column in dims:  # was a TypeError traceback
            raise RootCauseError(f"column {column!r} is both in --dimensions and {option}: "
                                 "a dimension names the slices, it cannot also be measured")
    try:
        rows = pd.read_csv(io.StringIO(text), dtype={d: str for d in dims},
                           keep_default_na=False, na_values=[""])
    except ValueError as exc:
        _check_fields(text, path)  # a long line after the first: pandas' C-parser message
        raise RootCauseError(f"cannot read {path}: {str(exc).strip()}") from None
    _check_fields(text, path)
    hint = separator_hint(rows.columns)
    if hint:
        raise RootCauseError(f"{path}: no column {', '.join(dims)}{hint}")
    for d in dims:  # an empty dimension cell is a value of its own, named, and said
        if d in rows.columns:
            _report_empty(rows[d], d, f"a value named {EMPTY_VALUE!r}")
            rows[d] = rows[d].fillna(EMPTY_VALUE)
    for column in (actual, expected, value, denominator):
        if column is None or column not in rows.columns:
            continue
        bad = pd.to_numeric(rows[column], errors="coerce").isna() & rows[column].notna()
        if bad.any():
            first = int(bad.to_numpy().nonzero()[0][0])
            raise RootCauseError(f"column {column!r} is not a number in {int(bad.sum())} "
                                 f"row(s), first data row {first + 1}: "
                                 f"{rows[column].iloc[first]!r}")
        _check_magnitude(rows[column], column)
        _report_empty(rows[column], column)
    if rows.empty:
        raise RootCauseError(f"{path} has a header but no data rows")
    if (actual is None) != (expected is None):
        raise RootCauseError("--actual and --expected go together")
    if actual is not None and value is not None:
        raise RootCauseError("give either --actual/--expected or --value, not both")
    if actual is not None:
        if denominator is not None:
            raise RootCauseError("--denominator goes with --value (expected from history)")
        assert expected is not None
        if time_column is not None or at is not None:
            if time_column is None or at is None:
                raise RootCauseError("--time-column and --at go together")
            rows = rows_at(rows, time_column, at)
        cube = prepare(rows, dims, actual=actual, expected=expected)
    elif value is not None:
        if time_column is None or at is None:
            raise RootCauseError("--value needs --time-column and --at (history before --at)")
        leaves = expected_from_history(
            rows, dims, time_column=time_column, at=at, value=value,
            denominator=denominator,
        )
        cube = prepare(
            leaves, dims, actual="actual", expected="expected",
            denominator="denominator" if denominator else None,
            expected_denominator="expected_denominator" if denominator else None,
        )
    else:
        raise RootCauseError("give --actual and --expected, or --value with --time-column/--at")
    found = analyse(cube, top=top)
    causes = found.causes
    out: dict[str, object] = {"root_causes": [c.to_dict() for c in causes]}
    if found.spread:
        out["note"] = SPREAD_NOTE
    elif not causes:
        out["note"] = ("no combination of dimension values stands out from the leaves' noise "
                       "(estimated from the leaves themselves: with few leaves only large "
                       "changes can)")
    if value is not None:
        out["expected_from"] = leaves.attrs.get("history")
        if denominator is not None:
            shift = _mix(leaves, dims)
            if shift is not None:
                out["mix_shift"] = shift
                out["note"] = MIX_NOTE
    return out


#: The note when the volume moved between dimension values rather than their rates.
MIX_NOTE = ("the rate moved mostly because the volume moved between dimension values "
            "(mix_shift), not because their own rates changed")


def _mix(leaves: pd.DataFrame, dims: list[str]) -> dict[str, object] | None:
    """The mix shift behind a ratio's change (:mod:`detectors.mixshift`), from the leaves'
    history: pooled historical rate, and historical volume as the usual mix."""
    hist_num = leaves["expected"].to_numpy(dtype=float)
    hist_den = leaves["expected_denominator"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(hist_den > 0, hist_num / hist_den, np.nan)
    found = mix_shift(leaves[dims], dims, numerator=leaves["actual"].to_numpy(dtype=float),
                      denominator=leaves["denominator"].to_numpy(dtype=float),
                      expected_rate=rate, usual_volume=hist_den)
    return found.to_dict() if found is not None else None


#: The note when every dimension value moved alike (no value is the culprit).
SPREAD_NOTE = ("the change is spread over all dimension values alike (each moved by about the "
               "same relative amount): no single value drove it")

_MAX_MAGNITUDE = 1e150  # squares of sums of such values still fit in a float


def _check_magnitude(column: pd.Series, name: str) -> None:
    """Refuse values so large that the noise estimate overflows (a traceback at 1e308,
    infinities below): a clear error instead of a crash or a meaningless answer."""
    numbers = pd.to_numeric(column, errors="coerce").abs()
    huge = numbers > _MAX_MAGNITUDE  # inf too; NaN is not
    if huge.any():
        first = int(huge.to_numpy().nonzero()[0][0])
        raise RootCauseError(f"column {name!r} has {int(huge.sum())} value(s) beyond "
                             f"+-{_MAX_MAGNITUDE:g}, first data row {first + 1}: "
                             f"{column.iloc[first]}")


#: What an empty dimension cell is called in the answer (it was the leaf "nan").
EMPTY_VALUE = "(empty)"


def _report_empty(column: pd.Series, name: str, meaning: str = "counted as 0") -> None:
    """Say on stderr how many cells of a column are empty and what they are taken as (a
    measure: 0, like a missing leaf), which can be real or a broken export: never silent."""
    empty = column.isna().to_numpy()
    if empty.any():
        typer.echo(f"note: column {name!r} has {int(empty.sum())} empty cell(s), first data "
                   f"row {int(empty.nonzero()[0][0]) + 1}: {meaning}", err=True)


def _check_fields(text: str, path: str) -> None:
    """Refuse lines with more fields than the header: pandas would silently turn the first
    column into an index when the first data line has one field too many, shifting every
    column (a snapshot that names nothing), or fail deep inside with a C-parser message."""
    import csv

    reader = csv.reader(io.StringIO(text, newline=""))
    width = None
    long: list[int] = []
    for record in reader:
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if width is None:
            width = len(record)
        elif len(record) > width:
            long.append(reader.line_num)
    if long:
        shown = ", ".join(map(str, long[:5])) + (", ..." if len(long) > 5 else "")
        raise RootCauseError(f"{path}: {len(long)} line(s) have more fields than the header "
                             f"(line{'s' if len(long) > 1 else ''} {shown})")


def register(app: typer.Typer) -> None:
    app.command("rca")(rca)
