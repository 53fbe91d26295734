"""Raw source rows -> validated, bucketed, rolled-up measure frame.

A bad row is counted by reason and dropped; it never fails the tick. Roll-ups are exact:
ratios and means are recomputed from summed parts (``sum(abandoned) / sum(started)``), never
averaged, so the total and every dimension slice agree with the leaves. Every valid row counts:
rows identical in every column are separate contributions and add up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import combinations
from typing import Literal

import numpy as np
import pandas as pd

from monitor.model import MEASURE_COLUMNS, Series, ValueKind, series_key

REJECT_REASONS = (
    "bad_timestamp",
    "before_cursor",
    "missing_value",
    "non_numeric",
    "non_finite",
    "negative",
    "missing_dimension",
    "zero_denominator",
)


class FrameError(ValueError):
    """The rows cannot be used at all (e.g. a column the metric needs is missing)."""


@dataclass(slots=True)
class MeasureSpec:
    """What :func:`build_measure_frame` needs to know about a metric (a config subset)."""

    metric: str
    interval: timedelta
    kind: ValueKind
    numerator: str
    denominator: str | None = None
    timestamp: str = "timestamp"
    dimensions: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    split_by: tuple[str, ...] = ()  # kept in every series, never rolled up (e.g. journey)
    rollups: tuple[tuple[str, ...], ...] | None = None  # None = every subset of dimensions

    def columns(self) -> list[str]:
        """Every column the metric reads: time, numerator, split-by and dimension columns,
        denominator."""
        needed = [self.timestamp, self.numerator, *self.split_by, *self.dimensions]
        if self.denominator:
            needed.append(self.denominator)
        return list(dict.fromkeys(needed))

    def groupings(self) -> list[tuple[str, ...]]:
        """The dimension subsets to aggregate over: the total, each slice, the leaves."""
        split = tuple(self.split_by)
        if self.rollups is not None:
            return [split + tuple(g) for g in self.rollups]
        dims = self.dimensions
        return [split + c for r in range(len(dims) + 1) for c in combinations(dims, r)]


@dataclass(slots=True)
class MeasureFrame:
    """Result of one build: the frame, the series it mentions, and what was rejected."""

    frame: pd.DataFrame  # MEASURE_COLUMNS
    series: dict[str, Series]
    rejected: Counter[str]
    rows_in: int


def floor_time(ts: datetime, interval: timedelta) -> datetime:
    """Start of the bucket containing ``ts`` (buckets aligned to the Unix epoch, UTC)."""
    step = int(interval.total_seconds() * 1e6)
    epoch = datetime(1970, 1, 1, tzinfo=ts.tzinfo)
    micros = (ts - epoch) // timedelta(microseconds=1)
    return epoch + timedelta(microseconds=(micros // step) * step)


def missing_columns(raw: pd.DataFrame, spec: MeasureSpec) -> list[str]:
    """The columns the metric reads that ``raw`` lacks, in config order."""
    return [c for c in spec.columns() if c not in raw.columns]


def missing_columns_message(raw: pd.DataFrame, spec: MeasureSpec, missing: list[str]) -> str:
    """Which columns are missing, with the closest column the source did return."""
    import difflib

    names = [str(c) for c in raw.columns]
    close = {m: difflib.get_close_matches(m, names, n=1) for m in missing}
    hint = "".join(f"; {m!r}: did you mean {c[0]!r}?" for m, c in close.items() if c)
    return (f"metric {spec.metric}: the source's rows have no column(s) {', '.join(missing)}"
            f"{hint} (columns returned: {', '.join(names) or 'none'})")


def build_measure_frame(
    raw: pd.DataFrame, spec: MeasureSpec, since: datetime, until: datetime
) -> MeasureFrame:
    """Validate ``raw`` rows, keep ``since <= ts < until``, bucket, and roll up.

    Rows at or after ``until`` are not rejected: they belong to a later, not yet complete,
    bucket and will be polled again.
    """
    rejected: Counter[str] = Counter()
    rows_in = len(raw)
    missing = missing_columns(raw, spec)
    if missing and len(raw) == 0:
        # No rows is no data, whatever the columns: a source cannot always know the columns
        # of an empty result (no file yet, a PromQL query without series).
        raw = raw.reindex(columns=[*raw.columns, *missing])
        missing = []
    if missing:
        raise FrameError(missing_columns_message(raw, spec, missing))
    df = pd.DataFrame(index=raw.index)
    df["ts"] = to_utc(raw[spec.timestamp])
    # a source with date_order converts its year-last dates itself; here they are ambiguous
    ok = _count(~(df["ts"].isna().to_numpy() & year_last_dates(raw[spec.timestamp])),
                "ambiguous_date", rejected)
    ok = _count(df["ts"].notna().to_numpy(), "bad_timestamp", rejected, only=ok)

    num, ok = _numeric(raw[spec.numerator], ok, rejected)
    df["num"] = num
    if spec.denominator:
        den, ok = _numeric(raw[spec.denominator], ok, rejected)
        df["den"] = den
    elif spec.kind is ValueKind.MEAN:  # {mean: column}: every row is one observation
        df["den"] = 1.0
    else:
        df["den"] = np.nan

    negative = np.zeros(len(df), dtype=bool)
    if spec.kind is not ValueKind.MEAN:  # a sum of ratings may not be negative either, but
        negative |= df["num"].to_numpy() < 0  # a mean of deltas may: only counts are checked
    if spec.denominator:
        negative |= df["den"].to_numpy() < 0
    ok = _count(~negative, "negative", rejected, only=ok)

    for dim in (*spec.split_by, *spec.dimensions):
        col = raw[dim]
        present = col.notna().to_numpy() & (col.astype(str).str.len() > 0).to_numpy()
        ok = _count(present, "missing_dimension", rejected, only=ok)
        df[dim] = col.astype(str)

    ts_ok = df["ts"].notna().to_numpy()
    before = np.zeros(len(df), dtype=bool)
    before[ts_ok] = (df["ts"][ts_ok] < pd.Timestamp(since)).to_numpy()
    after = np.zeros(len(df), dtype=bool)
    after[ts_ok] = (df["ts"][ts_ok] >= pd.Timestamp(until)).to_numpy()
    ok = _count(~before, "before_cursor", rejected, only=ok)
    ok &= ~after

    # Rows are additive contributions (events, or partial aggregates of a finer grain than
    # the metric's dimensions) and are all summed per bucket: two identical rows are two
    # events, never a "duplicate". Re-polls do not double count because a poll returns every
    # row of its complete buckets and the store replaces a bucket's point (upsert).
    df = df[ok]

    step = pd.Timedelta(spec.interval)
    bucket = df["ts"].dt.floor(step) if _divides_day(step) else _epoch_floor(df["ts"], step)
    out, series = _rollup(df, bucket, spec, rejected)
    return MeasureFrame(out[MEASURE_COLUMNS], series, +rejected, rows_in)


def _combine(codes: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """One code per distinct combination of ``codes`` (parallel int arrays of length ``n``),
    and the first row of each combination. Pairs are folded and re-factorized one column at
    a time, so the combined code never exceeds rows x cardinality (no int64 overflow however
    many dimensions).

    >>> _combine([np.array([0, 1, 0, 1]), np.array([2, 2, 2, 0])], 4)[0].tolist()
    [0, 1, 0, 2]
    """
    combined = np.zeros(n, dtype=np.int64)
    for c in codes:
        combined, _ = pd.factorize(combined * (int(c.max(initial=0)) + 1) + c)
        combined = combined.astype(np.int64)
    count = int(combined.max(initial=-1)) + 1
    first = np.full(count, n, dtype=np.int64)
    np.minimum.at(first, combined, np.arange(n, dtype=np.int64))
    return combined, first


def _rollup(
    df: pd.DataFrame, bucket: pd.Series, spec: MeasureSpec, rejected: Counter[str]
) -> tuple[pd.DataFrame, dict[str, Series]]:
    """Sum numerator and denominator per bucket and dimension grouping, then divide.

    Columns are factorized once; per grouping the series are factorized once (their keys
    built once per series, not per bucket) and every (bucket, series) cell is one integer, so
    the sums are one ``np.bincount``: a tick is a few hundred rows, where pandas' per-groupby
    overhead would dominate, and a first tick's history is millions, where sorting rows of
    codes (``np.unique(axis=0)``) and a key per row did (a third of a first tick's time).
    """
    b_codes, b_uniques = pd.factorize(bucket, sort=True)  # sorted: code order is time order
    b_codes = b_codes.astype(np.int64)
    codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for dim in (*spec.split_by, *spec.dimensions):
        c, u = pd.factorize(df[dim], sort=True)
        codes[dim] = (c.astype(np.int64), np.asarray(u, dtype=object))
    num = df["num"].to_numpy(dtype=np.float64)
    counted = spec.denominator or spec.kind is ValueKind.MEAN
    den = df["den"].to_numpy(dtype=np.float64) if counted else None
    leaf_width = len(spec.split_by) + len(spec.dimensions)
    n_rows = len(df)
    parts_ts, parts_key, parts_val, parts_num, parts_den = [], [], [], [], []
    series: dict[str, Series] = {}
    for grouping in spec.groupings():
        s_code, first = _combine([codes[d][0] for d in grouping], n_rows)
        n_series = len(first)
        cell = b_codes * max(n_series, 1) + s_code
        uniq, inv = np.unique(cell, return_inverse=True)
        n_sum = np.bincount(inv, weights=num, minlength=len(uniq))
        if den is None:
            d_sum = np.full(len(uniq), np.nan)
            value = n_sum.copy()
        else:
            d_sum = np.bincount(inv, weights=den, minlength=len(uniq))
            zero = d_sum == 0
            if len(grouping) == leaf_width:  # count each empty leaf once, not per roll-up
                rejected["zero_denominator"] += int(zero.sum())
            keep = ~zero
            uniq, n_sum, d_sum = uniq[keep], n_sum[keep], d_sum[keep]
            value = n_sum / d_sum
        dims = tuple(g for g in grouping if g not in spec.split_by)
        size = max(n_series, 1)
        # series met in this grouping (a leaf whose every bucket had a zero denominator is
        # none), keyed in order of first bucket then dimension values, as they are listed
        cell_series = uniq % size
        first_bucket = np.full(n_series, np.iinfo(np.int64).max)
        np.minimum.at(first_bucket, cell_series, uniq // size)
        met = np.flatnonzero(first_bucket < np.iinfo(np.int64).max)
        row_of = first[met]
        met = met[np.lexsort([codes[d][0][row_of] for d in reversed(grouping)]
                             + [first_bucket[met]])]
        keys = np.empty(n_series, dtype=object)
        for s, row in zip(met.tolist(), first[met].tolist(), strict=True):
            labels = {**spec.labels}
            for d in grouping:
                labels[d] = str(codes[d][1][codes[d][0][row]])
            key = keys[s] = series_key(spec.metric, labels)
            series[key] = Series(spec.metric, labels, dims)
        parts_ts.append(uniq // size)  # bucket codes
        parts_key.append(keys[cell_series])
        parts_val.append(value)
        parts_num.append(n_sum)
        parts_den.append(d_sum)
    ts = np.concatenate(parts_ts) if parts_ts else np.array([], dtype=np.int64)
    stamps = pd.DatetimeIndex(b_uniques)
    key_col = np.concatenate(parts_key) if parts_key else np.array([], dtype=object)
    # by time, then series key: the keys are ranked once (a few thousand strings), not
    # compared row by row
    rank, _ = pd.factorize(key_col, sort=True)
    order = np.lexsort((rank, ts))
    out = pd.DataFrame(
        {
            "timestamp": stamps.take(ts[order]).tz_convert("UTC") if len(ts)
            else pd.DatetimeIndex([], tz="UTC"),
            "series": key_col[order],
            "value": np.concatenate(parts_val)[order] if parts_val else np.array([]),
            "numerator": np.concatenate(parts_num)[order] if parts_num else np.array([]),
            "denominator": np.concatenate(parts_den)[order] if parts_den else np.array([]),
        }
    )
    return out, series


#: Unix seconds (or milliseconds) sent as text: 9+ integer digits, so 20260101 stays a date
_UNIX_TEXT = r"\s*-?\d{9,}(?:\.\d+)?\s*"
#: A numeric date with the year last (04/05/2026, 04.05.2026, 04-05-2026), then anything
_YEAR_LAST = r"\s*(\d{1,2})([/.-])(\d{1,2})\2(\d{4})(.*)"
DateOrder = Literal["dmy", "mdy"]


def year_last_dates(col: pd.Series) -> np.ndarray:
    """Which values are numeric dates with the year last (``04/05/2026``): 4 May in most of
    the world, April 5 in the US, and nothing in the value says which.

    >>> year_last_dates(pd.Series(["04/05/2026 10:00", "2026-05-04", None, 5])).tolist()
    [True, False, False, False]
    """
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_datetime64_any_dtype(col):
        return np.zeros(len(col), dtype=bool)
    return col.astype("string").str.fullmatch(_YEAR_LAST).fillna(False).to_numpy(dtype=bool)


def year_last_parts(col: pd.Series) -> pd.DataFrame:
    """The year-last dates of ``col`` as integers ``first``, ``second``, ``year`` (index: their
    rows), for messages that show how each order would read them.

    >>> year_last_parts(pd.Series(["x", "13.05.2026 10:00", "04-05-2026"])).values.tolist()
    [[13, 5, 2026], [4, 5, 2026]]
    """
    hit = year_last_dates(col)
    parts = col[hit].astype("string").str.extract(_YEAR_LAST)[[0, 2, 3]].astype(int)
    return parts.set_axis(["first", "second", "year"], axis=1)


def in_date_order(col: pd.Series, order: DateOrder | None) -> pd.Series:
    """``col`` with its year-last dates rewritten as ISO dates in ``order`` (None: as
    missing values, so they are counted, never guessed).

    Why: pandas reads each such value month first where that is a date and day first where it
    is not, so a day-first export had 04/05/2026 on 5 April and 13/05/2026 on 13 May, silently.
    """
    hit = year_last_dates(col)
    if not hit.any():
        return col
    out = col.astype(object).copy()
    if order is None:
        out[hit] = None
        return out
    parts = col[hit].astype("string").str.extract(_YEAR_LAST)
    day, month = (parts[0], parts[2]) if order == "dmy" else (parts[2], parts[0])
    out[hit] = (parts[3] + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + parts[4]
                ).astype(object)
    return out


def to_utc(col: pd.Series, tz: str | None = None, dst: Counter[str] | None = None,
           date_order: DateOrder | None = None) -> pd.Series:
    """Parse timestamps; naive ones are taken as UTC (or in ``tz``); unparseable ones NaT.

    Numbers are Unix seconds (``extract(epoch ...)``, ``UNIX_TIMESTAMP()``): pandas' own
    default, nanoseconds, put every row in 1970. From 1e11 (year 5138 in seconds, 1973 in
    milliseconds) to 1e14 they are milliseconds (JavaScript's ``Date.now()``, many JSON
    APIs): the two ranges cannot be confused. Larger numbers become NaT, a bad time. The same
    holds for numbers sent as text, from 9 digits on (8 digits read as a date: 20260101).

    ``tz`` (an IANA name, e.g. ``Europe/Berlin``): naive times are wall-clock times there
    (exports of BI tools and Lookout for Metrics data sets often are); zoned times keep their
    own offset and Unix times are UTC whatever ``tz``. See :func:`localize` for clock
    changes; ``dst`` counts the times it had to decide (``ambiguous``, ``nonexistent``).

    Numeric dates with the year last (``04/05/2026``) are read in ``date_order`` (``dmy``:
    4 May, ``mdy``: April 5); without it they are NaT (:func:`year_last_dates` tells them
    from unreadable values).
    """
    col = in_date_order(col, date_order)
    if tz is not None and tz != "UTC":
        return _local_to_utc(col, tz, dst)
    if pd.api.types.is_datetime64_any_dtype(col):
        ts = col
    elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        ts = _from_unix(col.astype("float64"))
    else:  # utc=True: naive strings are taken as UTC, and a mix of naive and zoned is fine
        ts = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
        # Unix times sent as text ("1764400000", a CSV column or JSON string) are NaT to
        # pandas; 9+ integer digits (1973 on) leave 8-digit dates such as 20260101 alone
        digits = col.astype("string").str.fullmatch(_UNIX_TEXT)
        digits = digits.fillna(False).to_numpy(dtype=bool)
        if digits.any():
            unix = _from_unix(pd.to_numeric(col[digits], errors="coerce").astype("float64"))
            ts = ts.dt.as_unit("ns")  # both sides at one resolution before mixing them
            ts[digits] = unix.dt.as_unit("ns")
    if getattr(ts.dt, "tz", None) is None:
        return ts.dt.tz_localize("UTC")
    return ts.dt.tz_convert("UTC")


def localize(wall: pd.Series, tz: str, dst: Counter[str] | None = None) -> pd.Series:
    """Naive wall-clock times in ``tz`` as UTC; ``dst`` counts the decisions below.

    A poll sees a few rows, not the whole day, so pandas' ``ambiguous="infer"`` (which needs
    both occurrences of the repeated hour in order) cannot work: a time in the hour repeated
    when clocks go back is taken at its first (summer time) occurrence, and a time in the hour
    skipped when they go forward (which no clock showed, yet exports write) is shifted forward
    to the first valid time. Neither fails the tick nor drops the row (NaT would count it as a
    bad time)."""
    ambiguous = np.ones(len(wall), dtype=bool)  # True: the DST, i.e. first, occurrence
    out = wall.dt.tz_localize(tz, ambiguous=ambiguous, nonexistent="shift_forward")
    if dst is not None and len(wall):
        amb = wall.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward").isna()
        gap = wall.dt.tz_localize(tz, ambiguous=ambiguous, nonexistent="NaT").isna()
        real = wall.notna()
        if n := int((amb & real).sum()):
            dst["ambiguous"] += n
        if n := int((gap & real).sum()):
            dst["nonexistent"] += n
    return out.dt.tz_convert("UTC")


def _local_to_utc(col: pd.Series, tz: str, dst: Counter[str] | None) -> pd.Series:
    """:func:`to_utc` with naive times in ``tz``: parsed as UTC first (the same rules for
    numbers, text and unreadable values), then the naive ones read again as wall-clock time
    in ``tz``."""
    as_utc = to_utc(col)
    if pd.api.types.is_datetime64_any_dtype(col):
        naive = np.full(len(col), getattr(col.dt, "tz", None) is None)
    elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return as_utc  # Unix times: UTC by definition
    else:
        text = col.astype("string")
        unix = text.str.fullmatch(_UNIX_TEXT).fillna(False)
        try:  # the common case: all naive (or all zoned), in one vectorized parse
            plain = pd.to_datetime(col, errors="coerce", format="mixed")
            zoned = getattr(plain.dt, "tz", None) is not None
            naive = np.full(len(col), not zoned)
        except (ValueError, TypeError):  # naive and zoned mixed: per distinct value
            zones = {v: _is_zoned(v) for v in text.dropna().unique()}
            naive = ~text.map(zones).fillna(True).to_numpy(dtype=bool)
        naive &= ~unix.to_numpy(dtype=bool)
        # A date without a time (2026-11-27: a per-day export) names a day, not the instant
        # its midnight is in ``tz``: moved to 23:00 UTC the day before, a Berlin day's total
        # landed in the previous daily bucket and on the previous calendar day. It keeps
        # its date (the bucket of that date; the exporter already summed the local day).
        naive &= ~text.str.fullmatch(_DATE_ONLY).fillna(False).to_numpy(dtype=bool)
    naive &= as_utc.notna().to_numpy()
    if not naive.any():
        return as_utc
    out = as_utc.copy()
    wall = as_utc[naive].dt.tz_localize(None)
    out[naive] = localize(wall, tz, dst).dt.as_unit(as_utc.dt.unit)
    return out


#: a date without a time of day, as :func:`in_date_order` leaves numeric dates too
_DATE_ONLY = r"\s*\d{4}-\d{1,2}-\d{1,2}\s*"


def _is_zoned(value: str) -> bool:
    try:
        return pd.Timestamp(value).tzinfo is not None
    except (ValueError, TypeError):
        return False


def _from_unix(num: pd.Series) -> pd.Series:
    """Unix seconds, or milliseconds from 1e11 on, as UTC times (NaT beyond 1e14)."""
    secs = num.where(num.abs() < 1e11, num / 1e3).where(num.abs() < 1e14)
    return pd.to_datetime(secs, unit="s", errors="coerce", utc=True)


def _numeric(
    col: pd.Series, ok: np.ndarray, rejected: Counter[str]
) -> tuple[pd.Series, np.ndarray]:
    """Coerce to float, counting missing, non-numeric and non-finite values separately."""
    values = pd.to_numeric(col, errors="coerce").astype(float)
    was_null = col.isna().to_numpy()
    is_nan = values.isna().to_numpy()
    ok = _count(~was_null, "missing_value", rejected, only=ok)
    ok = _count(~is_nan, "non_numeric", rejected, only=ok)
    finite = np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    ok = _count(finite, "non_finite", rejected, only=ok)
    return values, ok


def _count(
    good: np.ndarray, reason: str, rejected: Counter[str], only: np.ndarray | None = None
) -> np.ndarray:
    """Count rows that are still OK but fail this check; return the new OK mask."""
    good = np.asarray(good, dtype=bool)
    if only is None:
        only = np.ones(len(good), dtype=bool)
    bad = only & ~good
    if bad.any():
        rejected[reason] += int(bad.sum())
    return only & good


def _divides_day(step: pd.Timedelta) -> bool:
    return step <= pd.Timedelta(days=1) and pd.Timedelta(days=1) % step == pd.Timedelta(0)


def _epoch_floor(ts: pd.Series, step: pd.Timedelta) -> pd.Series:
    ns = ts.astype("int64") if ts.dt.unit == "ns" else ts.dt.as_unit("ns").astype("int64")
    floored = (ns // step.value) * step.value
    return pd.to_datetime(floored, utc=True)
