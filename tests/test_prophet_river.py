"""Prophet detector scheduling (fits off the tick path), calendar features; river adapter;
``cxmon feedback``."""

from __future__ import annotations

from concurrent.futures import Executor, Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

import detectors  # noqa: F401
from detectors.base import TickBatch
from detectors.prophet_detector import Forecast, ProphetConfig, ProphetDetector, fit_forecast
from detectors.river_adapter import RiverConfig, RiverDetector
from monitor.cli import app
from monitor.model import Anomaly, Direction, Series
from monitor.store import Store

H = 3_600 * 10**9
HOUR = timedelta(hours=1)


class ManualExecutor(Executor):
    """Holds submitted calls; the test decides when (and with what) they finish."""

    def __init__(self) -> None:
        self.calls: list[tuple[Future, tuple[Any, ...]]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        fut: Future = Future()
        self.calls.append((fut, args))
        return fut


def feed(det: ProphetDetector, ts: range, value: float = 10.25) -> None:
    """Learn a constant, non-integer series (not a count: no Poisson floor)."""
    for t in ts:
        det.learn(TickBatch.of(["s"], [t * H], [value]), np.zeros(1, bool))


def test_fits_are_queued_off_the_tick_path_and_installed_later() -> None:
    ex = ManualExecutor()
    det = ProphetDetector(ProphetConfig(refit="1d", min_history="2d"), interval=HOUR,
                          executor=ex)
    feed(det, range(48))
    assert ex.calls == []  # 47 h of history: not yet
    feed(det, range(48, 49))
    assert len(ex.calls) == 1 and det.pending() == 1
    fut, (ts, _y, _settings, step, steps) = ex.calls[0]
    assert ts[-1] == 48 * H and step == H and steps == 48  # horizon: 2 x refit
    probe = TickBatch.of(["s"], [49 * H], [12.0])
    assert np.isnan(det.score(probe).score[0])  # no model yet: scoring does not wait
    feed(det, range(49, 50))
    assert len(ex.calls) == 1  # no second fit while one is pending
    fut.set_result(Forecast(49 * H, np.full(48, 10.0), np.full(48, 9.0), np.full(48, 11.0),
                            0.0, 0.5))
    feed(det, range(50, 51))  # the next learn installs the finished fit
    assert det.pending() == 0
    s = det.score(TickBatch.of(["s", "s"], [51 * H, 51 * H], [10.5, 20.0]))
    sigma = 1.0 / NormalDist().inv_cdf(0.9)  # the 80% interval is +-1: sigma = 1 / z_0.9
    assert s.expected.tolist() == [10.0, 10.0]
    assert s.lower[0] == pytest.approx(10.0 - 3 * sigma) and s.upper[0] == pytest.approx(
        10.0 + 3 * sigma)  # the band is +-z_band sigma, as for every detector
    assert s.score[0] < 0.9 < 0.9999 < s.score[1]
    # the state (history + forecast) round-trips; the refit is due a day after the fit
    fresh = ProphetDetector(det.cfg, interval=HOUR, executor=ex)
    fresh.set_state(det.get_state())
    np.testing.assert_array_equal(fresh.score(probe).score, det.score(probe).score)
    feed(det, range(51, 72))
    assert len(ex.calls) == 1
    feed(det, range(72, 73))
    assert len(ex.calls) == 2


def test_flagged_points_are_left_out_of_the_fit() -> None:
    ex = ManualExecutor()
    det = ProphetDetector(ProphetConfig(min_history="2d"), interval=HOUR, executor=ex)
    feed(det, range(47))
    det.learn(TickBatch.of(["s"], [47 * H], [99.0]), np.ones(1, bool))
    feed(det, range(48, 49))
    _, (_ts, y, *_rest) = ex.calls[0]
    assert 99.0 not in y and len(y) == 48


def test_holidays_and_events_move_the_forecast() -> None:
    """A custom event (and GB holidays) are features of the fit: with the event in the
    history, the forecast for the event's next occurrence differs (2 small Prophet fits)."""
    with pytest.raises(ValidationError):
        ProphetConfig(holidays="XX")
    with pytest.raises(ValidationError):
        ProphetConfig(events=[{"name": "sale", "start": "2026-01-10", "end": "2026-01-09"}])
    start = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp()) * 10**9
    ts = start + 6 * H * np.arange(4 * 14)  # 14 days, every 6 h
    day = (ts - start) // (24 * H)
    y = 10.0 + np.where((day == 5) | (day == 12), 8.0, 0.0)  # the event days
    base = {"type": "prophet", "uncertainty_samples": 20, "weekly": False, "daily": False}
    ev = {**base, "holidays": "GB", "events": [
        {"name": "sale", "start": "2026-01-10", "end": "2026-01-10"},
        {"name": "sale", "start": "2026-01-17", "end": "2026-01-17"},
        {"name": "sale", "start": "2026-01-24", "end": "2026-01-24"}]}
    plain = fit_forecast(ts, y, base, 6 * H, 4 * 8).yhat
    with_event = fit_forecast(ts, y, ev, 6 * H, 4 * 8).yhat
    event_day = slice(4 * 5, 4 * 6)  # forecast day 5 after the history = 2026-01-24
    assert with_event[event_day].mean() > plain[event_day].mean() + 4


