"""Stateful post-rules, severity calibration, feedback, and ``cxmon score``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import detectors  # noqa: F401
from detectors.base import Scores, TickBatch
from detectors.feedback import MARGIN, FeedbackBook, Verdict
from detectors.postrules import MissingPolicy, PostRules, RuleState, severity_from_score
from detectors.registry import create
from monitor.cli import app
from monitor.detection import MetricDetectors
from monitor.model import Series

H = 3_600 * 10**9
HOUR = timedelta(hours=1)
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def scores_for(values: list[float], score: float) -> Scores:
    n = len(values)
    return Scores(np.zeros(n), np.full(n, -1.0), np.full(n, 1.0), np.full(n, score))


def alerts(rules: PostRules, unusual: list[bool], start: int = 0) -> list[bool]:
    """Feed one series a run of points (unusual = score 1 - 1e-7, else 0.5)."""
    state = RuleState(rules, HOUR)
    out = []
    for t, u in enumerate(unusual, start):
        batch = TickBatch.of(["s"], [t * H], [5.0])
        out.append(bool(state.decide(batch, scores_for([5.0], 1 - 1e-7 if u else 0.5)).alert[0]))
    return out


def test_consecutive_points() -> None:
    seq = [True, False, True, True, True]
    assert alerts(PostRules(), seq) == seq
    assert alerts(PostRules(consecutive=3), seq) == [False, False, False, False, True]


def test_k_of_n_window() -> None:
    seq = [True, False, True, False, False, False, True]
    assert alerts(PostRules(window_k=2, window_n=3), seq) == [
        False, False, True, False, False, False, False]


def test_warmup_and_suppression() -> None:
    seq = [True] * 6
    assert alerts(PostRules(warmup=2 * HOUR), seq) == [False, False, True, True, True, True]
    assert alerts(PostRules(suppress=3 * HOUR), seq) == [True, False, False, True, False, False]


def test_rule_state_survives_checkpoint() -> None:
    rules = PostRules(consecutive=2, suppress=3 * HOUR)
    a = RuleState(rules, HOUR)
    a.decide(TickBatch.of(["s"], [0], [5.0]), scores_for([5.0], 1 - 1e-7))
    b = RuleState(rules, HOUR)
    b.set_state(a.get_state())
    assert b.get_state() == a.get_state()
    # the streak carried over: the second unusual point alerts, then suppression holds
    got = [bool(b.decide(TickBatch.of(["s"], [t * H], [5.0]), scores_for([5.0], 1 - 1e-7))
                .alert[0]) for t in (1, 2)]
    assert got == [True, False]


def test_metric_detectors_checkpoint_post_rule_state() -> None:
    """Suppression survives a restart: the rule state is checkpointed with the detector's."""
    cfg = create({"type": "robust_seasonal", "season": "none"}, interval=HOUR).config
    rules = PostRules(min_severity=25, suppress=24 * HOUR)
    pts = [(t, "s", 10.0 + (t % 3) * 0.1) for t in range(30)]
    first = MetricDetectors("kpi", HOUR, {"d": cfg}, rules)
    first.run(frame(pts), {})
    assert len(first.run(frame([(30, "s", 30.0)]), {}).anomalies) == 1
    saved = first.checkpoints(["s"])
    assert set(saved) == {"kpi/d", "kpi/d#rules"} and saved["kpi/d#rules"]
    again = MetricDetectors("kpi", HOUR, {"d": cfg}, rules)
    assert again.restore(lambda name: saved.get(name, {})) == []
    assert again.run(frame([(31, "s", 30.0)]), {}).anomalies == []  # still suppressed
    fresh = MetricDetectors("kpi", HOUR, {"d": cfg}, rules)
    fresh.restore(lambda name: saved.get(name, {}) if "#" not in name else {})
    assert len(fresh.run(frame([(31, "s", 30.0)]), {}).anomalies) == 1  # without: alerts


