"""Seasonal detectors on a local wall clock: a shop in Berlin or New York keeps its 9:00 peak
at 9:00 local time, which moves an hour in UTC at each change of summer time. With the
metric's ``timezone`` the time-of-day and time-of-week slots follow the wall clock, so the
week after a clock change raises no false alarms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detectors.base import TickBatch
from detectors.registry import create
from detectors.robust_seasonal import RobustSeasonal
from monitor.config import ConfigError, parse_config
from monitor.zones import wall_clock_ns

HOUR = timedelta(hours=1)
SPRING = datetime(2026, 3, 29, 1, tzinfo=UTC)  # Europe/Berlin: 02:00 CET -> 03:00 CEST
AUTUMN = datetime(2026, 10, 25, 1, tzinfo=UTC)  # 03:00 CEST -> 02:00 CET


def _local_counts(start: datetime, hours: int, zone: str, seed: int = 57
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Hourly ticket counts of a support desk open 08:00-20:00 on ``zone``'s clocks, busiest
    late morning (weekends lower)."""
    utc = pd.date_range(start, periods=hours, freq="h")
    local = utc.tz_convert(zone)
    h = np.asarray(local.hour, dtype=float)
    rate = np.where((h >= 8) & (h < 20), 60 + 60 * np.exp(-((h - 11) ** 2) / 8), 3.0)
    rate *= np.where(np.asarray(local.day_of_week) >= 5, 0.5, 1.0)
    values = np.random.default_rng(seed).poisson(rate).astype(float)
    return utc.as_unit("ns").asi8, values


def _alarms_after(detector: dict, change: datetime, zone: str = "Europe/Berlin") -> int:
    """Points of severity 25 or more (p < 1e-4) in the week after ``change``, streaming five
    weeks of history before it; the data has no incident, so each one is a false alarm."""
    start = change - timedelta(weeks=5)
    ts, values = _local_counts(start, 6 * 7 * 24, zone)
    det = create(detector, interval=HOUR)
    alarms = 0
    change_ns = int(pd.Timestamp(change).value)
    for t, v in zip(ts, values, strict=True):
        batch = TickBatch.of(["tickets"], [t], [v])
        score = det.score(batch).score[0]
        if t >= change_ns and score >= 1 - 1e-4:
            alarms += 1
        det.learn(batch, np.array([False]))
    return alarms


@pytest.mark.parametrize("kind", ["robust_seasonal", "seasonal_baseline"])
@pytest.mark.parametrize("change", [SPRING, AUTUMN], ids=["spring", "autumn"])
def test_a_clock_change_raises_no_false_alarms_on_the_local_wall_clock(
        kind: str, change: datetime) -> None:
    utc = _alarms_after({"type": kind}, change)
    local = _alarms_after({"type": kind, "timezone": "Europe/Berlin"}, change)
    assert local == 0
    assert utc >= 5  # UTC slots: the morning ramp is an hour off for a week and more


def test_the_new_york_clock_change_is_followed_too() -> None:
    change = datetime(2026, 3, 8, 7, tzinfo=UTC)  # 02:00 EST -> 03:00 EDT
    assert _alarms_after({"type": "robust_seasonal", "timezone": "America/New_York"},
                         change, "America/New_York") == 0
    assert _alarms_after({"type": "robust_seasonal"}, change, "America/New_York") >= 5


def test_wall_clock_repeats_the_hour_clocks_go_back() -> None:
    """Both 02:00 of 25 October are 02:00 on the wall clock (one slot); 03:00 follows."""
    ts = pd.date_range(AUTUMN - HOUR, periods=3, freq="h").as_unit("ns").asi8
    local = pd.to_datetime(wall_clock_ns(ts, "Europe/Berlin"), unit="ns")
    assert [t.hour for t in local] == [2, 2, 3]


@pytest.mark.parametrize("kind", ["robust_seasonal", "seasonal_baseline"])
def test_a_checkpoint_is_not_reused_on_another_wall_clock(kind: str) -> None:
    """State learned in UTC slots would be an hour or more off in Berlin's: a changed
    ``timezone`` relearns (set_state refuses it, as for a changed interval)."""
    ts, values = _local_counts(SPRING - timedelta(days=3), 48, "Europe/Berlin")
    utc = create({"type": kind}, interval=HOUR)
    berlin = create({"type": kind, "timezone": "Europe/Berlin"}, interval=HOUR)
    for det in (utc, berlin):
        for t, v in zip(ts, values, strict=True):
            det.learn(TickBatch.of(["s"], [t], [v]), np.zeros(1, bool))
    with pytest.raises(ValueError, match="Europe/Berlin"):
        create({"type": kind, "timezone": "Europe/Berlin"}, interval=HOUR).set_state(
            utc.get_state())
    with pytest.raises(ValueError, match="UTC"):
        create({"type": kind}, interval=HOUR).set_state(berlin.get_state())
    again = create({"type": kind}, interval=HOUR)
    again.set_state(utc.get_state())  # same clock: reused (UTC checkpoints of old releases)
    assert again.get_state() == utc.get_state()