def test_river_config_is_checked_and_state_is_per_series() -> None:
    with pytest.raises(ValidationError, match="unknown river model"):
        RiverConfig(model="NoSuchModel")
    with pytest.raises(ValidationError, match="no parameter"):
        RiverConfig(params={"bogus": 1})
    det = RiverDetector(RiverConfig(params={"n_trees": 5}), interval=HOUR)
    rng = np.random.default_rng(0)
    for t in range(150):
        det.learn(TickBatch.of(["a", "b"], [t * H] * 2, 10 + rng.normal(size=2)),
                  np.zeros(2, bool))
    spike = det.score(TickBatch.of(["a", "b"], [150 * H] * 2, [10.0, 80.0]))
    assert spike.score[1] > 0.99 and spike.score[0] < spike.score[1]
    assert set(det.get_state()) == {"a", "b"}
    det.forget(["a"])
    assert set(det.get_state()) == {"b"}


def test_cli_feedback_records_the_verdict(tmp_path: Path) -> None:
    db = tmp_path / "fb.db"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"store: sqlite:///{db}\nsources:\n  shop: {{type: demo}}\nmetrics:\n"
        "  - {name: kpi, source: shop, query: checkout, value: started}\n")
    store = Store.open(f"sqlite:///{db}")
    store.migrate()
    a = Anomaly(series='kpi{region="uk"}', metric="kpi", labels={"region": "uk"},
                timestamp=datetime(2026, 1, 5, tzinfo=UTC), value=3.0, expected=1.0,
                lower=0.5, upper=1.5, score=0.999999, severity=50, direction=Direction.UP,
                detector="default")
    with store.transaction() as tx:
        tx.ensure_series([Series("kpi", {"region": "uk"})])
        tx.add_anomalies([a])
    runner = CliRunner()
    res = runner.invoke(app, ["feedback", a.id, "not_anomaly", "-c", str(cfg)])
    assert res.exit_code == 0, res.output
    rows = store.feedback_after("kpi")
    assert [(r["label"], r["series"], r["severity"]) for r in rows] == [
        ("not_anomaly", 'kpi{region="uk"}', 50)]
    assert runner.invoke(app, ["feedback", "nope", "expected", "-c", str(cfg)]).exit_code == 1
    assert runner.invoke(app, ["feedback", a.id, "maybe", "-c", str(cfg)]).exit_code != 0
    store.close()


def test_river_params_of_the_wrong_type_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"HalfSpaceTrees\(n_trees='abc'\) does not work"):
        RiverConfig(params={"n_trees": "abc"})
    runner = CliRunner()
    data = tmp_path / "s.csv"
    data.write_text("timestamp,value\n2026-01-01T00:00Z,1\n2026-01-01T01:00Z,2\n")
    res = runner.invoke(app, ["score", "-d", "river", "-p", "params={n_trees: abc}",
                              "-i", str(data)])
    assert res.exit_code == 2 and "n_trees='abc'" in res.output and "Traceback" not in res.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store: sqlite:///x.db\nsources:\n  shop: {type: demo}\n"
                   "detectors:\n  fast: {type: river, params: {n_trees: abc}}\nmetrics:\n"
                   "  - {name: kpi, source: shop, query: checkout, value: started, "
                   "detectors: [fast]}\n")
    res = runner.invoke(app, ["validate", "-c", str(cfg)], env={"COLUMNS": "200"})
    assert res.exit_code == 2 and "detectors.fast" in res.output and "n_trees='abc'" in res.output


