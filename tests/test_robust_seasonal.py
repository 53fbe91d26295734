"""Behaviour of the default detector, ``robust_seasonal``, on generated data (fixed seeds).

Each test pins a feature that would be lost silently if it were removed: spikes found and
noise left alone, level shifts absorbed, incidents kept out of the baseline, volume-aware
and count-aware noise, weekly and daily seasonality, and compact, versioned checkpoints.
"""

from __future__ import annotations

import doctest
import warnings
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import detectors.robust_seasonal as rs_module
from detectors.base import Scores, TickBatch
from detectors.registry import create
from detectors.robust_seasonal import RobustSeasonal, RobustSeasonalConfig, t_two_sided_cdf

HOUR = timedelta(hours=1)
HOUR_NS = 3_600 * 10**9
START_NS = 1_767_571_200 * 10**9  # 2026-01-05 00:00 UTC, a Monday
WEEK = 24 * 7
NOISE = 3.0
ALERT = 0.9999  # stand-in for the post-rules' decision (p <= 1e-4)


def detector(interval: timedelta = HOUR, **cfg: object) -> RobustSeasonal:
    return RobustSeasonal(RobustSeasonalConfig.model_validate(cfg), interval=interval)


def weekly_shape(n_ticks: int, weekend: float = 0.35, daily: float = 0.4) -> np.ndarray:
    """An hourly CX-like pattern (n_ticks, 1): a daytime peak, quieter weekends."""
    t = np.arange(n_ticks)[:, None]
    hour, dow = t % 24, (t // 24) % 7
    day = 1.0 + daily * np.sin((hour - 8) / 24 * 2 * np.pi)
    return 100.0 * day * np.where(dow >= 5, 1.0 - weekend, 1.0)


def run(det: RobustSeasonal, values: np.ndarray, volumes: np.ndarray | None = None, *,
        flag: np.ndarray | None = None, decide: bool = True) -> list[Scores]:
    """Score -> decide -> learn, tick by tick. ``flag`` forces points to count as anomalous;
    with ``decide`` the points scoring >= ALERT are flagged too, as post-rules would."""
    n_ticks, n_series = values.shape
    keys = np.array([f"s{i}" for i in range(n_series)], dtype=object)
    out = []
    for t in range(n_ticks):
        vol = np.full(n_series, np.nan) if volumes is None else volumes[t]
        batch = TickBatch(keys, np.full(n_series, START_NS + t * HOUR_NS, np.int64),
                          values[t].astype(np.float64), vol.astype(np.float64))
        scores = det.score(batch)
        anomalous = np.zeros(n_series, dtype=bool)
        if decide:
            anomalous |= np.nan_to_num(scores.score) >= ALERT
        if flag is not None:
            anomalous |= flag[t]
        det.learn(batch, anomalous)
        out.append(scores)
    return out


def field(scores: list[Scores], name: str) -> np.ndarray:
    return np.stack([getattr(s, name) for s in scores])


# --------------------------------------------------------------------------- docs, config


def test_docstring_examples() -> None:
    result = doctest.testmod(rs_module)
    assert result.attempted >= 3 and result.failed == 0


def test_config_defaults_durations_and_ranges() -> None:
    cfg = RobustSeasonalConfig()
    assert cfg.type == "robust_seasonal" and cfg.season == "week"
    parsed = RobustSeasonalConfig.model_validate({"type": "robust_seasonal",
                                                  "level_halflife": "6h", "warmup": "3d"})
    assert parsed.level_halflife == timedelta(hours=6)
    assert parsed.warmup == timedelta(days=3)
    assert parsed.model_dump(mode="json")["level_halflife"] == "6h"
    bad = [{"k": 0.5}, {"anomaly_learning": 0}, {"tail_dof": 0}, {"z_band": -1},
           {"volume_noise_share": 1.5}, {"season": "month"}, {"level_halflife": "0s"},
           {"shift_confirm": "soon"}, {"min_points": 1}, {"sensitivity": 0.8}]
    for extra in bad:
        with pytest.raises(ValidationError):
            RobustSeasonalConfig.model_validate({"type": "robust_seasonal", **extra})


def test_created_through_the_registry() -> None:
    det = create({"type": "robust_seasonal", "season": "day"}, interval=HOUR)
    assert isinstance(det, RobustSeasonal)
    with pytest.raises(TypeError):
        RobustSeasonal(object(), interval=HOUR)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        detector(interval=timedelta(0))


@pytest.mark.parametrize(
    ("interval", "season", "day_slots", "week_slots"),
    [
        (HOUR, "week", 24, 168),
        (timedelta(minutes=5), "week", 24, 168),
        (timedelta(hours=2), "week", 12, 84),
        (timedelta(days=1), "week", 1, 7),
        (HOUR, "day", 24, 1),
        (HOUR, "none", 1, 1),
    ],
)
def test_time_slots(interval: timedelta, season: str, day_slots: int, week_slots: int) -> None:
    det = detector(interval, season=season)
    assert (det.day_slots, det.week_slots) == (day_slots, week_slots)


def test_t_distribution_matches_tables() -> None:
    # Two-sided critical values: P(|T| < t) = 0.95 / 0.99 (standard t tables).
    table = {1: (12.7062, 63.6567), 2: (4.3027, 9.9248), 3: (3.1824, 5.8409),
             5: (2.5706, 4.0321), 8: (2.3060, 3.3554), 30: (2.0423, 2.7500)}
    for dof, (t95, t99) in table.items():
        got = t_two_sided_cdf(np.array([t95, t99, -t95]), dof)
        np.testing.assert_allclose(got, [0.95, 0.99, 0.95], atol=2e-5, err_msg=str(dof))
    z = np.linspace(0, 50, 501)
    for dof in (1, 4, 7, 8):
        assert (np.diff(t_two_sided_cdf(z, dof)) >= 0).all()
    assert np.isnan(t_two_sided_cdf(np.array([np.nan]), 8)).all()


# --------------------------------------------------------------------------- detection


def test_spikes_found_and_noise_left_alone() -> None:
    rng = np.random.default_rng(11)
    n_ticks, n_series = 5 * WEEK, 30
    clean = weekly_shape(n_ticks) + rng.normal(0, NOISE, (n_ticks, n_series))
    values = clean.copy()
    when = rng.integers(2 * WEEK, n_ticks, n_series)
    values[when, np.arange(n_series)] += 12 * NOISE * rng.choice([-1, 1], n_series)
    score = field(run(detector(), values), "score")

    spikes = score[when, np.arange(n_series)]
    assert (spikes > 0.998).all(), spikes
    assert np.median(spikes) > ALERT
    normal = np.ones_like(score, dtype=bool)
    normal[when, np.arange(n_series)] = False
    normal[:WEEK] = False  # warm-up
    assert np.isnan(score[:WEEK - 1]).all()  # no scores during the first week
    assert np.isfinite(score[normal]).all()
    assert (score[normal] > 0.999).mean() < 0.01
    assert (score[normal] >= ALERT).mean() < 0.001


def test_false_positive_rate_on_pure_noise() -> None:
    rng = np.random.default_rng(12)
    values = 50.0 + rng.normal(0, 2.0, (4 * WEEK, 40))
    score = field(run(detector(), values), "score")[WEEK:]
    assert np.isfinite(score).all()
    assert (score > 0.999).mean() < 0.01
    assert (score >= ALERT).mean() < 0.001


def test_heavy_tailed_noise_does_not_alert_all_the_time() -> None:
    """Real KPIs have occasional big wiggles; Student-t tails keep them from paging."""
    rng = np.random.default_rng(13)
    values = 50.0 + 2.0 * rng.standard_t(4, (4 * WEEK, 40))
    score = field(run(detector(), values), "score")[WEEK:]
    assert (score >= ALERT).mean() < 0.002


def test_level_shift_is_absorbed_within_two_days() -> None:
    rng = np.random.default_rng(14)
    n_ticks, n_series, at = 5 * WEEK, 20, 3 * WEEK + 10
    values = weekly_shape(n_ticks) + rng.normal(0, NOISE, (n_ticks, n_series))
    values[at:] += 15 * NOISE
    scores = run(detector(), values)
    score, expected = field(scores, "score"), field(scores, "expected")
    assert (score[at:at + 6] >= ALERT).mean() > 0.8  # the shift is news at first
    later = slice(at + 48, n_ticks)
    assert (score[later] >= ALERT).mean() < 0.002  # ...and the new normal two days later
    assert np.abs(values[later] - expected[later]).mean() < 2 * NOISE


def test_level_shift_absorbed_even_if_always_flagged() -> None:
    """Flagged points learn slowly, but a shift that persists is still accepted."""
    rng = np.random.default_rng(15)
    n_ticks, n_series, at = 4 * WEEK, 10, 3 * WEEK
    values = weekly_shape(n_ticks) + rng.normal(0, NOISE, (n_ticks, n_series))
    values[at:] += 15 * NOISE
    flag = np.zeros(values.shape, dtype=bool)
    flag[at:] = True
    expected = field(run(detector(), values, flag=flag), "expected")
    assert np.abs(values[at + 48:] - expected[at + 48:]).mean() < 2 * NOISE


def test_flagged_incident_stays_out_of_the_baseline() -> None:
    rng = np.random.default_rng(16)
    n_ticks, n_series, at, length = 3 * WEEK + 24, 10, 3 * WEEK, 8
    clean = weekly_shape(n_ticks) + rng.normal(0, NOISE, (n_ticks, n_series))
    incident = clean.copy()
    incident[at:at + length] += 20 * NOISE

    def after(values: np.ndarray, flagged: bool) -> np.ndarray:
        flag = np.zeros(values.shape, dtype=bool)
        flag[at:at + length] = flagged
        scores = run(detector(), values, flag=flag, decide=False)
        return field(scores, "expected")[at + length:]

    reference = after(clean, False)
    drift_flagged = np.abs(after(incident, True) - reference).mean()
    drift_unflagged = np.abs(after(incident, False) - reference).mean()
    assert drift_flagged < 0.5 * NOISE
    assert drift_unflagged > 3 * drift_flagged


def test_bigger_volume_means_smaller_noise() -> None:
    rng = np.random.default_rng(17)
    n_ticks, n_series = 3 * WEEK, 5
    volume = rng.poisson(1_000, (n_ticks, n_series)).astype(np.float64)
    rate = rng.binomial(volume.astype(np.int64), 0.2) / volume
    det = detector()
    run(det, rate, volume)
    ts = START_NS + n_ticks * HOUR_NS
    value = 0.2 + 0.04  # the same deviation (about 3 sigma at the typical volume) each time
    got = {
        v: float(det.score(TickBatch.of(["s0"], [ts], [value], [v])).score[0])
        for v in (100.0, 1_000.0, 10_000.0)
    }
    assert got[100.0] < got[1_000.0] < got[10_000.0]
    assert got[100.0] < 0.9 and got[10_000.0] > 0.999
    band = {v: det.score(TickBatch.of(["s0"], [ts], [value], [v])) for v in (100.0, 10_000.0)}
    assert band[100.0].upper[0] - band[100.0].lower[0] > band[10_000.0].upper[0] - \
        band[10_000.0].lower[0]


def test_counts_are_never_less_noisy_than_poisson() -> None:
    flat = np.full((3 * WEEK, 1), 5.0)
    counted = detector()
    run(counted, flat)
    plain = detector(count_noise="off")
    run(plain, flat)
    ts = START_NS + 3 * WEEK * HOUR_NS
    seven = TickBatch.of(["s0"], [ts], [7.0])
    assert counted.score(seven).score[0] < 0.99  # 7 after a run of 5s is Poisson noise
    assert plain.score(seven).score[0] > ALERT  # without the count model it is news
    assert counted.score(TickBatch.of(["s0"], [ts], [40.0])).score[0] > ALERT


def test_a_count_that_falls_to_zero_alerts_in_its_first_hour() -> None:
    """A chat channel that usually takes ~25 contacts an hour takes none: a z of about 5,
    which the Student-t tail alone scores far below the alert bar; the count model does not.
    Ordinary Poisson dips (15 for 25) stay quiet."""
    rng = np.random.default_rng(4)
    counts = rng.poisson(weekly_shape(3 * WEEK) / 4).astype(np.float64)
    for count_noise in ("auto", "off"):
        det = detector(count_noise=count_noise)
        run(det, counts)
        ts = START_NS + 3 * WEEK * HOUR_NS + 10 * HOUR_NS  # Monday 10:00, ~25 expected
        expected = det.score(TickBatch.of(["s0"], [ts], [25.0])).expected[0]
        assert 18 < expected < 35
        silent = det.score(TickBatch.of(["s0"], [ts], [0.0])).score[0]
        dip = det.score(TickBatch.of(["s0"], [ts], [0.6 * expected])).score[0]
        if count_noise == "auto":
            assert silent > ALERT and dip < 0.99
        else:
            assert silent < ALERT  # the Student-t alone: not alerted


def test_rates_are_never_less_noisy_than_binomial() -> None:
    zero = np.zeros((3 * WEEK, 1))
    det = detector()
    run(det, zero, np.full(zero.shape, 1_000.0))
    ts = START_NS + 3 * WEEK * HOUR_NS
    one_in_a_thousand = det.score(TickBatch.of(["s0"], [ts], [0.001], [1_000.0]))
    assert one_in_a_thousand.score[0] < 0.99
    five_percent = det.score(TickBatch.of(["s0"], [ts], [0.05], [1_000.0]))
    assert five_percent.score[0] > ALERT
    assert five_percent.lower[0] >= 0.0 and five_percent.upper[0] <= 1.0


# --------------------------------------------------------------------------- seasonality


def test_weekends_are_expected_with_weekly_season() -> None:
    rng = np.random.default_rng(18)
    n_ticks, n_series = 4 * WEEK, 20
    values = weekly_shape(n_ticks, weekend=0.4) + rng.normal(0, NOISE, (n_ticks, n_series))
    saturday = 3 * WEEK + 5 * 24 + 14
    values[saturday, :10] += 12 * NOISE  # a real incident on a weekend afternoon
    dow = (np.arange(n_ticks) // 24) % 7
    weekend = (dow >= 5) & (np.arange(n_ticks) >= WEEK)
    weekend[saturday] = False

    weekly = run(detector(), values)
    score, expected = field(weekly, "score"), field(weekly, "expected")
    # From the second week on (one week of history), weekends are not news...
    assert (score[weekend] >= ALERT).mean() < 0.002
    assert (score[WEEK:] > 0.999).mean() < 0.01
    late = weekend & (np.arange(n_ticks) >= 2 * WEEK)
    assert np.abs(values - expected)[late].mean() < 1.5 * NOISE
    # ...so an incident on a Saturday is.
    assert (score[saturday, :10] > 0.999).all()

    # Without the weekly layer, weekends are modelled badly: every weekend is a sustained
    # deviation that alerts, where the weekly layer raises none.
    daily = run(detector(season="day"), values)
    assert np.abs(values - field(daily, "expected"))[late].mean() > 3 * NOISE
    assert (field(daily, "score")[late] >= ALERT).mean() > 0.3
    assert (score[late] >= ALERT).mean() == 0.0


def test_daily_shape_is_expected_with_daily_season() -> None:
    rng = np.random.default_rng(19)
    n_ticks, n_series = 2 * WEEK, 20
    values = weekly_shape(n_ticks, weekend=0.0, daily=0.5) + \
        rng.normal(0, NOISE, (n_ticks, n_series))
    spike = 2 * WEEK - 10
    values[spike, :10] -= 12 * NOISE
    daily = run(detector(season="day"), values)
    score = field(daily, "score")
    rest = np.ones(score.shape, dtype=bool)
    rest[:48] = False
    rest[spike, :10] = False
    assert (score[rest] >= ALERT).mean() < 0.002
    assert np.abs(values - field(daily, "expected"))[rest].mean() < 1.5 * NOISE
    assert (score[spike, :10] > 0.999).all()
    flat = run(detector(season="none"), values)
    assert np.abs(values - field(flat, "expected"))[rest].mean() > 3 * NOISE
    assert (field(flat, "score")[spike, :10] > 0.999).mean() < 0.5


def test_five_minute_data() -> None:
    rng = np.random.default_rng(20)
    step = timedelta(minutes=5)
    n_ticks, n_series = 12 * 24 * 10, 5
    t = np.arange(n_ticks)[:, None]
    shape = 100 * (1 + 0.4 * np.sin(((t / 12) % 24 - 8) / 24 * 2 * np.pi))
    values = shape + rng.normal(0, NOISE, (n_ticks, n_series))
    at = n_ticks - 100
    values[at, :] += 12 * NOISE
    det = detector(step, season="day")
    keys = np.array([f"s{i}" for i in range(n_series)], dtype=object)
    scores = []
    for i in range(n_ticks):
        batch = TickBatch(keys, np.full(n_series, START_NS + i * 300 * 10**9, np.int64),
                          values[i], np.full(n_series, np.nan))
        s = det.score(batch)
        det.learn(batch, np.nan_to_num(s.score) >= ALERT)
        scores.append(s.score)
    score = np.stack(scores)
    assert (score[at] > 0.999).all()
    rest = np.delete(score[12 * 24 * 2:], at - 12 * 24 * 2, axis=0)
    assert (rest >= ALERT).mean() < 0.002


# --------------------------------------------------------------------------- state


def test_checkpoints_are_small_and_versioned() -> None:
    rng = np.random.default_rng(21)
    det = detector()
    run(det, 10 + rng.normal(0, 1, (48, 3)))
    state = det.get_state()
    assert set(state) == {"s0", "s1", "s2"}
    size = len(state["s0"])
    assert size == det.state_bytes < 3_000
    assert state["s0"][:4] == b"CXRS"
    with pytest.raises(ValueError, match="robust_seasonal"):
        detector(timedelta(days=1)).set_state(state)  # another slot layout
    with pytest.raises(ValueError):
        detector().set_state({"s0": state["s0"][:-1]})
    with pytest.raises(ValueError):
        detector().set_state({"s0": b"XXXX" + state["s0"][4:]})


def test_forget_frees_rows_for_new_series() -> None:
    rng = np.random.default_rng(22)
    det = detector()
    run(det, 10 + rng.normal(0, 1, (30, 4)))
    det.forget(["s1", "s3", "missing"])
    assert set(det.get_state()) == {"s0", "s2"} and len(det) == 2
    fresh = TickBatch.of(["new"], [START_NS + 30 * HOUR_NS], [5.0])
    det.learn(fresh, np.zeros(1, dtype=bool))
    assert len(det) == 3
    assert det.score(fresh).expected[0] == pytest.approx(5.0)  # a clean row, not s1's


def test_repeated_series_in_one_batch_is_learned_in_time_order() -> None:
    values = [10.0, 12.0, 11.0, 13.0]
    one_by_one = detector(season="none", min_points=2)
    for i, v in enumerate(values):
        one_by_one.learn(TickBatch.of(["a"], [START_NS + i * HOUR_NS], [v]),
                         np.zeros(1, dtype=bool))
    together = detector(season="none", min_points=2)
    order = [2, 0, 3, 1]
    together.learn(
        TickBatch.of(["a"] * 4, [START_NS + i * HOUR_NS for i in order],
                     [values[i] for i in order]),
        np.zeros(4, dtype=bool),
    )
    assert together.get_state() == one_by_one.get_state()


def test_anomalous_mask_must_match_the_batch() -> None:
    batch = TickBatch.of(["a", "b"], [START_NS, START_NS], [1.0, 2.0])
    with pytest.raises(ValueError, match="anomalous"):
        detector().learn(batch, np.zeros(3, dtype=bool))


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(-1e9, 1e9), st.just(float("nan"))), min_size=30,
                    max_size=80),
    volumes=st.lists(st.one_of(st.floats(0, 1e7), st.just(float("nan"))), min_size=80,
                     max_size=80),
)
def test_any_input_gives_well_formed_scores(values: list[float], volumes: list[float]) -> None:
    det = detector(season="day", warmup="2h", min_points=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value warnings either
        for i, v in enumerate(values):
            batch = TickBatch.of(["x"], [START_NS + i * HOUR_NS], [v], [volumes[i]])
            s = det.score(batch)
            if np.isfinite(s.score[0]):
                assert 0.0 <= s.score[0] <= 1.0
                assert s.lower[0] <= s.expected[0] <= s.upper[0]
            if not np.isfinite(v):
                assert np.isnan(s.score[0])
            det.learn(batch, np.nan_to_num(s.score) >= ALERT)


def test_sustained_moderate_deviation_is_detected_by_the_evidence_test() -> None:
    """A shift of 6 sigma for 8 hours: no single point is rare enough, the run is (both
    sustained tests off: the point test alone)."""
    rng = np.random.default_rng(31)
    n_ticks, n_series = 3 * WEEK, 20
    values = weekly_shape(n_ticks) + rng.normal(0, NOISE, (n_ticks, n_series))
    start = 3 * WEEK - 20
    values[start:start + 8, :10] -= 6 * NOISE
    with_evidence = field(run(detector(), values), "score")
    without = field(run(detector(evidence_rate=0.0, slow_evidence_rate=0.0), values), "score")
    window = slice(start, start + 8)
    assert (without[window, :10] >= ALERT).mean() < 0.2  # point test alone: mostly missed
    assert (with_evidence[window, :10] >= ALERT).any(axis=0).all()  # every series caught
    # ...while the untouched series stay quiet in the same hours
    assert (with_evidence[window, 10:] >= ALERT).mean() < 0.02
    quiet = with_evidence[WEEK:start]
    assert (quiet >= ALERT).mean() < 0.001


def test_a_conversion_drop_on_few_sessions_is_caught_by_the_slow_evidence_test() -> None:
    """A new user's checkout incident: 5-minute conversion on ~37 sessions a bucket falls
    from 25% to 2% for two hours. Each bucket is only ~3 binomial sigmas down (p ~ 3e-4, not
    rare enough alone) and the fast EWMA forgets within a few buckets, so it went unseen;
    two dozen such buckets in a row are what the slow test adds up."""
    rng = np.random.default_rng(7)
    five = timedelta(minutes=5)
    step = 300 * 10**9
    n_ticks, n_series = 4 * 288, 20  # four days, season=day warms up in one
    start, length = 3 * 288 + 100, 24
    sessions = rng.poisson(37, (n_ticks, n_series)).clip(min=1)
    p = np.full((n_ticks, n_series), 0.25)
    p[start:start + length, :10] = 0.02
    rates = rng.binomial(sessions, p) / sessions
    keys = np.array([f"s{i}" for i in range(n_series)], dtype=object)

    def scores(**cfg: object) -> np.ndarray:
        det = detector(five, season="day", **cfg)
        out = []
        for i in range(n_ticks):
            batch = TickBatch(keys, np.full(n_series, START_NS + i * step, np.int64),
                              rates[i].astype(np.float64), sessions[i].astype(np.float64))
            s = det.score(batch).score
            out.append(s)
            det.learn(batch, np.nan_to_num(s) >= ALERT)
        return np.stack(out)

    with_slow, without = scores(), scores(slow_evidence_rate=0.0)
    window = slice(start, start + length)
    assert not (without[window, :10] >= ALERT).any(axis=0).any()  # missed before
    caught = (with_slow[window, :10] >= ALERT).any(axis=0)
    assert caught.all(), caught
    first = np.argmax(with_slow[window, :10] >= ALERT, axis=0)
    assert np.median(first) <= 12  # within the first hour of the two
    assert (with_slow[window, 10:] >= ALERT).mean() < 0.01  # the healthy series stay quiet
    quiet = with_slow[288:start]  # two days of normal buckets after the warm-up
    assert (quiet >= ALERT).mean() < 0.001


def test_observe_moves_the_sustained_tests_not_the_baseline() -> None:
    """A calendar score day is scored as usual (its run of low points adds up) but never
    learned: observe() updates the sustained tests' memory and nothing else."""
    rng = np.random.default_rng(9)
    values = weekly_shape(WEEK + 24) + rng.normal(0, NOISE, (WEEK + 24, 1))
    det = detector()
    run(det, values)
    t = WEEK + 24
    low = TickBatch.of(["s0"], [START_NS + t * HOUR_NS], [values[t - 24, 0] - 5 * NOISE])
    before = det.get_state()["s0"]
    expected = det.score(low).expected.copy()
    det.observe(low)
    after = det.get_state()["s0"]
    rec = [np.frombuffer(b[8:], dtype=det._record) for b in (before, after)]
    changed = {n for n in det._record.names if not np.array_equal(rec[0][n], rec[1][n])}
    assert changed == {"ez", "ez2"} and rec[1]["ez2"][0] < 0
    assert np.array_equal(det.score(low).expected, expected)  # the baseline did not move


def test_v3_checkpoints_restore_with_the_slow_test_at_rest() -> None:
    """A checkpoint from the previous release (no slow EWMA) is still usable: relearning a
    week of seasonality on upgrade would silence the detector for a week."""
    rng = np.random.default_rng(5)
    det = detector()
    run(det, weekly_shape(WEEK + 10) + rng.normal(0, NOISE, (WEEK + 10, 3)))
    state = det.get_state()
    v3 = det._record_v3
    old = {}
    for key, blob in state.items():
        rec = np.frombuffer(blob[8:], dtype=det._record)
        down = np.zeros(1, dtype=v3)
        for name in v3.names:
            down[name] = rec[name]
        old[key] = rs_module._HEADER.pack(b"CXRS", 3, det.day_slots, det.week_slots - 1, 0) \
            + down.tobytes()
    back = detector()
    back.set_state({**old})
    mixed = detector()
    mixed.set_state({"s0": old["s0"], "s1": state["s1"]})  # one restore across releases
    again = back.get_state()
    for key, blob in state.items():
        rec, got = (np.frombuffer(b[8:], dtype=det._record) for b in (blob, again[key]))
        for name in v3.names:
            assert np.array_equal(rec[name], got[name]), name
        assert got["ez2"][0] == 0.0
    assert mixed.get_state()["s1"] == state["s1"]
    assert mixed.get_state()["s0"] == again["s0"]


def test_sustained_evidence_does_not_outlive_the_deviation() -> None:
    """Right after a sustained deviation ends, points back at normal are not flagged."""
    rng = np.random.default_rng(32)
    n_ticks, n_series = 3 * WEEK, 20
    values = weekly_shape(n_ticks) + rng.normal(0, NOISE, (n_ticks, n_series))
    start = 3 * WEEK - 20
    values[start:start + 8] += 8 * NOISE
    score = field(run(detector(), values), "score")
    assert (score[start:start + 8] >= ALERT).any(axis=0).all()
    after = score[start + 8:start + 11]  # back to normal: the EWMA still remembers
    assert (after >= ALERT).mean() < 0.02


def _outage_anomalies(direction: str, relapse: bool = False) -> list[int]:
    """Hours (from the outage's start) of the anomalies a direction-`direction` metric gets
    for an hourly count series with a daily rhythm whose volume falls to a fifth for two days
    (from day 21 at 08:00), then recovers (and, with ``relapse``, falls again two days later)."""
    import pandas as pd

    from detectors.postrules import PostRules
    from monitor.detection import MetricDetectors
    from monitor.model import Direction

    rng = np.random.default_rng(3)
    hours = np.arange(24 * 30)
    values = rng.poisson(100 + 30 * np.sin(2 * np.pi * hours / 24)).astype(float)
    start = 24 * 21 + 8
    down = [(start, start + 48)] + ([(start + 96, start + 120)] if relapse else [])
    for lo, hi in down:
        values[lo:hi] = np.round(values[lo:hi] * 0.2)
    t0 = pd.Timestamp("2026-01-05", tz="UTC")
    frame = pd.DataFrame({"timestamp": t0 + pd.to_timedelta(hours, unit="h"), "series": "s",
                          "value": values, "denominator": np.nan})
    det = MetricDetectors("contacts", timedelta(hours=1),
                          {"d": RobustSeasonalConfig()}, PostRules(direction=Direction(direction)))
    found = det.run(frame, {}).anomalies
    return sorted(int((a.timestamp - t0.to_pydatetime()) / timedelta(hours=1)) - start
                  for a in found)


def test_recovery_from_an_outage_is_not_a_new_shift() -> None:
    """A two-day drop is accepted as the new level after about a day, in proportion (a count:
    the daily rhythm shrinks with it, so the night is not read as a rise); the return to the
    level before it is scored against that level (shift_memory), not alerted as a rise. With
    direction up the drop is not an alert, but it is still learned cautiously (rare points,
    whichever way), so nothing of it is alerted."""
    assert _outage_anomalies("up") == []
    both = _outage_anomalies("both")
    assert both[:6] == [0, 1, 2, 3, 4, 5]  # the outage is alerted at once...
    assert max(both) < 30  # ...until it is the new level; its end is not alerted
    assert max(_outage_anomalies("down")) < 30


def test_a_relapse_after_the_recovery_is_alerted_again() -> None:
    """The memory of the earlier level ends when the series returns to it, so the detour's
    level is not remembered as normal: falling back to it two days later alerts again."""
    relapse = [h for h in _outage_anomalies("down", relapse=True) if h >= 96]
    assert relapse and relapse[0] == 96


def _spike_in_history_alarms(det: RobustSeasonal, spike_at: int | None, feature: bool) -> list[int]:
    """Learn 13 days of hourly history (unflagged, as a backtest's first tick does) that starts
    on a Saturday, then score three live weeks; the hours that alarm. ``spike_at`` is a one-off
    +150 in the history; ``feature`` a +150 every Friday 12:00 instead (a real weekly pattern)."""
    rng = np.random.default_rng(1)
    start = START_NS + 5 * 24 * HOUR_NS  # Saturday: the first Friday is in day 6 (warm-up)
    history, alarms = 13 * 24, []
    for i in range(history + 3 * WEEK):
        hour, friday = i % 24, (i // 24) % 7 == 6
        y = 40.0 + 60.0 * (9 <= hour < 18) + rng.normal(0.0, NOISE)
        y += 150.0 * ((i == spike_at) or (feature and friday and hour == 12))
        batch = TickBatch.of(["s"], [start + i * HOUR_NS], [y])
        flag = False
        if i >= history:
            flag = bool(det.score(batch).score[0] > ALERT)
            alarms += [i] * flag
        det.learn(batch, np.array([flag]))
    return alarms


def test_a_spike_in_the_history_does_not_become_the_weekly_pattern() -> None:
    # A one-off spike on the first visit of a weekly slot used to be learned as that slot's
    # weekly correction: a "dip" alarm at the same hour every following week.
    assert _spike_in_history_alarms(detector(), 6 * 24 + 12, feature=False) == []


def test_a_real_weekly_hour_seen_once_is_learned_after_one_more_week() -> None:
    # The price of the rule above: a one-hour weekly pattern seen once alarms at most on its
    # second visit, then it is the slot's pattern.
    alarms = _spike_in_history_alarms(detector(), None, feature=True)
    assert len(alarms) <= 1
    assert all(i < 13 * 24 + WEEK for i in alarms)


def test_a_skipped_first_sunday_does_not_leave_sunday_under_learned() -> None:
    # 21 days of history from a Monday whose first Sunday was a skipped holiday (neither
    # scored nor learned): Sunday's first visit then came after warm-up and was Huber-clipped,
    # so its quieter pattern was still not learned two Sundays later (6-7 false alarms).
    rng = np.random.default_rng(0)
    det, history, alarms = detector(), 21 * 24, 0
    for i in range(history + WEEK):
        hour, dow = i % 24, (i // 24) % 7
        base = 30.0 + 20.0 * (10 <= hour < 16) if dow >= 5 else 40.0 + 60.0 * (9 <= hour < 18)
        if i // 24 == 6:
            continue
        batch = TickBatch.of(["s"], [START_NS + i * HOUR_NS], [base + rng.normal(0.0, NOISE)])
        flag = i >= history and bool(det.score(batch).score[0] > ALERT)
        alarms += flag
        det.learn(batch, np.array([flag]))
    assert alarms == 0