BASE = """
sources: {exports: {type: files, path: "exports/*.csv"}}
detectors:
  default: {type: robust_seasonal}
  ny: {type: seasonal_baseline, timezone: America/New_York}
  hst: {type: surprise}
metrics:
  - {name: tickets_de, source: exports, interval: 1h, value: tickets, timezone: ZONE,
     detectors: [default, ny, hst]}
  - {name: tickets_utc, source: exports, interval: 1h, value: tickets}
"""


def test_a_metric_timezone_sets_its_detectors_wall_clock() -> None:
    cfg = parse_config(BASE.replace("ZONE", "Europe/Berlin"))
    de = cfg.detectors_for(cfg.metric("tickets_de"))
    assert de["default"].timezone == "Europe/Berlin"  # type: ignore[attr-defined]
    assert de["ny"].timezone == "America/New_York"  # type: ignore[attr-defined]  # its own
    assert "timezone" not in type(de["hst"]).model_fields  # no season: nothing to follow
    other = cfg.detectors_for(cfg.metric("tickets_utc"))
    assert other["default"].timezone == "UTC"  # type: ignore[attr-defined]
    det = create(de["default"], interval=HOUR)
    assert isinstance(det, RobustSeasonal) and det.cfg.timezone == "Europe/Berlin"


def test_an_unknown_metric_timezone_is_a_problem_at_its_path() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BASE.replace("ZONE", "Berlin").replace(
            "timezone: America/New_York", "timezone: America/NewYork"))
    text = str(err.value)
    assert "metrics[0].timezone" in text and "did you mean Europe/Berlin" in text
    assert "detectors.ny.timezone" in text and "America/New_York" in text


def test_prophet_sees_the_local_wall_clock() -> None:
    """Fitted on three weeks that end a day after the spring change (the desk now opens at
    06:00 and closes at 18:00 UTC), a forecast on the wall clock is much closer at opening
    and closing time than one in UTC, which still expects them an hour later."""
    pytest.importorskip("prophet")
    from detectors.prophet_detector import fit_forecast

    ts, values = _local_counts(SPRING - timedelta(weeks=3), 3 * 7 * 24 + 48, "Europe/Berlin")
    hours = pd.to_datetime(ts[-24:]).hour
    ramps = np.isin(hours, [6, 18])
    errors = {}
    for zone in ("UTC", "Europe/Berlin"):
        fc = fit_forecast(ts[:-24], values[:-24],
                          {"type": "prophet", "timezone": zone, "history": "4w"},
                          3_600_000_000_000, 24)
        errors[zone] = float(np.abs(fc.yhat - values[-24:])[ramps].sum())
    assert errors["Europe/Berlin"] < 0.75 * errors["UTC"]


def test_novelty_compares_with_the_same_wall_clock_time_on_previous_days() -> None:
    """The day after clocks go forward, yesterday's 09:00 was 23 hours ago: on the wall
    clock the same-time-of-day view finds the day's own shape, in UTC it is an hour off."""
    ts, values = _local_counts(SPRING - timedelta(weeks=3), 4 * 7 * 24, "Europe/Berlin")
    after = (ts >= pd.Timestamp(SPRING).value) & (
        ts < pd.Timestamp(SPRING + timedelta(days=2)).value)
    mean = {}
    for zone in ("UTC", "Europe/Berlin"):
        det = create({"type": "novelty", "timezone": zone}, interval=HOUR)
        column = len(det.cfg.windows)  # the same-time-of-day view follows the windows
        seen = []
        for t, v, look in zip(ts, values, after, strict=True):
            batch = TickBatch.of(["s"], [t], [v])
            if look:
                st = det._st[det._rows(batch.series)]
                seen.append(det._distances(st["buf"], st["n"], batch.values,
                                           batch.timestamps)[0, column])
            det.learn(batch, np.array([False]))
        mean[zone] = float(np.nanmean(seen))
    assert mean["Europe/Berlin"] < 0.5 * mean["UTC"]


