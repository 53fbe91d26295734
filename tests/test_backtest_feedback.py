"""``cxmon backtest`` applies the feedback stored so far, as ``cxmon run`` would now, and
``--no-feedback`` replays without it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from monitor.cli import app
from monitor.clock import FakeClock
from monitor.model import Anomaly, Direction, Series
from monitor.store import Store

runner = CliRunner()
FIRST, REPEAT = "2026-01-12T14:00:00+00:00", "2026-01-14T09:00:00+00:00"
NOW = datetime(2026, 1, 20, 12, tzinfo=UTC)  # when the analyst gave the feedback


def setup(tmp_path: Path) -> tuple[Path, Path]:
    """An hourly series around 100 with the same spike (160) twice, two days apart; returns
    the config and its (not yet created) store file."""
    rng = np.random.default_rng(7)
    t = pd.date_range("2026-01-01", periods=24 * 20, freq="h", tz="UTC")
    v = 100 + rng.normal(0, 2, len(t))
    for spike in (FIRST, REPEAT):
        v[t.get_loc(pd.Timestamp(spike))] = 160
    pd.DataFrame({"ts": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "n": v.round(2)}).to_csv(
        tmp_path / "d.csv", index=False)
    db = tmp_path / "fb.db"
    cfg = tmp_path / "cxmon.yaml"
    cfg.write_text(f"store: sqlite:///{db}\nsources:\n  f: {{type: files, path: "
                   f"{tmp_path / 'd.csv'}}}\nmetrics:\n  - {{name: contacts, source: f, "
                   "interval: 1h, timestamp: ts, value: n, history: 8d}\n")
    return cfg, db


def backtest(cfg: Path, *extra: str) -> tuple[list[str], str]:
    """The anomaly times a backtest of 01-09..01-20 reports, and its output."""
    out = cfg.parent / "a.csv"
    result = runner.invoke(app, ["backtest", "-c", str(cfg), "--start", "2026-01-09",
                                 "--end", "2026-01-20", "--output", str(out), *extra],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return list(pd.read_csv(out)["timestamp"]), " ".join(result.output.split())


def store_feedback(db: Path, row: pd.Series, label: str) -> str:
    """Store the backtest's anomaly ``row`` as `cxmon run` would, and an analyst's verdict;
    returns the anomaly's id."""
    anomaly = Anomaly(
        series=row["series"], metric=row["metric"], labels={},
        timestamp=pd.Timestamp(row["timestamp"]).to_pydatetime(), value=row["value"],
        expected=row["expected"], lower=row["lower"], upper=row["upper"], score=row["score"],
        severity=int(row["severity"]), direction=Direction(row["direction"]),
        detector=row["detector"], kind=row["kind"])
    with Store.open(f"sqlite:///{db}", clock=FakeClock(NOW)) as store:
        with store.transaction() as tx:
            tx.ensure_series([Series("contacts", {})])
            tx.add_anomalies([anomaly])
        store.add_feedback(anomaly.id, label, user="ana")
    return anomaly.id


def anomaly_row(cfg: Path, ts: str) -> pd.Series:
    frame = pd.read_csv(cfg.parent / "a.csv")
    return frame[frame["timestamp"] == ts].iloc[0]


def test_not_anomaly_stops_the_repeat_and_no_feedback_restores_it(tmp_path: Path) -> None:
    cfg, db = setup(tmp_path)
    times, out = backtest(cfg)
    assert times == [FIRST, REPEAT]
    assert "warning: no store at" in out and "no feedback applied" in out
    assert not db.exists()  # looking for feedback creates no store
    aid = store_feedback(db, anomaly_row(cfg, FIRST), "not_anomaly")

    times, out = backtest(cfg)
    assert times == [FIRST]  # the dismissed one is still reported, its repeat is not
    assert ("contacts: feedback applied: 1 of 1 stored verdict(s) in force in the range "
            "(1 not_anomaly); 1 anomalies suppressed (--no-feedback: 2 anomalies in "
            "2 episode(s))") in out
    assert "1 anomalies in 1 episode(s)" in out

    times, out = backtest(cfg, "--no-feedback")
    assert times == [FIRST, REPEAT]
    assert "feedback: not applied (--no-feedback)" in out and "suppressed" not in out

    # the analyst changes their mind: confirmed cancels the verdict
    with Store.open(f"sqlite:///{db}", clock=FakeClock(NOW)) as store:
        store.add_feedback(aid, "confirmed")
    times, out = backtest(cfg)
    assert times == [FIRST, REPEAT]
    assert ("feedback: 0 of 2 stored verdict(s) in force in the range, nothing changed (a "
            "verdict acts from just after its anomaly") in " ".join(out.split())
    assert "feedback applied" not in out and "--no-feedback:" not in out


def test_feedback_acts_only_after_the_anomaly_it_refers_to(tmp_path: Path) -> None:
    """A verdict on the later spike does not change the earlier one: a replay shows what
    the live run would alert now, never a retroactive change."""
    cfg, db = setup(tmp_path)
    backtest(cfg)
    store_feedback(db, anomaly_row(cfg, REPEAT), "not_anomaly")
    times, out = backtest(cfg)
    assert times == [FIRST, REPEAT]
    assert "0 anomalies suppressed" in out


def test_a_store_without_feedback_says_so(tmp_path: Path) -> None:
    cfg, db = setup(tmp_path)
    Store.open(f"sqlite:///{db}", clock=FakeClock(NOW)).close()
    times, out = backtest(cfg)
    assert times == [FIRST, REPEAT]
    assert "feedback: none stored on these metrics' anomalies" in out


def test_an_unreachable_store_is_an_error_that_names_no_feedback(tmp_path: Path) -> None:
    """A store that is there but cannot be read would silently drop the analyst's verdicts:
    it is an error saying how to replay without them, and --no-feedback does not open it."""
    cfg, _ = setup(tmp_path)
    text = cfg.read_text().splitlines()
    text[0] = "store: postgresql+psycopg://cxmon@127.0.0.1:1/cx"  # nothing listens on port 1
    cfg.write_text("\n".join(text) + "\n")
    res = runner.invoke(app, ["backtest", "-c", str(cfg), "--start", "2026-01-09",
                              "--end", "2026-01-20"], env={"COLUMNS": "250"})
    assert res.exit_code == 1
    out = " ".join(res.output.split())
    assert "store: cannot connect to store" in out
    assert "(--no-feedback replays without the stored feedback)" in out
    times, _ = backtest(cfg, "--no-feedback")
    assert times == [FIRST, REPEAT]


def test_verdicts_on_series_the_replay_no_longer_produces_are_reported(tmp_path: Path) -> None:
    """Feedback is kept by series: once the metric's labels (or dimensions) change, the
    analyst's verdicts match no series and would be silently ignored."""
    cfg, db = setup(tmp_path)
    backtest(cfg)
    store_feedback(db, anomaly_row(cfg, FIRST), "not_anomaly")
    cfg.write_text(cfg.read_text().replace("history: 8d}", "history: 8d, labels: {team: cx}}"))
    times, out = backtest(cfg)
    assert times == [FIRST, REPEAT]  # nothing suppressed: the verdict is on the old series
    assert ("1 of the verdicts in force are on series this replay does not produce (were the "
            "metric's dimensions or labels changed?): they apply to nothing") in out
