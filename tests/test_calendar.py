"""The business calendar: holidays and events are not learned, and on ``skip`` days not
scored or alerted (not even as data that stopped); ``score`` days still alert."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from detectors.calendar import BusinessCalendar, CalendarConfig, CalendarDay, Calendars
from detectors.postrules import PostRules
from detectors.registry import create
from monitor.backtest import run_backtest
from monitor.cli import app
from monitor.config import ConfigError, parse_config
from monitor.detection import MetricDetectors
from monitor.model import Series
from tests.test_postrules_feedback import T0  # 2026-01-05, a Monday
from tests.test_postrules_feedback import frame as postrule_frame

HOUR = timedelta(hours=1)
ANCHOR = T0


def _cal(**cfg: object) -> BusinessCalendar:
    return BusinessCalendar(CalendarConfig.model_validate(cfg))


def _cals(**cfg: object) -> Calendars:
    return Calendars(CalendarConfig.model_validate(cfg))


def test_days_are_local_dates_in_the_calendar_zone() -> None:
    cal = _cal(timezone="America/New_York", holidays=["US"])
    # Thanksgiving 2026 is Thursday 26 November: 03:00 UTC that day is still Wednesday
    # evening in New York, and 03:00 UTC on Friday is Thursday evening there
    thanksgiving = CalendarDay("Thanksgiving Day", "skip")
    assert cal.day_at(datetime(2026, 11, 26, 3, tzinfo=UTC)) is None
    assert cal.day_at(datetime(2026, 11, 26, 6, tzinfo=UTC)) == thanksgiving
    assert cal.day_at(datetime(2026, 11, 27, 3, tzinfo=UTC)) == thanksgiving
    assert cal.day_at_ns(int(datetime(2026, 11, 27, 6, tzinfo=UTC).timestamp()) * 10**9) is None


def test_events_win_over_holidays_and_carry_their_mode() -> None:
    cal = _cal(holidays=["GB-SCT"], mode="skip",
               events=[{"name": "Cyber week", "start": "2026-11-28", "end": "2026-11-30",
                        "mode": "score"}])
    got = dict(cal.days(date(2026, 11, 27), date(2026, 12, 1)))
    # St Andrew's Day (Scotland, 30 November) falls inside the event: the event is named
    assert got == {date(2026, 11, d): CalendarDay("Cyber week", "score") for d in (28, 29, 30)}
    assert cal.day_at(datetime(2026, 12, 25, 12, tzinfo=UTC)) == CalendarDay(
        "Christmas Day", "skip")
    assert cal.skips(datetime(2026, 12, 25, 12, tzinfo=UTC))
    assert not cal.skips(datetime(2026, 11, 29, 12, tzinfo=UTC))  # a score day


BASE = """
sources:
  shop: {type: demo, seed: 7, anchor: "2026-01-05T00:00:00Z"}
metrics:
  - name: contacts
    source: shop
    query: contacts
    interval: 1h
    timestamp: ts
    dimensions: [region]
    value: contacts
    history: 7d
"""


def test_bad_calendars_are_rejected_with_every_problem_by_path() -> None:
    bad = BASE + """    calendar: maybe
calendar:
  timezone: Mars/Base
  holidays: [GB-XX, QQ, us]
  mode: later
  events: [{name: sale, start: 2026-11-30, end: 2026-11-27}]
