"""Row validation and exact roll-ups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from monitor.frames import FrameError, MeasureSpec, build_measure_frame, floor_time
from monitor.model import MEASURE_COLUMNS, ValueKind

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


def spec(**kw: object) -> MeasureSpec:
    base: dict[str, object] = dict(
        metric="dropoff", interval=timedelta(hours=1), kind=ValueKind.RATIO,
        numerator="abandoned", denominator="started", timestamp="ts",
        dimensions=("channel", "region"), labels={"journey": "checkout"},
    )
    base.update(kw)
    return MeasureSpec(**base)  # type: ignore[arg-type]


def leaf_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "ts": [T0 + timedelta(minutes=i) for i in range(4)],
        "channel": ["app", "app", "web", "web"],
        "region": ["uk", "de", "uk", "de"],
        "started": [100, 300, 1000, 10],
        "abandoned": [50, 30, 100, 9],
    })


def value_of(frame: pd.DataFrame, key: str) -> float:
    return float(frame.loc[frame["series"] == key, "value"].iloc[0])


def test_ratio_rollup_is_exact_not_averaged() -> None:
    mf = build_measure_frame(leaf_rows(), spec(), T0, T1)
    total = value_of(mf.frame, 'dropoff{journey="checkout"}')
    assert total == pytest.approx((50 + 30 + 100 + 9) / (100 + 300 + 1000 + 10))
    # the average of the four leaf rates would be very different
    assert total != pytest.approx(np.mean([0.5, 0.1, 0.1, 0.9]))
    app = value_of(mf.frame, 'dropoff{channel="app",journey="checkout"}')
    assert app == pytest.approx(80 / 400)
    # total + 4 leaves + 2 channels + 2 regions
    assert len(mf.frame) == 9 and len(mf.series) == 9
    assert mf.series['dropoff{channel="app",journey="checkout"}'].dimensions == ("channel",)
    assert (mf.frame["timestamp"] == pd.Timestamp(T0)).all()


def test_mean_and_sum_measures() -> None:
    rows = pd.DataFrame({
        "ts": [T0, T0 + timedelta(minutes=5)],
        "channel": ["app", "web"], "region": ["uk", "uk"],
        "rating_sum": [40.0, 9.0], "responses": [10, 3],
    })
    mf = build_measure_frame(
        rows, spec(kind=ValueKind.MEAN, numerator="rating_sum", denominator="responses"), T0, T1
    )
    assert value_of(mf.frame, 'dropoff{journey="checkout"}') == pytest.approx(49 / 13)
    rows = rows.rename(columns={"responses": "complaints"})
    mf = build_measure_frame(
        rows, spec(kind=ValueKind.SUM, numerator="complaints", denominator=None), T0, T1
    )
    total = mf.frame[mf.frame["series"] == 'dropoff{journey="checkout"}']
    assert float(total["value"].iloc[0]) == 13 and np.isnan(total["denominator"].iloc[0])


def test_mean_over_rows_counts_each_row_once() -> None:
    """``{mean: rating}``: one row per survey answer; the mean of a roll-up is the mean of
    its answers (not of its leaves' means), and the count behind it is the number of rows,
    so ``min_volume`` holds back a CSAT from 3 answers. A row without a rating is rejected,
    not counted as an answer."""
    rows = pd.DataFrame({
        "ts": [T0 + timedelta(minutes=i) for i in range(6)],
        "channel": ["app", "app", "app", "web", "web", "web"],
        "region": ["uk"] * 6,
        "rating": [5.0, 4.0, 3.0, 1.0, "n/a", 2.0],
    })
    mf = build_measure_frame(
        rows, spec(kind=ValueKind.MEAN, numerator="rating", denominator=None), T0, T1)
    f = mf.frame.set_index("series")
    total, web = 'dropoff{journey="checkout"}', 'dropoff{channel="web",journey="checkout"}'
    assert f.loc[total, "value"] == pytest.approx(15 / 5)  # not mean(4.0, 1.5) = 2.75
    assert f.loc[total, "denominator"] == 5 and f.loc[total, "numerator"] == 15
    assert f.loc[web, "value"] == pytest.approx(1.5) and f.loc[web, "denominator"] == 2
    assert mf.rejected == {"non_numeric": 1}


def test_bad_rows_are_counted_by_reason_and_never_crash() -> None:
    rows = pd.DataFrame({
        "ts": [T0, "not a time", T0, T0, T0 - timedelta(hours=2), T0, T0, T1, T0],
        "channel": ["app", "app", "app", "web", "app", None, "app", "app", "app"],
        "region": ["uk"] * 9,
        "started": [100, 100, "lots", 100, 100, 100, -3, 100, float("inf")],
        "abandoned": [10, 10, 10, None, 10, 10, 1, 10, 1],
    })
    mf = build_measure_frame(rows, spec(), T0, T1)
    assert mf.rejected == {
        "bad_timestamp": 1, "non_numeric": 1, "missing_value": 1, "before_cursor": 1,
        "missing_dimension": 1, "negative": 1, "non_finite": 1,
    }
    assert mf.rows_in == 9
    # only the first row survives (the T1 row belongs to a later bucket: neither kept nor rejected)
    assert value_of(mf.frame, 'dropoff{journey="checkout"}') == pytest.approx(0.1)


def test_identical_rows_add_up_they_are_not_duplicates() -> None:
    """Rows are additive: identical rows are separate events (or rows of a finer grain than
    the metric's dimensions), never dropped as duplicates."""
    rows = pd.DataFrame({
        "ts": [T0, T0, T0, T0], "channel": ["app", "app", "app", "web"],
        "region": ["uk", "uk", "uk", "uk"],
        "started": [100, 100, 200, 0], "abandoned": [10, 10, 50, 0],
    })
    mf = build_measure_frame(rows, spec(), T0, T1)
    assert mf.rejected == {"zero_denominator": 1}
    # all three app rows are summed: (10 + 10 + 50) / (100 + 100 + 200)
    leaf = 'dropoff{channel="app",journey="checkout",region="uk"}'
    assert value_of(mf.frame, leaf) == pytest.approx(70 / 400)
    assert not (mf.frame["series"].str.contains('channel="web"')).any()


def test_event_rows_count_every_event() -> None:
    """Three identical event rows are a count of 3 (the bug: 1, with 2 'duplicate')."""
    rows = pd.DataFrame({"ts": ["2026-11-27T10:05:00Z"] * 3, "channel": ["app"] * 3,
                         "n": [1, 1, 1]})
    s = MeasureSpec("contacts", timedelta(minutes=5), ValueKind.SUM, "n",
                    timestamp="ts", dimensions=("channel",))
    t = datetime(2026, 11, 27, 10, tzinfo=UTC)
    mf = build_measure_frame(rows, s, t, t + timedelta(hours=1))
    assert mf.rejected == {}
    assert value_of(mf.frame, "contacts") == 3.0
    assert value_of(mf.frame, 'contacts{channel="app"}') == 3.0


def test_rows_without_declared_dimensions_are_summed_not_dropped() -> None:
    mf = build_measure_frame(leaf_rows(), spec(dimensions=()), T0, T1)
    assert mf.rejected == {}
    assert value_of(mf.frame, 'dropoff{journey="checkout"}') == pytest.approx(189 / 1410)


def test_missing_column_is_a_clear_error() -> None:
    with pytest.raises(FrameError, match=r"no column.*started"):
        build_measure_frame(leaf_rows().drop(columns=["started"]), spec(), T0, T1)
    # a typo in the config gets the closest column (a CSV's header, not a "query result")
    with pytest.raises(FrameError) as err:
        build_measure_frame(leaf_rows(), spec(numerator="abandonned"), T0, T1)
    assert str(err.value) == (
        "metric dropoff: the source's rows have no column(s) abandonned; 'abandonned': did "
        "you mean 'abandoned'? (columns returned: ts, channel, region, started, abandoned)")


def test_split_by_is_never_rolled_up() -> None:
    rows = leaf_rows().assign(journey=["a", "a", "b", "b"])
    mf = build_measure_frame(rows, spec(split_by=("journey",), dimensions=("channel",)), T0, T1)
    assert all('journey="' in k for k in mf.series)
    assert set(mf.series) == {
        'dropoff{journey="a"}', 'dropoff{journey="b"}',
        'dropoff{channel="app",journey="a"}', 'dropoff{channel="web",journey="b"}',
    }


def test_buckets_and_naive_timestamps_are_utc() -> None:
    rows = leaf_rows().assign(ts=["2026-01-05 10:59:59"] * 4)
    mf = build_measure_frame(rows, spec(interval=timedelta(minutes=15)), T0, T1)
    assert set(mf.frame["timestamp"]) == {pd.Timestamp("2026-01-05 10:45", tz="UTC")}
    assert floor_time(datetime(2026, 1, 5, 10, 7, tzinfo=UTC), timedelta(minutes=5)) == datetime(
        2026, 1, 5, 10, 5, tzinfo=UTC
    )


def test_naive_and_zoned_timestamps_mixed_in_one_frame_are_all_utc() -> None:
    """One exporter writes Z, another none: the tick must not fail ("Mixed timezones")."""
    rows = leaf_rows().assign(ts=["2026-01-05T10:10:00Z", "2026-01-05 10:20",
                                  "2026-01-05T11:10:00+01:00", "2026-01-05 10:40"])
    mf = build_measure_frame(rows, spec(interval=timedelta(hours=1)), T0, T1)
    assert set(mf.frame["timestamp"]) == {pd.Timestamp("2026-01-05 10:00", tz="UTC")}


def test_numeric_timestamps_are_unix_seconds() -> None:
    """``extract(epoch from ts)`` / ``UNIX_TIMESTAMP(ts)`` columns were read as nanoseconds:
    every row landed in 1970, before the range, and a backfill stored nothing, silently."""
    secs = [int((T0 + timedelta(minutes=i)).timestamp()) for i in range(4)]
    for ts in (secs, [float(s) for s in secs]):
        mf = build_measure_frame(leaf_rows().assign(ts=ts), spec(), T0, T1)
        assert set(mf.frame["timestamp"]) == {pd.Timestamp(T0)}
        assert value_of(mf.frame, 'dropoff{journey="checkout"}') == 189 / 1410
    millis = leaf_rows().assign(ts=[s * 1000 for s in secs])  # Date.now(): milliseconds
    mf = build_measure_frame(millis, spec(), T0, T1)
    assert set(mf.frame["timestamp"]) == {pd.Timestamp(T0)}
    micros = leaf_rows().assign(ts=[s * 10**6 for s in secs])  # beyond both: a bad time
    assert build_measure_frame(micros, spec(), T0, T1).rejected["bad_timestamp"] == 4


def test_unix_times_sent_as_text_are_read_as_numbers() -> None:
    """A CSV column or a JSON string holding ``"1767607200"`` was a bad timestamp: every row
    dropped. Text of 9+ digits is Unix seconds (or milliseconds), 8 digits stay a date."""
    secs = [int((T0 + timedelta(minutes=i)).timestamp()) for i in range(4)]
    as_text = [str(secs[0]), f"{secs[1]}.5", str(secs[2] * 1000), " " + str(secs[3])]
    mf = build_measure_frame(leaf_rows().assign(ts=as_text), spec(), T0, T1)
    assert not mf.rejected
    assert set(mf.frame["timestamp"]) == {pd.Timestamp(T0)}
    assert value_of(mf.frame, 'dropoff{journey="checkout"}') == 189 / 1410
    # mixed with ISO text and a compact date: each read its own way, garbage still counted
    day = spec(interval=timedelta(days=1))
    mixed = leaf_rows().assign(ts=[str(secs[0]), "2026-01-05T10:30:00Z", "20260105", "soon"])
    mf = build_measure_frame(mixed, day, T0.replace(hour=0), T0.replace(hour=0)
                             + timedelta(days=1))
    assert mf.rejected["bad_timestamp"] == 1
    assert set(mf.frame["timestamp"]) == {pd.Timestamp(T0.replace(hour=0))}


def test_no_rows_is_no_data_even_without_the_columns() -> None:
    """A source cannot always know the columns of an empty result (no file yet, a PromQL
    query without series): zero rows is no data, not a missing column."""
    for empty in (pd.DataFrame(), pd.DataFrame(columns=["ts"])):
        mf = build_measure_frame(empty, spec(), T0, T1)
        assert mf.frame.empty and list(mf.frame.columns) == MEASURE_COLUMNS
        assert mf.series == {} and mf.rows_in == 0 and mf.rejected == {}