def test_missing_policies_fill_known_series() -> None:
    for policy, want in ((MissingPolicy.SKIP, None), (MissingPolicy.ZERO, 0.0),
                         (MissingPolicy.CARRY, 7.0)):
        st = RuleState(PostRules(missing=policy), HOUR)
        first = TickBatch.of(["a", "b"], [0, 0], [1.0, 7.0])
        st.decide(first, scores_for([1.0, 7.0], 0.5))
        batch, filled = st.fill(TickBatch.of(["a"], [H], [2.0]))
        if want is None:
            assert list(batch.series) == ["a"] and not filled.any()
        else:
            assert list(batch.series) == ["a", "b"]
            assert batch.values[1] == want and filled.tolist() == [False, True]


def frame(points: list[tuple[int, str, float]]) -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": pd.to_datetime([T0 + t * HOUR for t, _, _ in points], utc=True),
        "series": [s for _, s, _ in points],
        "value": [v for _, _, v in points],
        "denominator": np.nan,
    })


def test_no_data_anomaly_when_one_series_stops() -> None:
    dets = MetricDetectors("kpi", HOUR, {"d": create({"type": "robust_seasonal"},
                                                      interval=HOUR).config},
                           PostRules(no_data_after=3))
    labels = {"kpi{region=\"a\"}": Series("kpi", {"region": "a"}),
              "kpi{region=\"b\"}": Series("kpi", {"region": "b"})}
    a, b = labels
    pts = [(t, a, 1.0) for t in range(10)] + [(t, b, 2.0) for t in range(4)]
    res = dets.run(frame(pts), labels, until=T0 + 10 * HOUR)
    gone = [x for x in res.anomalies if x.kind == "no_data"]
    assert [(x.series, x.labels) for x in gone] == [(b, {"region": "b"})]
    assert gone[0].timestamp == T0 + 6 * HOUR  # overdue 3 intervals after its last bucket
    # reported once per gap
    again = dets.run(frame([(10, a, 1.0)]), labels, until=T0 + 11 * HOUR)
    assert not [x for x in again.anomalies if x.kind == "no_data"]


def test_feedback_silences_the_same_deviation() -> None:
    """Same deviation alerts before feedback and not after; confirmed undoes it."""
    book = FeedbackBook()
    keys = np.array(["s"], dtype=object)
    rules = PostRules(min_severity=25)
    score = 1 - 1e-6  # severity 50
    sc = scores_for([9.0], score)
    before = RuleState(rules, HOUR).decide(TickBatch.of(["s"], [10 * H], [9.0]), sc)
    assert before.alert[0]
    book.add(Verdict("s", "not_anomaly", at_ns=10 * H, severity=50, id=1))
    need = book.min_severity(keys, np.array([11 * H]), 25.0)
    assert need[0] == 50 + MARGIN
    after = RuleState(rules, HOUR).decide(TickBatch.of(["s"], [11 * H], [9.0]), sc,
                                          min_severity=need)
    assert not after.alert[0]
    # a much rarer point still alerts, and the verdict expires after a week
    rarer = scores_for([9.0], 1 - 1e-9)
    assert RuleState(rules, HOUR).decide(TickBatch.of(["s"], [11 * H], [9.0]), rarer,
                                         min_severity=need).alert[0]
    assert book.min_severity(keys, np.array([10 * H + 8 * 24 * H]), 25.0)[0] == 25
    book.add(Verdict("s", "confirmed", at_ns=12 * H, severity=50, id=2))
    assert book.min_severity(keys, np.array([13 * H]), 25.0)[0] == 25


def test_expected_applies_to_the_same_hour_of_week() -> None:
    book = FeedbackBook()
    book.add(Verdict("s", "expected", at_ns=10 * H, severity=40, id=1))
    keys = np.array(["s"] * 3, dtype=object)
    ts = np.array([10 * H + 7 * 24 * H, 11 * H + 7 * 24 * H, 10 * H + 5 * 7 * 24 * H])
    assert book.min_severity(keys, ts, 25.0).tolist() == [40 + MARGIN, 25.0, 25.0]