def test_validate_warns_when_a_local_business_learns_on_the_utc_clock(tmp_path: Path) -> None:
    """A calendar in Berlin (or a source reading Berlin times) says where the business is;
    detectors still on UTC slots would false-alarm for a week after each clock change."""
    from tests.test_cli import validate_warnings

    (tmp_path / "a.csv").write_text("ts,n\n")
    text = f"""
sources: {{f: {{type: files, path: "{tmp_path}/*.csv"}}}}
metrics:
  - {{name: tickets, source: f, interval: 1h, history: 2w, timestamp: ts, value: n}}
  - {{name: orders, source: f, interval: 1d, history: 2w, timestamp: ts, value: n}}
calendar: {{timezone: Europe/Berlin, holidays: [DE]}}
"""
    (warning,) = validate_warnings(tmp_path, text)
    assert warning.startswith("warning metrics[0]: its calendar is in Europe/Berlin")
    assert warning.endswith("set timezone: Europe/Berlin")  # daily buckets have no clock
    fixed = text.replace("value: n}\n  - {name: orders",
                         "value: n, timezone: Europe/Berlin}\n  - {name: orders")
    assert fixed != text
    assert validate_warnings(tmp_path, fixed) == []
    assert validate_warnings(tmp_path, text.replace("Europe/Berlin", "Asia/Tokyo")) == []


# -- `expected` feedback on the metric's wall clock --------------------------------------

PROMO = datetime(2026, 3, 23, 10, tzinfo=UTC)  # Monday 11:00 in Berlin (winter time)


def _raised(book_zone: str, at: datetime) -> bool:
    """Whether an ``expected`` verdict on the PROMO hour raises the series at ``at``."""
    from detectors.feedback import MARGIN, FeedbackBook, Verdict

    book = FeedbackBook(zone=book_zone)
    book.add(Verdict("s", "expected", at_ns=int(pd.Timestamp(PROMO).value), severity=30, id=1))
    need = book.min_severity(np.array(["s"], dtype=object),
                             np.array([int(pd.Timestamp(at).value)]), 25.0)
    return bool(need[0] == 30 + MARGIN)


def test_expected_feedback_suppresses_the_same_local_hour_after_a_clock_change() -> None:
    """The Monday 11:00 promotion is at 09:00 UTC the Monday after summer time begins: the
    verdict follows the shop's clock there, not the UTC hour."""
    week = timedelta(weeks=1)
    assert _raised("Europe/Berlin", PROMO + week - HOUR)  # 11:00 CEST = 09:00 UTC
    assert not _raised("Europe/Berlin", PROMO + week)  # 12:00 local: another hour
    assert _raised("UTC", PROMO + week)  # UTC metrics: unchanged
    assert not _raised("UTC", PROMO + week - HOUR)
    # "the rest of that day" ends at local midnight (23:00 UTC in winter), not UTC midnight
    assert _raised("Europe/Berlin", PROMO + timedelta(hours=12, minutes=30))
    assert not _raised("Europe/Berlin", PROMO + timedelta(hours=13, minutes=30))
    assert _raised("UTC", PROMO + timedelta(hours=13, minutes=30))


def test_backtest_reports_expected_feedback_in_force_at_the_local_hour() -> None:
    """``cxmon backtest``'s "in force" count uses the same local windows as the decision."""
    from detectors.feedback import FeedbackBook, Verdict

    book = FeedbackBook(zone="Europe/Berlin")
    book.add(Verdict("s", "expected", at_ns=int(pd.Timestamp(PROMO).value), severity=30, id=1))
    nxt = PROMO + timedelta(weeks=1) - HOUR
    lo, hi = int(pd.Timestamp(nxt).value), int(pd.Timestamp(nxt + HOUR).value)
    assert [v.id for v in book.in_force(lo, hi)] == [1]
    assert book.in_force(hi, hi + 3_600 * 10**9) == []


def test_a_metric_timezone_sets_its_feedback_clock(tmp_path: Path) -> None:
    """Live ticks (the pipeline) and ``cxmon backtest`` both decide on the metric's clock."""
    from detectors.feedback import FeedbackBook
    from monitor.backtest import _metric_detectors
    from monitor.pipeline import Pipeline
    from monitor.store import Store

    cfg = parse_config(BASE.replace("ZONE", "Europe/Berlin"))
    assert _metric_detectors(cfg, "tickets_de", FeedbackBook()).feedback.zone == "Europe/Berlin"
    assert _metric_detectors(cfg, "tickets_utc", FeedbackBook()).feedback.zone == "UTC"
    store = Store.open(f"sqlite:///{tmp_path / 'fb.db'}")
    try:
        pipeline = Pipeline(cfg, store, notifiers={})
        assert pipeline._new_detectors(cfg.metric("tickets_de")).feedback.zone == "Europe/Berlin"
        assert pipeline._new_detectors(cfg.metric("tickets_utc")).feedback.zone == "UTC"
    finally:
        store.close()