"""
    with pytest.raises(ConfigError) as err:
        parse_config(bad)
    paths = sorted(p.path for p in err.value.problems)
    assert paths == ["calendar.events[0].end", "calendar.holidays[0]", "calendar.holidays[1]",
                     "calendar.mode", "calendar.timezone", "metrics[0].calendar"]
    text = " ".join(p.message for p in err.value.problems)
    assert "unknown subdivision 'XX' of GB (known: ENG, NIR, SCT, WLS)" in text
    assert "unknown holidays country 'QQ'" in text and "unknown time zone 'Mars/Base'" in text


def _by_day(frame: pd.DataFrame) -> dict[int, int]:
    days = (frame["timestamp"] - ANCHOR).dt.days
    return {int(k): int(v) for k, v in days.value_counts().sort_index().items()}


def test_the_demo_holiday_alerts_unless_the_calendar_skips_it() -> None:
    """The demo's day 14 is a public holiday (volumes -40 %, stores closed): without a
    calendar every region's contact volume alerts; skipped, nothing does, and the scripted
    incident of day 26 is still found. ``score`` keeps the holiday's alerts."""
    holiday = (ANCHOR + timedelta(days=14)).date().isoformat()
    event = f"{{name: Holiday, start: {holiday}, end: {holiday}}}"
    start, end = ANCHOR + timedelta(days=7), ANCHOR + timedelta(days=28)
    runs = {}
    for name, extra in (("none", ""), ("skip", f"calendar: {{events: [{event}]}}\n"),
                        ("score", f"calendar: {{mode: score, events: [{event}]}}\n")):
        res = run_backtest(parse_config(BASE + extra), ["contacts"], start, end)
        runs[name] = (_by_day(res.anomalies), res.summary["contacts"].get("calendar"))
    plain, skip, score = runs["none"][0], runs["skip"][0], runs["score"][0]
    assert plain.get(14, 0) >= 20 and plain.get(26, 0) >= 1
    assert skip.get(14, 0) == 0 and skip.get(26) == plain[26]
    # scored as usual, sustained tests included, but not learned: the holiday alerts at
    # least as much as without a calendar (which learns the day as it goes); day 26 alike
    assert score.get(14, 0) >= plain[14] and score.get(26) == plain[26]
    assert runs["skip"][1] == {holiday: ("Holiday", "skip")}
    assert runs["score"][1] == {holiday: ("Holiday", "score")}


# a measure frame of (hour after T0, series, value) points, as the post-rule tests build it
_frame = postrule_frame


def _detectors(calendar: Calendars | None, no_data_after: int = 0) -> MetricDetectors:
    cfg = create({"type": "robust_seasonal"}, interval=HOUR).config
    return MetricDetectors("kpi", HOUR, {"d": cfg}, PostRules(no_data_after=no_data_after),
                           calendar=calendar)