def test_feedback_through_metric_detectors() -> None:
    """The decide step of MetricDetectors applies the book (fails if the rule is removed)."""
    cfg = create({"type": "robust_seasonal", "season": "none"}, interval=HOUR).config
    pts = [(t, "s", 10.0 + (t % 3) * 0.1) for t in range(30)]
    spike = [(30, "s", 30.0)]

    def detect(book: FeedbackBook) -> int:
        dets = MetricDetectors("kpi", HOUR, {"d": cfg}, PostRules(min_severity=25), book)
        dets.run(frame(pts), {})
        return len(dets.run(frame(spike), {}).anomalies)

    assert detect(FeedbackBook()) == 1
    book = FeedbackBook()
    book.add(Verdict("s", "not_anomaly", at_ns=int(pd.Timestamp(T0).value) + 29 * H,
                     severity=100, id=1))
    assert detect(book) == 0


@pytest.mark.parametrize(("type_name", "series", "ticks", "levels"), [
    ("robust_seasonal", 300, 24 * 7 * 3, (1, 13)),
    ("seasonal_baseline", 300, 24 * 7 * 3, (1, 13)),
    ("river", 4, 450, (1,)),
])
def test_severity_means_the_same_rarity(type_name: str, series: int, ticks: int,
                                        levels: tuple[int, ...]) -> None:
    """On pure-noise series (Student-t, 5 dof: CX residuals are heavier-tailed than a
    Gaussian) the share of points at severity >= s is within a factor 3 of its nominal
    p = 10^-(2 + (s - 0.5)/12.5) (severity is rounded), for every detector, so one
    min_severity means one false-alarm rate everywhere. (Prophet is calibrated the same
    way, from its own band, but is too slow to fit 300 series here.)"""
    rng = np.random.default_rng(1)
    det = create({"type": type_name}, interval=HOUR)
    keys = np.array([f"s{i}" for i in range(series)], dtype=object)
    sev = []
    for t in range(ticks):
        batch = TickBatch(keys, np.full(series, t * H, np.int64),
                          100 + rng.standard_t(5, series), np.full(series, np.nan))
        s = det.score(batch).score
        det.learn(batch, np.zeros(series, bool))
        if t >= ticks // 2:
            sev.append(np.where(np.isfinite(s), severity_from_score(s), -1))
    scored = np.concatenate(sev)
    n = (scored >= 0).sum()  # -1: not scored (warm-up)
    assert n >= 800
    for s in levels:
        nominal = 10 ** -(2 + (s - 0.5) / 12.5)
        share = (scored >= s).sum() / n
        assert nominal / 3 <= share <= nominal * 3, (s, share, nominal)


def test_cli_score_streams_without_look_ahead(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 24 * 9
    ts = pd.date_range("2026-01-05", periods=n, freq="h", tz="UTC")
    v = 10 + 3 * np.sin(np.arange(n) / 24 * 2 * np.pi) + rng.normal(0, 0.3, n)
    v[-3] += 10
    src = tmp_path / "in.csv"
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": v}).to_csv(
        src, index=False)
    runner = CliRunner()
    full, short = tmp_path / "full.csv", tmp_path / "short.csv"
    res = runner.invoke(app, ["score", "--detector", "seasonal_baseline", "--input", str(src),
                              "--output", str(full)])
    assert res.exit_code == 0, res.output
    out = pd.read_csv(full)
    assert list(out.columns) == ["timestamp", "value", "anomaly_score"]
    assert out["anomaly_score"].between(0, 1).all()
    assert out["anomaly_score"].iloc[-3] > 0.9999
    pd.read_csv(src).iloc[: n - 10].to_csv(tmp_path / "cut.csv", index=False)
    res = runner.invoke(app, ["score", "-d", "seasonal_baseline", "-i", str(tmp_path / "cut.csv"),
                              "-o", str(short), "--interval", "1h"])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(pd.read_csv(short)["anomaly_score"],
                                  out["anomaly_score"].iloc[: n - 10])
    res = runner.invoke(app, ["score", "-d", "robust_seasonal", "-p", "season=day", "-i",
                              str(src), "-o", str(short)])
    assert res.exit_code == 0, res.output
    assert "--param" in runner.invoke(app, ["score", "--help"]).output
