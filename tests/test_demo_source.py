"""The demo retailer: deterministic, split-consistent, realistic, with visible ground truth.

The detectors' end-to-end tests and ``cxmon demo`` trust this data, so these tests pin down
the properties they rely on: the same poll always returns the same rows however the range is
cut, every scripted incident is really in the data (and only there), and the holiday is not
mistaken for an incident by the generator itself.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from sources.base import FatalSourceError, PollRequest
from sources.demo import (
    CHANNELS,
    COLUMNS,
    HOLIDAY_DAYS,
    JOURNEYS,
    REGIONS,
    SCRIPTED_INCIDENTS,
    TABLES,
    DemoSource,
    DemoSourceConfig,
    ResolvedIncident,
    default_anchor,
    generate,
    holidays_at,
    incidents_at,
)
from sources.registry import config_class, source_types

ANCHOR = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
END = ANCHOR + timedelta(days=28)
WEEK = timedelta(days=7)
SEEDS = (7, 11, 2024)

# Which columns make each table's KPI: (numerator, denominator or None for counts).
KPI: dict[str, tuple[str, str | None]] = {
    "checkout": ("abandoned", "started"),
    "complaints": ("complaints", None),
    "csat": ("rating_sum", "responses"),
    "contacts": ("contacts", None),
}
RATING_VAR = 1.6  # upper bound of the variance of one 1-5 rating in this demo


def _gen(table: str, start: datetime, end: datetime, seed: int = 7, **kw: bool) -> pd.DataFrame:
    return generate(table, start, end, seed=seed, anchor=ANCHOR, **kw)


def _mask(df: pd.DataFrame, filters: Mapping[str, str]) -> np.ndarray:
    mask = np.ones(len(df), dtype=bool)
    for col, val in filters.items():
        mask &= (df[col] == val).to_numpy()
    return mask


def _select(df: pd.DataFrame, filters: Mapping[str, str]) -> pd.DataFrame:
    return df[_mask(df, filters)]


def _z(table: str, now: pd.DataFrame, before: pd.DataFrame) -> float:
    """How many standard errors the window moved versus the same window a week earlier.

    Sampling noise only (Poisson counts, binomial drop-off, rating variance), on sums over
    the whole window, which is what "clearly visible" has to beat.
    """
    num, den = KPI[table]
    a1, a0 = float(now[num].sum()), float(before[num].sum())
    if den is None:
        return (a1 - a0) / math.sqrt(a1 + a0)
    n1, n0 = float(now[den].sum()), float(before[den].sum())
    r1, r0 = a1 / n1, a0 / n0
    if table == "checkout":
        se = math.sqrt(r1 * (1 - r1) / n1 + r0 * (1 - r0) / n0)
    else:
        se = math.sqrt(RATING_VAR / n1 + RATING_VAR / n0)
    return (r1 - r0) / se


def _kpi(table: str, df: pd.DataFrame) -> float:
    num, den = KPI[table]
    return float(df[num].sum()) / (float(df[den].sum()) if den else 1.0)


def _window_vs_week_before(
    inc: ResolvedIncident, filters: Mapping[str, str], seed: int, incidents: bool = True
) -> float:
    now = _gen(inc.table, inc.start, inc.end, seed, incidents=incidents)
    before = _gen(inc.table, inc.start - WEEK, inc.end - WEEK, seed, incidents=incidents)
    return _z(inc.table, _select(now, filters), _select(before, filters))


# --- shape of the data -----------------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES)
def test_columns_dtypes_and_regular_grid(table: str) -> None:
    since, until = ANCHOR + timedelta(hours=5, minutes=30), ANCHOR + timedelta(days=2)
    df = _gen(table, since, until)
    assert list(df.columns) == list(COLUMNS[table])
    assert str(df["ts"].dtype) == "datetime64[ns, UTC]"
    for col in COLUMNS[table]:
        if col in ("journey", "channel", "region"):
            assert pd.api.types.is_string_dtype(df[col])
        elif col != "ts":
            assert df[col].dtype == np.int64, col
            assert (df[col] >= 0).all()
    # hour buckets with since <= ts < until: 06:00 of day 0 up to 23:00 of day 1
    assert df["ts"].min() == pd.Timestamp(ANCHOR + timedelta(hours=6))
    assert df["ts"].max() == pd.Timestamp(until - timedelta(hours=1))
    assert (df["ts"].dt.minute == 0).all()
    # every dimension combination in every hour, exactly once: regular series
    dims = [c for c in COLUMNS[table] if c in ("journey", "channel", "region")]
    per_hour = df.groupby("ts").size()
    assert per_hour.nunique() == 1 and len(per_hour) == 42
    assert not df.duplicated(["ts", *dims]).any()
    assert set(df["channel"]) <= set(CHANNELS) and set(df["region"]) == set(REGIONS)
    if "journey" in df:
        assert set(df["journey"]) == set(JOURNEYS)
    assert df[(df["channel"] == "store") & (df["region"] == "us")].empty  # no US stores


def test_ratio_parts_are_consistent() -> None:
    """Denominators are never zero (no leaf dropped) and numerators fit in them."""
    co = _gen("checkout", ANCHOR, ANCHOR + WEEK)
    assert (co["started"] >= 1).all() and (co["abandoned"] <= co["started"]).all()
    assert set(co["channel"]) == {"web", "app", "store"}  # no contact-centre checkout funnel
    cs = _gen("csat", ANCHOR, ANCHOR + WEEK)
    assert (cs["responses"] >= 1).all()
    assert (cs["rating_sum"] >= cs["responses"]).all()
    assert (cs["rating_sum"] <= 5 * cs["responses"]).all()


def test_baselines_are_realistic() -> None:
    """Drop-off ~0.25-0.45 by channel, CSAT ~4.1-4.5, online busier in the evening."""
    co = _gen("checkout", ANCHOR, ANCHOR + 2 * WEEK, incidents=False)
    by_channel = co.groupby("channel")[["abandoned", "started"]].sum()
    rates = by_channel["abandoned"] / by_channel["started"]
    assert rates.between(0.22, 0.47).all(), rates
    assert rates["web"] > rates["app"] > rates["store"]
    cs = _gen("csat", ANCHOR, ANCHOR + 2 * WEEK, incidents=False)
    assert 4.1 <= _kpi("csat", cs) <= 4.5
    by_journey = cs.groupby("journey")[["rating_sum", "responses"]].sum()
    assert (by_journey["rating_sum"] / by_journey["responses"]).between(4.0, 4.5).all()
    web_uk = _select(co, {"channel": "web", "region": "uk"})
    by_hour = web_uk.groupby(web_uk["ts"].dt.hour)["started"].mean()
    assert by_hour[20] > 3 * by_hour[4]  # night low, evening peak
    store_uk = _select(co, {"channel": "store", "region": "uk"})
    by_hour = store_uk.groupby(store_uk["ts"].dt.hour)["started"].mean()
    assert by_hour[13] > 20 * by_hour[3]  # stores open 09-21


# --- determinism -----------------------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES)
def test_same_call_same_rows(table: str) -> None:
    a = _gen(table, ANCHOR, ANCHOR + timedelta(days=3))
    b = _gen(table, ANCHOR, ANCHOR + timedelta(days=3))
    pd.testing.assert_frame_equal(a, b)
    other_seed = _gen(table, ANCHOR, ANCHOR + timedelta(days=3), seed=8)
    assert not a.equals(other_seed)


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize(
    "cut",
    [
        timedelta(hours=1),  # one hour in
        timedelta(hours=23, minutes=30),  # mid-hour, the 00:00 row lands in the second part
        timedelta(days=1),  # exactly at midnight UTC (a random-stream boundary)
        timedelta(days=3, hours=7, seconds=1),
    ],
)
def test_range_splitting_is_consistent(table: str, cut: timedelta) -> None:
    """Any split of [a, c) returns the same rows: re-polls and restarts agree."""
    a = ANCHOR + timedelta(days=21, hours=17, minutes=12)
    c = ANCHOR + timedelta(days=26)
    b = a + cut
    whole = _gen(table, a, c)
    parts = pd.concat([_gen(table, a, b), _gen(table, b, c)], ignore_index=True)
    pd.testing.assert_frame_equal(whole, parts)


def test_hour_by_hour_polling_matches_one_poll() -> None:
    start = ANCHOR + timedelta(days=22, hours=9)
    hours = [start + timedelta(hours=i) for i in range(10)]
    whole = _gen("checkout", hours[0], hours[-1])
    steps = [_gen("checkout", h, h + timedelta(hours=1)) for h in hours[:-1]]
    pd.testing.assert_frame_equal(whole, pd.concat(steps, ignore_index=True))


def test_empty_and_before_anchor_ranges() -> None:
    empty = _gen("contacts", ANCHOR + timedelta(minutes=10), ANCHOR + timedelta(minutes=50))
    assert empty.empty and list(empty.columns) == list(COLUMNS["contacts"])
    assert str(empty["ts"].dtype) == "datetime64[ns, UTC]"
    before = _gen("contacts", ANCHOR - WEEK, ANCHOR)  # same formula before day 0
    assert len(before) == 7 * 24 * 60 and before["contacts"].sum() > 0


# --- ground truth ------------------------------------------------------------------------------


def test_scripted_incidents_are_well_formed() -> None:
    resolved = incidents_at(ANCHOR)
    assert len(resolved) == len(SCRIPTED_INCIDENTS) >= 4
    assert len({i.name for i in resolved}) == len(resolved)
    for inc in resolved:
        assert ANCHOR + timedelta(days=21) <= inc.start < inc.end <= ANCHOR + timedelta(days=28)
        assert set(inc.filters) <= set(COLUMNS[inc.table]) and inc.measure in COLUMNS[inc.table]
        if "journey" in COLUMNS[inc.table]:
            assert inc.filters["journey"] == inc.journey
        assert 5 <= inc.start.hour <= 14  # starts in the daytime, not on a near-zero base
        assert inc.covers(inc.start) and not inc.covers(inc.end)
    groups: dict[str, list[ResolvedIncident]] = {}
    for inc in resolved:
        groups.setdefault(inc.group, []).append(inc)
    spans = sorted((min(i.start for i in g), max(i.end for i in g)) for g in groups.values())
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, "different incidents overlap in time"
    for members in groups.values():  # one group = one journey, one window
        assert len({(i.journey, i.start, i.end) for i in members}) == 1
    holiday = ANCHOR + timedelta(days=HOLIDAY_DAYS[0])
    assert all(not (i.start < holiday + timedelta(days=1) and holiday < i.end) for i in resolved)


def _primary(inc: ResolvedIncident) -> bool:
    """The first measure of a group is the headline one; later ones are related measures."""
    first = next(i for i in incidents_at(ANCHOR) if i.group == inc.group)
    return first.name == inc.name


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("inc", incidents_at(ANCHOR), ids=lambda i: i.name)
def test_every_incident_is_visible(inc: ResolvedIncident, seed: int) -> None:
    """Versus the same hours a week earlier: obvious in the injected series, and the headline
    measure of each incident is still clear in the journey and total (roll-up) series.

    A related measure (a later entry of a group: delivery complaints beside the delivery
    contact spike) is smaller by design; it only has to stand out in its own series.
    """
    assert KPI[inc.table][0] == inc.measure
    sign = -1.0 if inc.table == "csat" else 1.0
    z_filtered = sign * _window_vs_week_before(inc, inc.filters, seed)
    if not _primary(inc):
        assert z_filtered > 3, (inc.name, z_filtered)
        return
    assert z_filtered > 8, (inc.name, z_filtered)
    if "journey" in COLUMNS[inc.table]:
        z_journey = sign * _window_vs_week_before(inc, {"journey": inc.journey}, seed)
        assert z_journey > 6, (inc.name, z_journey)
    z_total = sign * _window_vs_week_before(inc, {}, seed)
    assert z_total > 4, (inc.name, z_total)


@pytest.mark.parametrize("inc", incidents_at(ANCHOR), ids=lambda i: i.name)
def test_incident_sizes_match_their_description(inc: ResolvedIncident) -> None:
    """Compared with the same rows generated without incidents (identical noise)."""
    on = _select(_gen(inc.table, inc.start, inc.end), inc.filters)
    off = _select(_gen(inc.table, inc.start, inc.end, incidents=False), inc.filters)
    before, after = _kpi(inc.table, off), _kpi(inc.table, on)
    if inc.table == "checkout":
        assert 0.25 <= before <= 0.36 and 0.48 <= after <= 0.62
        pd.testing.assert_series_equal(on["started"], off["started"])
    elif inc.table == "csat":
        assert 0.5 <= before - after <= 0.95
        pd.testing.assert_series_equal(on["responses"], off["responses"])
    else:
        assert inc.kind == "scale"
        assert inc.size * 0.8 <= after / before <= inc.size * 1.2


@pytest.mark.parametrize("table", TABLES)
def test_incidents_false_changes_only_the_incident_rows(table: str) -> None:
    on = _gen(table, ANCHOR + timedelta(days=20), END)
    off = _gen(table, ANCHOR + timedelta(days=20), END, incidents=False)
    hit = np.zeros(len(on), dtype=bool)
    for inc in incidents_at(ANCHOR):
        if inc.table == table:
            in_window = ((on["ts"] >= inc.start) & (on["ts"] < inc.end)).to_numpy()
            hit |= in_window & _mask(on, inc.filters)
    pd.testing.assert_frame_equal(on[~hit], off[~hit])
    if hit.any():
        assert not on[hit].equals(off[hit])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("inc", incidents_at(ANCHOR), ids=lambda i: i.name)
def test_without_incidents_nothing_moves(inc: ResolvedIncident, seed: int) -> None:
    """incidents=False is the control for false-alarm tests: the windows look ordinary."""
    z = _window_vs_week_before(inc, inc.filters, seed, incidents=False)
    assert abs(z) < 3.5, (inc.name, z)


def test_source_without_incidents_reports_no_ground_truth() -> None:
    cfg = DemoSourceConfig(type="demo", anchor=ANCHOR, incidents=False)
    assert DemoSource("demo", cfg).incidents == []
    assert DemoSource("demo", cfg.model_copy(update={"incidents": True})).incidents == (
        incidents_at(ANCHOR)
    )


# --- the holiday -----------------------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES)
def test_holiday_volume_is_lower(table: str) -> None:
    day = HOLIDAY_DAYS[0]
    col = KPI[table][1] or KPI[table][0]

    def volume(d: int, **filters: str) -> int:
        start = ANCHOR + timedelta(days=d)
        rows = _select(_gen(table, start, start + timedelta(days=1)), filters)
        return int(rows[col].sum())

    usual = (volume(day - 7) + volume(day + 7)) / 2
    assert 0.4 * usual < volume(day) < 0.75 * usual  # down ~40 %, not an outage
    if table == "checkout":
        store_usual = (volume(day - 7, channel="store") + volume(day + 7, channel="store")) / 2
        assert volume(day, channel="store") < 0.2 * store_usual  # stores (nearly) closed
    assert holidays_at(ANCHOR) == [(ANCHOR + timedelta(days=day)).date()]


def test_holiday_leaves_rates_alone() -> None:
    """The holiday changes volumes, not the drop-off rate: it is not an incident."""
    day = ANCHOR + timedelta(days=HOLIDAY_DAYS[0])
    hol = _select(_gen("checkout", day, day + timedelta(days=1)), {"channel": "app"})
    wk = _select(_gen("checkout", day - WEEK, day - WEEK + timedelta(days=1)), {"channel": "app"})
    assert abs(_kpi("checkout", hol) - _kpi("checkout", wk)) < 0.02


# --- the source ------------------------------------------------------------------------------


def _source(**cfg: object) -> DemoSource:
    return DemoSource("demo", DemoSourceConfig.model_validate({"type": "demo", **cfg}))


def test_fetch_serves_generate() -> None:
    src = _source(anchor="2026-01-05T00:00:00Z", seed=3)
    req = PollRequest(
        metric="checkout_dropoff_rate",
        since=ANCHOR + timedelta(days=1),
        until=ANCHOR + timedelta(days=2),
        query="checkout",
        timestamp_column="ts",
    )
    got = src.fetch(req)
    pd.testing.assert_frame_equal(
        got, generate("checkout", req.since, req.until, seed=3, anchor=ANCHOR)
    )
    assert ((got["ts"] >= req.since) & (got["ts"] < req.until)).all()


@pytest.mark.parametrize("query", ["funnel", None, "select * from checkout"])
def test_unknown_table_is_fatal_and_lists_the_valid_ones(query: str | None) -> None:
    req = PollRequest(metric="m", since=ANCHOR, until=ANCHOR + timedelta(hours=1), query=query)
    with pytest.raises(FatalSourceError) as err:
        _source(anchor=ANCHOR).fetch(req)
    for table in TABLES:
        assert table in str(err.value)


def test_naive_times_are_fatal() -> None:
    req = PollRequest(
        metric="m", since=datetime(2026, 1, 6), until=datetime(2026, 1, 7), query="csat"
    )
    with pytest.raises(FatalSourceError, match="tz-aware"):
        _source(anchor=ANCHOR).fetch(req)


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError, match="extra"):
        DemoSourceConfig.model_validate({"type": "demo", "sede": 3})
    with pytest.raises(ValidationError):
        DemoSourceConfig.model_validate({"type": "sql"})
    with pytest.raises(ValidationError, match="tz-aware"):
        DemoSourceConfig.model_validate({"type": "demo", "anchor": "2026-01-05T00:00:00"})
    with pytest.raises(ValidationError, match="00:00 UTC"):
        DemoSourceConfig.model_validate({"type": "demo", "anchor": "2026-01-05T06:00:00Z"})
    with pytest.raises(ValidationError):
        DemoSourceConfig.model_validate({"type": "demo", "seed": -1})
    cfg = DemoSourceConfig.model_validate({"type": "demo", "anchor": "2026-01-05T01:00:00+01:00"})
    assert cfg.anchor == ANCHOR and cfg.seed == 7 and cfg.incidents is True


def test_registered_as_demo() -> None:
    assert source_types()["demo"] is DemoSource
    assert config_class("demo") is DemoSourceConfig


def test_default_anchor_is_injectable() -> None:
    now = datetime(2026, 2, 2, 15, 42, tzinfo=UTC)
    assert default_anchor(now) == ANCHOR
    assert _source().anchor <= default_anchor(datetime.now(UTC))
    src = DemoSource("demo", DemoSourceConfig(type="demo"), now=lambda: now)
    assert src.anchor == ANCHOR
    assert src.incidents == incidents_at(ANCHOR)  # the last week before "today" holds them all
    with pytest.raises(ValueError, match="tz-aware"):
        default_anchor(datetime(2026, 2, 2))


def test_four_weeks_of_everything_has_every_row() -> None:
    rows = sum(len(_gen(table, ANCHOR, END)) for table in TABLES)
    assert rows == 28 * 24 * (11 + 3 * 60)  # checkout: 11 combinations, the others 60