def test_impossible_event_date_is_a_config_error_with_its_path(tmp_path: Path) -> None:
    """YAML reads 2026-13-01 as a timestamp: an impossible one is a problem at its path (and a
    text field may hold one), not a traceback from the YAML loader."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store: sqlite:///x.db\nsources:\n  shop: {type: demo}\n"
                   "detectors:\n  p: {type: prophet, events: [{name: bf, start: 2026-13-01, "
                   "end: 2026-11-30}]}\nmetrics:\n"
                   "  - {name: kpi, source: shop, query: checkout, value: started, "
                   "detectors: [p], description: 2026-02-30}\n")
    res = CliRunner().invoke(app, ["validate", "-c", str(cfg)], env={"COLUMNS": "200"})
    assert res.exit_code == 2, res.output
    assert "detectors.p.events[0].start: '2026-13-01' is not a date: give YYYY-MM-DD" \
        in res.output
    assert "metrics[0].description" not in res.output


def test_every_prophet_config_problem_is_reported_at_its_field() -> None:
    """An unknown holidays country was hidden by any other mistake in the same detector (a
    model validator runs only when all fields pass), and refit's path was the detector's."""
    with pytest.raises(ValidationError) as info:
        ProphetConfig.model_validate({"holidays": "XX", "refit": "0s", "interval_width": 2})
    problems = {e["loc"]: e["msg"] for e in info.value.errors()}
    assert set(problems) == {("holidays",), ("refit",), ("interval_width",)}
    assert "unknown holidays country 'XX'" in problems[("holidays",)]
    assert ProphetConfig(holidays="gb").holidays == "gb"


def test_every_river_config_problem_is_reported_at_its_field() -> None:
    """An unknown model or parameter was hidden by any other mistake in the same detector."""
    with pytest.raises(ValidationError) as info:
        RiverConfig.model_validate({"model": "NoSuchModel", "calibration": 5})
    assert {e["loc"] for e in info.value.errors()} == {("model",), ("calibration",)}
    with pytest.raises(ValidationError) as info:
        RiverConfig.model_validate({"params": {"bogus": 1}, "min_points": 0})
    problems = {e["loc"]: e["msg"] for e in info.value.errors()}
    assert set(problems) == {("params",), ("min_points",)}
    assert "HalfSpaceTrees has no parameter(s) bogus" in problems[("params",)]
    # a model that cannot run with its defaults is tried (and refused) without any params
    with pytest.raises(ValidationError, match=r"QuantileFilter\(\) does not work"):
        RiverConfig(model="QuantileFilter")


def test_an_event_ending_before_it_starts_is_reported_with_its_other_mistakes() -> None:
    with pytest.raises(ValidationError) as info:
        ProphetConfig.model_validate({"events": [{"name": "bf", "start": "2026-01-02",
                                                  "end": "2026-01-01", "when": 1}]})
    problems = {e["loc"]: e["msg"] for e in info.value.errors()}
    assert set(problems) == {("events", 0, "end"), ("events", 0, "when")}
    assert "end (2026-01-01) is before start (2026-01-02)" in problems[("events", 0, "end")]


def test_a_count_that_falls_to_almost_nothing_is_rare_for_prophet_too() -> None:
    """35 contacts an hour expected, 2 seen: Prophet's interval (+-12 here, trend and season
    uncertainty) gives a z of only -3.6, which the Student-t tail calls severity ~5. The count
    distribution calls it a 1-in-10^9 event, as robust_seasonal does (detectors/count_tail)."""
    from detectors.postrules import severity_from_score

    ex = ManualExecutor()
    det = ProphetDetector(ProphetConfig(refit="1d", min_history="2d"), interval=HOUR,
                          executor=ex)
    for t in range(49):
        det.learn(TickBatch.of(["s"], [t * H], [35.0 + (t % 3) - 1]), np.zeros(1, bool))
    fut, _ = ex.calls[0]
    fut.set_result(Forecast(49 * H, np.full(48, 35.0), np.full(48, 23.0), np.full(48, 47.0),
                            3.0, 0.5))
    det.learn(TickBatch.of(["s"], [49 * H], [35.0]), np.zeros(1, bool))
    s = det.score(TickBatch.of(["s", "s", "s"], [50 * H] * 3, [2.0, 30.0, 68.0]))
    assert severity_from_score(s.score[:1])[0] >= 50  # the silent hour: an alert
    assert s.score[1] < 0.9  # an ordinary dip is not
    assert s.score[2] < 1 - 1e-4  # a rise keeps the cautious Student-t tail


def test_a_first_fit_prints_no_cmdstanpy_or_plotly_lines_without_logging_set_up() -> None:
    """`cxmon backtest` sets up no logging: the first Prophet fit printed cmdstanpy's own
    "Chain [1] start processing" INFO lines and prophet's "Importing plotly failed" through
    the progress bar. A fresh interpreter, as the first fit of a backtest is."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from detectors.prophet_detector import fit_forecast\n"
        "H = 3_600 * 10**9\n"
        "ts = 1_767_571_200 * 10**9 + 6 * H * np.arange(40)\n"
        "y = 10.0 + np.arange(40) % 4\n"
        "settings = {'type': 'prophet', 'uncertainty_samples': 20, 'weekly': False, "
        "'daily': False}\n"
        "print(len(fit_forecast(ts, y, settings, 6 * H, 4).yhat))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4"
    assert "cmdstanpy" not in done.stderr and "plotly" not in done.stderr, done.stderr