def test_a_skipped_day_is_learned_as_if_it_were_missing() -> None:
    """What the baseline expects a week after a holiday is exactly what it would expect had
    the holiday sent no data at all: the day does not become the next week's normal."""
    rng = np.random.default_rng(3)
    hours = 21 * 24
    day = np.arange(hours) // 24
    values = 100 + 30 * np.sin(np.arange(hours) / 24 * 2 * np.pi) + rng.normal(0, 3, hours)
    values[day == 14] *= 0.1  # the holiday: 90 % down
    pts = [(t, "s", float(v)) for t, v in enumerate(values)]
    holiday = (T0 + timedelta(days=14)).date().isoformat()
    cal = _cals(events=[{"name": "Holiday", "start": holiday, "end": holiday}])
    with_cal = _detectors(cal).run(_frame(pts), {}, keep_scores=True).scores
    absent = _detectors(None).run(_frame([p for p in pts if p[0] // 24 != 14]), {},
                                  keep_scores=True).scores
    learned = _detectors(None).run(_frame(pts), {}, keep_scores=True).scores
    assert with_cal is not None and absent is not None and learned is not None
    after = with_cal["timestamp"] >= T0 + timedelta(days=15)
    np.testing.assert_array_equal(with_cal.loc[after, "expected"].to_numpy(),
                                  absent.loc[absent["timestamp"] >= T0 + timedelta(days=15),
                                             "expected"].to_numpy())
    on_day = with_cal["timestamp"].dt.floor("D") == pd.Timestamp(holiday, tz=UTC)
    assert with_cal.loc[on_day, "score"].isna().all()  # not judged ...
    assert with_cal.loc[on_day, "expected"].notna().all()  # ... but the band is still shown
    # learned without a calendar, the holiday leaves its mark on the next days' baseline
    truth = 100 + 30 * np.sin(np.arange(hours) / 24 * 2 * np.pi)
    next_days = (day >= 15) & (day < 18)
    err_cal = np.abs(with_cal["expected"].to_numpy()[next_days] - truth[next_days]).mean()
    err_learned = np.abs(learned["expected"].to_numpy()[next_days] - truth[next_days]).mean()
    assert err_cal < 0.5 * err_learned  # measured: 0.94 against 2.93


def test_data_that_stops_on_a_skipped_day_is_reported_after_it() -> None:
    """A store closed on a holiday sends nothing: no ``no_data`` while the day lasts; if it
    has not come back the day after, the gap is reported then."""
    holiday = (T0 + timedelta(days=1)).date().isoformat()
    cal = _cals(events=[{"name": "Closed", "start": holiday, "end": holiday}])
    labels = {"a": Series("kpi", {"shop": "a"}), "b": Series("kpi", {"shop": "b"})}

    def gaps(dets: MetricDetectors, hours: range, b_until: int) -> list[datetime]:
        out = []
        for t in hours:
            pts = [(t, "a", 1.0)] + ([(t, "b", 2.0)] if t < b_until else [])
            res = dets.run(_frame(pts), labels, until=T0 + (t + 1) * HOUR)
            out += [x.timestamp for x in res.anomalies if x.kind == "no_data"]
        return out

    # b stops at the start of the holiday and comes back the next morning: never reported
    dets = _detectors(cal, no_data_after=3)
    assert gaps(dets, range(0, 24), 24) == []
    assert gaps(dets, range(24, 48), 24) == []
    assert gaps(dets, range(48, 52), 99) == []
    # the same without a calendar: reported on the holiday
    assert gaps(_detectors(None, no_data_after=3), range(0, 30), 24) == [T0 + 26 * HOUR]
    # b never comes back: reported as soon as the holiday is over
    dets = _detectors(cal, no_data_after=3)
    assert gaps(dets, range(0, 50), 24) == [T0 + 26 * HOUR]  # overdue since


def test_calendar_command_lists_the_days_ahead(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "cxmon.yaml"
    path.write_text(BASE + """  - name: csat
    source: shop
    query: csat
    interval: 1h
    timestamp: ts
    value: {mean: [rating_sum, responses]}
    calendar: false
calendar:
  timezone: Europe/London
  holidays: [GB]
  events: [{name: Black Friday, start: 2026-11-27, end: 2026-11-27, mode: score}]
""")
    out = CliRunner().invoke(app, ["calendar", "-c", str(path), "--from", "2026-11-20",
                                   "--days", "40"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    lines = [line for line in out.output.splitlines() if "2026-" in line and "│" in line]
    assert [line.split("│")[1].strip() for line in lines] == [
        "2026-11-27", "2026-12-25", "2026-12-26", "2026-12-28"]
    assert "scored and alerted, not learned" in lines[0]
    assert "Christmas Day" in lines[1] and "not scored, not learned" in lines[1]
    assert "applies to 1 metric(s); not to csat (calendar: false)" in out.output
    bad = CliRunner().invoke(app, ["calendar", "-c", str(path), "--from", "soon"])
    assert bad.exit_code == 2 and "not a date" in bad.output


def test_a_metric_silent_on_a_skipped_day_is_reported_only_after_it(tmp_path, caplog) -> None:
    """The whole metric going quiet on a ``skip`` day (a closed shop) is no incident while
    the day lasts, and is said in the log once; still silent the day after, it is one."""
    import logging

    from tests.test_sources_pipeline import QuietShop, run, setup

    closed = "calendar: {events: [{name: Closed, start: 2026-01-05, end: 2026-01-05}]}"
    p, store, clock, _ = setup(tmp_path, extra="\n" + closed)
    shop = QuietShop()
    p.sources["shop"] = shop  # type: ignore[index]
    with caplog.at_level(logging.INFO, logger="monitor.pipeline"):
        run(p, clock, T0 + timedelta(minutes=30))
        shop.cutoff = clock.now()
        quiet = run(p, clock, T0 + timedelta(hours=2))
        assert not [a for r in quiet for a in r.anomalies if a.kind == "no_data"]
        clock.advance(timedelta(hours=22))  # one catch-up tick up to midnight
        assert not [a for a in p.tick("orders").anomalies if a.kind == "no_data"]
        after = run(p, clock, T0 + timedelta(days=1, minutes=15))
    silence = [a for r in after for a in r.anomalies if a.kind == "no_data"]
    assert silence and {a.last_seen for a in silence} == {shop.cutoff}
    said = [r.getMessage() for r in caplog.records if "calendar: skip" in r.getMessage()]
    assert said == ["orders: 2026-01-05 is Closed (calendar: skip): its points are not "
                    "scored, not learned"]
    # without the calendar the same silence is an incident on the day
    p2, store2, clock2, _ = setup(tmp_path / "plain")
    shop2 = QuietShop()
    p2.sources["shop"] = shop2  # type: ignore[index]
    run(p2, clock2, T0 + timedelta(minutes=30))
    shop2.cutoff = clock2.now()
    plain = run(p2, clock2, T0 + timedelta(hours=2))
    assert [a for r in plain for a in r.anomalies if a.kind == "no_data"]
    for pipe, st in ((p, store), (p2, store2)):
        pipe.close()
        st.close()


BY_REGION = """calendar:
  events: [{name: Holiday, start: 2026-01-19, end: 2026-01-19}]
  by:
    label: region
    values:
      de: {timezone: Etc/GMT-1, events: [{name: Feiertag, start: 2026-01-19, end: 2026-01-19}]}
      fr: {timezone: Etc/GMT-1, events: [{name: Jour férié, start: 2026-01-19, end: 2026-01-19}]}
      us: {timezone: Etc/GMT+5, events: [{name: Holiday, start: 2026-01-19, end: 2026-01-19}]}
"""


def test_each_region_can_follow_its_own_calendar() -> None:
    """The demo's holiday is day 14 in each region's local calendar (the US five hours
    behind): one UTC calendar leaves the US evening of the holiday alerting; a calendar per
    region (``by: {label: region}``) skips every region's own day, totals keep the top one."""
    start, end = ANCHOR + timedelta(days=7), ANCHOR + timedelta(days=28)
    one = BASE + "calendar: {events: [{name: Holiday, start: 2026-01-19, end: 2026-01-19}]}\n"
    utc = run_backtest(parse_config(one), ["contacts"], start, end)
    assert list(utc.anomalies.loc[_days(utc.anomalies) == 15, "series"]) == [
        'contacts{region="us"}']  # 01:00 UTC on day 15 is still the holiday in the US
    by = run_backtest(parse_config(BASE + BY_REGION), ["contacts"], start, end)
    assert set(_by_day(by.anomalies)) == {26}  # only the scripted incident
    assert by.summary["contacts"]["calendar"] == {
        "2026-01-19": ("Holiday", "skip"), "2026-01-19 (region=de)": ("Feiertag", "skip"),
        "2026-01-19 (region=fr)": ("Jour férié", "skip"),
        "2026-01-19 (region=us)": ("Holiday", "skip"),
        # the total over regions is off on every region's day, in UTC dates: Berlin's
        # holiday starts at 23:00 UTC the day before, New York's ends at 05:00 the day after
        "2026-01-18 (region=any)": ("Feiertag (region=de)", "skip"),
        "2026-01-19 (region=any)": ("Holiday", "skip"),
        "2026-01-20 (region=any)": ("Holiday (region=us)", "skip")}


def _days(frame: pd.DataFrame) -> pd.Series:
    return (frame["timestamp"] - ANCHOR).dt.days


def test_a_region_closed_for_its_holiday_is_not_a_gap_but_the_others_are() -> None:
    cals = _cals(by={"label": "shop", "values": {
        "b": {"events": [{"name": "Closed", "start": "2026-01-05", "end": "2026-01-05"}]}}})
    labels = {f'kpi{{shop="{k}"}}': Series("kpi", {"shop": k}) for k in "abc"}
    dets = _detectors(cals, no_data_after=3)
    gone: list[str] = []
    for t in range(30):  # shops a and b send nothing from 02:00 to 23:00, c goes on
        pts = [(t, k, 1.0) for k in labels if t < 2 or t >= 23 or "c" in k]
        res = dets.run(_frame(pts), labels, until=T0 + (t + 1) * HOUR)
        gone += [x.series for x in res.anomalies if x.kind == "no_data"]
    assert gone == ['kpi{shop="a"}']  # b was closed for the day, a was not


def test_a_calendar_label_no_metric_has_is_a_config_error() -> None:
    bad = BASE + "calendar: {by: {label: regoin, values: {de: {holidays: [DE]}}}}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(bad)
    [problem] = err.value.problems
    assert problem.path == "calendar.by.label"
    assert ("no metric that follows the calendar has a label 'regoin' (did you mean "
            "'region'?)") in problem.message
    # a metric that opts out of the calendar does not make its labels valid here
    opted_out = BASE.replace("    history: 7d\n", "    history: 7d\n    calendar: false\n")
    with pytest.raises(ConfigError) as err:
        parse_config(opted_out + "calendar: {by: {label: region, values: {de: {}}}}\n")
    assert [p.path for p in err.value.problems] == ["calendar.by.label"]


def test_calendar_command_shows_each_regions_days(tmp_path) -> None:
    path = tmp_path / "cxmon.yaml"
    path.write_text(BASE + """calendar:
  timezone: Europe/London
  holidays: [GB]
  by: {label: region, values: {de: {timezone: Europe/Berlin, holidays: [DE]}}}
""")
    out = CliRunner().invoke(app, ["calendar", "-c", str(path), "--from", "2026-10-01",
                                   "--days", "87"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    rows = [[c.strip() for c in line.split("│")[1:4]] for line in out.output.splitlines()
            if "2026-" in line and "│" in line]
    assert rows == [["2026-10-03", "Sat", "region=de"], ["2026-12-25", "Fri", "other series"],
                    ["2026-12-25", "Fri", "region=de"], ["2026-12-26", "Sat", "other series"],
                    ["2026-12-26", "Sat", "region=de"]]
    assert ("series with region=de follow their own calendar; the totals over region "
            "(contacts) are off on any of those days; the other series follow the top-level "
            "one") in out.output


def test_prophet_with_its_own_holidays_still_learns_the_calendar_days() -> None:
    """Prophet with ``holidays`` or ``events`` estimates a holiday's effect from the days it
    has seen, so the business calendar must not hide them from it (it still blanks the
    scores of a skip day); without its own calendar Prophet is treated like the others."""
    holiday = (T0 + timedelta(days=2)).date().isoformat()
    cals = _cals(events=[{"name": "Holiday", "start": holiday, "end": holiday}])
    pts = [(t, "s", float(10 + t % 24)) for t in range(4 * 24)]
    learned = {}
    for name, extra in (("own", {"events": [{"name": "Holiday", "start": holiday,
                                             "end": holiday}]}), ("plain", {})):
        cfg = create({"type": "prophet", "refit": "100d", "min_history": "100d", **extra},
                     interval=HOUR).config
        dets = MetricDetectors("kpi", HOUR, {"p": cfg}, PostRules(), calendar=cals)
        res = dets.run(_frame(pts), {}, keep_scores=True)
        assert res.scores is not None
        day = res.scores["timestamp"].dt.floor("D") == pd.Timestamp(holiday, tz=UTC)
        assert res.scores.loc[day, "score"].isna().all()
        learned[name] = len(dets.detectors["p"].get_state(["s"])["s"])
    assert learned["own"] > learned["plain"]  # 24 more hourly points kept in its history


def test_a_daily_bucket_is_the_local_day_it_mostly_covers() -> None:
    """Daily buckets start at midnight UTC, which in New York is 19:00 the evening before:
    counted by its start, Thanksgiving's bucket was scored and the Friday's skipped."""
    day = timedelta(days=1)
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    cal = _cals(timezone="America/New_York", holidays=["US"])
    cfg = create({"type": "robust_seasonal"}, interval=day).config
    dets = MetricDetectors("kpi", day, {"d": cfg}, PostRules(), calendar=cal)
    frame = pd.DataFrame({"timestamp": [t0 + i * day for i in range(60)], "series": "s",
                          "value": 100.0, "denominator": np.nan})
    res = dets.run(frame, {}, keep_scores=True)
    assert res.scores is not None
    skipped = res.scores.loc[res.scores["score"].isna(), "timestamp"].dt.date.tolist()
    assert date(2026, 11, 26) in skipped  # Thanksgiving
    assert date(2026, 11, 27) not in skipped and date(2026, 11, 25) not in skipped
    assert res.calendar_days["2026-11-26"] == CalendarDay("Thanksgiving Day", "skip")
    assert "2026-11-27" not in res.calendar_days


def test_a_by_value_no_series_has_is_named_and_not_said_to_have_skipped(tmp_path) -> None:
    """``DE`` where the source says ``de``: the German series follow the top-level calendar.
    The backtest said ``2026-01-19 (region=DE) Holiday`` was skipped, though no series had
    that calendar; it names the value that matched nothing instead."""
    cfg = BASE + """calendar:
  by:
    label: region
    values:
      DE: {events: [{name: Feiertag, start: 2026-01-19, end: 2026-01-19}]}
      us: {events: [{name: Holiday, start: 2026-01-19, end: 2026-01-19}]}
"""
    start, end = ANCHOR + timedelta(days=13), ANCHOR + timedelta(days=15)
    res = run_backtest(parse_config(cfg), ["contacts"], start, end)
    summary = res.summary["contacts"]
    assert summary["calendar"] == {
        "2026-01-19 (region=us)": ("Holiday", "skip"),
        # the total over regions follows the calendars of the regions its series have
        "2026-01-19 (region=any)": ("Holiday (region=us)", "skip")}
    assert summary["calendar_unmatched"] == ("region", ["DE"], ["de", "fr", "uk", "us"])
    path = tmp_path / "cxmon.yaml"
    path.write_text(cfg)
    out = CliRunner().invoke(app, ["backtest", "-c", str(path), "--start", "2026-01-18",
                                   "--end", "2026-01-20", "--no-feedback"], env={"COLUMNS": "300"})
    assert out.exit_code == 0, out.output
    assert ("contacts: calendar.by.values 'DE' matched no series (region values seen: de, fr, "
            "uk, us)") in out.output
    assert "(region=DE)" not in out.output


def test_the_shortest_of_overlapping_events_names_the_day() -> None:
    """A one-day event inside a longer one listed first was hidden by it: Cyber Monday
    (skip) inside the Black Friday weekend (score) was scored as Black Friday."""
    cal = _cal(events=[
        {"name": "Black Friday", "start": "2026-11-27", "end": "2026-11-30", "mode": "score"},
        {"name": "Cyber Monday", "start": "2026-11-30", "end": "2026-11-30", "mode": "skip"},
        {"name": "Also Monday", "start": "2026-11-30", "end": "2026-11-30", "mode": "score"}])
    got = dict(cal.days(date(2026, 11, 27), date(2026, 11, 30)))
    assert got[date(2026, 11, 29)] == CalendarDay("Black Friday", "score")
    assert got[date(2026, 11, 30)] == CalendarDay("Cyber Monday", "skip")


def test_an_event_without_an_end_is_its_one_day() -> None:
    """``{name: Black Friday, start: 2026-11-27}`` was "missing required key 'end'"."""
    cfg = parse_config(BASE + "calendar: {events: [{name: Black Friday, start: 2026-11-27, "
                       "mode: score}]}\n")
    assert cfg.calendar is not None
    event = cfg.calendar.events[0]
    assert (event.start, event.end) == (date(2026, 11, 27), date(2026, 11, 27))
    with pytest.raises(ConfigError) as err:  # an end before start is still an error
        parse_config(BASE + "calendar: {events: [{name: X, start: 2026-11-27, "
                     "end: 2026-11-26}]}\n")
    assert [p.path for p in err.value.problems] == ["calendar.events[0].end"]


def test_messages_say_that_prophet_with_holidays_learns_the_calendar_days(tmp_path) -> None:
    """Prophet with holidays of its own learns calendar days (it estimates their effect from
    them), yet the backtest summary, the run log and ``cxmon calendar`` said "not learned"."""
    from monitor.cli_backtest import _calendar_line

    cfg = create({"type": "prophet", "holidays": "GB"}, interval=HOUR).config
    dets = MetricDetectors("kpi", HOUR, {"seasonal": cfg, "default": create(
        {"type": "robust_seasonal"}, interval=HOUR).config}, PostRules(), calendar=_cals())
    assert dets.calendar_learners() == ["seasonal [prophet] (holidays or events of its own)"]
    line = _calendar_line({"2026-12-25": ("Christmas Day", "skip")}, dets.calendar_learners())
    assert line == ("not scored or learned on 1 calendar day(s) (2026-12-25 Christmas Day); "
                    "learned all the same by seasonal [prophet] (holidays or events of its own)")
    path = tmp_path / "cxmon.yaml"
    path.write_text(BASE + """    detectors: [seasonal]
detectors:
  seasonal: {type: prophet, holidays: GB}
calendar: {holidays: [GB]}
""")
    out = CliRunner().invoke(app, ["calendar", "-c", str(path), "--from", "2026-12-20",
                                   "--days", "10"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert ("detector(s) seasonal model holidays or events of their own and learn these days "
            "all the same (a skip day is still not scored)") in " ".join(out.output.split())


def test_an_event_with_a_time_of_day_says_events_are_whole_days() -> None:
    """``start: 2026-11-27T18:00`` was "Datetimes provided to dates should have zero time"."""
    bad = BASE + """calendar:
  events:
    - {name: Flash sale, start: "2026-11-27T18:00", end: 2026-11-28T02:00:00Z}
    - {name: Sale, start: 27/11/2026}
"""
    with pytest.raises(ConfigError) as err:
        parse_config(bad)
    got = {p.path: p.message for p in err.value.problems}
    assert sorted(got) == ["calendar.events[0].end", "calendar.events[0].start",
                           "calendar.events[1].start"]
    assert got["calendar.events[0].start"] == (
        "'2026-11-27T18:00' is not a date: give YYYY-MM-DD (events are whole local days; "
        "one that runs past midnight covers both dates)")
    assert "'27/11/2026' is not a date: give YYYY-MM-DD" in got["calendar.events[1].start"]


def test_country_names_and_misspelt_time_zones_get_a_did_you_mean() -> None:
    bad = BASE + """calendar:
  timezone: Europe/Londn
  holidays: [Germany, United Kingdom]
  by: {label: region, values: {fr: {timezone: Paris}}}
"""
    with pytest.raises(ConfigError) as err:
        parse_config(bad)
    got = {p.path: p.message for p in err.value.problems}
    assert got["calendar.timezone"].startswith(
        "unknown time zone 'Europe/Londn'; did you mean Europe/London?")
    assert got["calendar.holidays[0]"].startswith(
        "unknown holidays country 'Germany'; did you mean DE?")
    assert "did you mean GB?" in got["calendar.holidays[1]"]
    assert "did you mean Europe/Paris?" in got["calendar.by.values.fr.timezone"]


def test_holidays_that_are_business_days_can_be_ignored() -> None:
    """[US] brought Columbus Day and Veterans Day, on which the shops trade as usual, with no
    way to leave them out: they went unscored and unlearned."""
    cal = _cal(timezone="America/New_York", holidays=["US"],
               ignore=["Columbus Day", "veterans day", "Independence Day"])
    got = dict(cal.days(date(2026, 7, 1), date(2026, 11, 30)))
    assert [day.name for day in got.values()] == ["Labor Day", "Thanksgiving Day"]
    assert date(2026, 7, 3) not in got  # Independence Day (observed) goes with it
    # a shop open on the Monday after Boxing Day (the bank holiday) but not on the day
    gb = dict(_cal(holidays=["GB"], ignore=["Boxing Day (observed)"]).days(
        date(2026, 12, 24), date(2026, 12, 31)))
    assert [day.name for day in gb.values()] == ["Christmas Day", "Boxing Day"]
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + "calendar: {holidays: [US], "
                     "ignore: [Colombus Day, Labor Day, Boxing Day]}\n")
    # every unknown name at its own position, the valid one between them not reported
    got = {p.path: p.message for p in err.value.problems}
    assert sorted(got) == ["calendar.ignore[0]", "calendar.ignore[2]"]
    assert "no holiday of US is called 'Colombus Day'; did you mean 'Columbus Day'?" in (
        got["calendar.ignore[0]"])
    assert "'Boxing Day'" in got["calendar.ignore[2]"]


def test_norway_is_not_false() -> None:
    """``holidays: [NO]`` and ``values: {no: ...}`` are booleans to YAML: the problems said
    "Input should be a valid string" (and "invalid key" at values[0])."""
    bad = BASE + """calendar:
  holidays: [GB, NO]
  by: {label: region, values: {no: {holidays: ["NO"]}, 1: {holidays: [GB]}}}
"""
    with pytest.raises(ConfigError) as err:
        parse_config(bad)
    got = {p.path: p.message for p in err.value.problems}
    assert got == {
        "calendar.holidays[1]": 'YAML reads this code as false, not text: quote it '
                                '(holidays: ["NO"])',
        "calendar.by.values": "a key YAML reads as the boolean false (no, off, yes, on, ...), "
                              "not as a label value: quote it as in the data ('no': "
                              '{holidays: ["NO"]})'}
    ok = parse_config(BASE + """calendar: {by: {label: region, values: {"no": {holidays: ["NO"]},
                                  1: {holidays: [GB]}}}}\n""")
    assert ok.calendar is not None and ok.calendar.by is not None
    assert list(ok.calendar.by.values) == ["no", "1"]


def test_one_holiday_country_or_event_needs_no_list() -> None:
    """``holidays: GB``, as a prophet detector takes it, was "Input should be a valid list"."""
    cfg = parse_config(BASE + """calendar:
  holidays: GB
  ignore: Boxing Day
  events: {name: Black Friday, start: 2026-11-27}
""")
    assert cfg.calendar is not None
    assert (cfg.calendar.holidays, cfg.calendar.ignore) == (["GB"], ["Boxing Day"])
    assert [e.name for e in cfg.calendar.events] == ["Black Friday"]


def test_a_total_over_regions_follows_every_regions_calendar() -> None:
    """A German holiday moves the total over regions too: a series rolled up over the ``by``
    label is on a calendar day when any of its parts is (the strongest mode wins, named after
    its part); the other regions' series are ordinary. Where the label is no dimension of the
    metric, series without it keep the top-level calendar."""
    cals = _cals(by={"label": "region", "values": {
        "de": {"events": [{"name": "Feiertag", "start": "2026-01-13"}]},
        "fr": {"events": [{"name": "Soldes", "start": "2026-01-13", "mode": "score"}]}}})
    keys = {'kpi{region="de"}': {"region": "de"}, 'kpi{region="uk"}': {"region": "uk"},
            "kpi": {}}
    labels = {k: Series("kpi", v) for k, v in keys.items()}
    pts = [(t, k, 10.0 + t % 24) for t in range(10 * 24) for k in keys]
    day = pd.Timestamp("2026-01-13", tz=UTC)
    for dims, total_skipped in ((["region"], True), ([], False)):
        cfg = create({"type": "robust_seasonal"}, interval=HOUR).config
        dets = MetricDetectors("kpi", HOUR, {"d": cfg}, PostRules(),
                               calendar=cals.for_dimensions(dims))
        res = dets.run(_frame(pts), labels, keep_scores=True)
        assert res.scores is not None
        on = res.scores[res.scores["timestamp"].dt.floor("D") == day]
        blank = {k: bool(on.loc[on["series"] == k, "score"].isna().all()) for k in keys}
        assert blank == {'kpi{region="de"}': True, 'kpi{region="uk"}': False,
                         "kpi": total_skipped}, dims
        if total_skipped:
            assert res.calendar_days["2026-01-13 (region=any)"] == CalendarDay(
                "Feiertag (region=de)", "skip")  # skip wins over fr's score day
    assert cals.where({}) == "" and cals.for_dimensions(["region"]).where({}) == "region=any"


def test_validate_says_what_the_calendar_will_do_soon(tmp_path) -> None:
    from monitor.cli_validate import _calendar_summary

    cfg = parse_config(BASE + "calendar: {holidays: [GB], events: [{name: Sale, "
                              "start: 2026-11-27}]}\n")
    assert _calendar_summary(cfg, today=date(2026, 11, 20)) == (
        "calendar: 5 day(s) in the next 90 (next 2026-11-27; `cxmon calendar` lists them), "
        "for 1 of 1 metric(s)")  # the sale, Christmas, Boxing Day and its observed day, 1 Jan
    stale = parse_config(BASE + "calendar: {events: [{name: Sale, start: 2025-11-28}]}\n")
    assert _calendar_summary(stale, today=date(2026, 11, 20)) == (
        "calendar: 0 day(s) in the next 90, for 1 of 1 metric(s)")  # last year's date
    assert _calendar_summary(parse_config(BASE)) is None
    path = tmp_path / "cxmon.yaml"
    path.write_text(BASE + "calendar: {holidays: [GB]}\n")
    out = CliRunner().invoke(app, ["validate", "-c", str(path)], env={"COLUMNS": "200"})
    assert out.exit_code == 0
    assert "calendar: " in out.output and "for 1 of 1 metric(s)" in out.output


def test_novelty_learns_calendar_days_so_its_positions_stay_in_place() -> None:
    """``novelty``'s shapes and same-time-of-day lags are positions in its buffer: a total
    over regions skipped for 30 hours (the demo's holiday from Berlin's midnight to New
    York's) compared each hour with the wrong hour of the previous days for a week. It learns
    calendar days all the same; its skip-day scores are still blanked."""
    holiday = (T0 + timedelta(days=9)).date().isoformat()
    cals = _cals(events=[{"name": "Holiday", "start": holiday}])
    pts = [(t, "s", float(10 + 5 * np.sin(t / 24 * 2 * np.pi))) for t in range(12 * 24)]
    cfg = create({"type": "novelty", "history": 400}, interval=HOUR).config
    dets = MetricDetectors("kpi", HOUR, {"n": cfg}, PostRules(), calendar=cals)
    res = dets.run(_frame(pts), {}, keep_scores=True)
    assert res.scores is not None
    on = res.scores["timestamp"].dt.floor("D") == pd.Timestamp(holiday, tz=UTC)
    assert res.scores.loc[on, "score"].isna().all()
    assert dets.calendar_learners() == ["n [novelty] (its shapes are positions in its history)"]
    state = dets.detectors["n"].get_state(["s"])["s"]
    plain = MetricDetectors("kpi", HOUR, {"n": cfg}, PostRules())
    plain.run(_frame(pts), {})
    assert plain.detectors["n"].get_state(["s"])["s"] == state  # every point learned


def test_norway_without_brackets_gets_the_same_hint() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + "calendar: {holidays: NO}\n")
    assert [(p.path, p.message) for p in err.value.problems] == [
        ("calendar.holidays[0]", 'YAML reads this code as false, not text: quote it '
                                 '(holidays: ["NO"])')]
