"""Seasonal detectors on the kinds of data CX KPIs are: counts, thin rates, short histories.

Each test is a false-alarm or a detection check that the calibration fixes of
``seasonal_baseline`` and ``prophet`` are there for (a scale that collapses after a lucky
first residual, small-sample MAD bias, Poisson and binomial noise, trend extrapolation).
"""

from __future__ import annotations

from concurrent.futures import Executor, Future
from datetime import timedelta
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

import detectors  # noqa: F401
from detectors.base import TickBatch
from detectors.prophet_detector import Forecast, ProphetConfig, ProphetDetector, fit_forecast
from detectors.registry import create

H = 3_600 * 10**9
HOUR = timedelta(hours=1)
ALERT = 0.9999  # score of severity 25, the post-rules' default


def _daily(t: np.ndarray) -> np.ndarray:
    return 1.0 + 0.8 * np.sin((t % 24 - 8) / 24 * 2 * np.pi)


def run_series(type_name: str, values: np.ndarray, volumes: np.ndarray | None = None,
               **params: object) -> np.ndarray:
    """Score then learn every column of ``values[t, s]``, as the pipeline does; scores."""
    ticks, n = values.shape
    det = create({"type": type_name, **params}, interval=HOUR)
    keys = np.array([f"s{i}" for i in range(n)], dtype=object)
    vol = np.full((ticks, n), np.nan) if volumes is None else volumes
    out = np.full((ticks, n), np.nan)
    for t in range(ticks):
        batch = TickBatch(keys, np.full(n, t * H, np.int64), values[t], vol[t])
        out[t] = det.score(batch).score
        det.learn(batch, np.nan_to_num(out[t]) >= ALERT)
    return out


def test_seasonal_baseline_counts_raise_few_false_alarms() -> None:
    """Poisson counts with a daily cycle (complaints per hour): pure noise, so alerts at
    p = 1e-4 must stay near that rate. Without the scale fixes the series scale collapsed
    to zero after a near-zero first residual and almost every later point alerted."""
    rng = np.random.default_rng(3)
    t = np.arange(24 * 7 * 4)[:, None]
    lam = 12.0 * _daily(t) * np.ones((1, 60))
    scores = run_series("seasonal_baseline", rng.poisson(lam).astype(np.float64))
    scored = scores[np.isfinite(scores)]
    assert scored.size > 60 * 24 * 7 * 2  # weeks 2-4 are judged
    assert (scored >= ALERT).mean() < 1e-3


def test_seasonal_baseline_thin_rates_respect_binomial_noise() -> None:
    """A drop-off rate from ~30 sessions an hour moves by +-0.08 by chance alone; with
    only one to four past values per slot the band must not be narrower than that."""
    rng = np.random.default_rng(4)
    t = np.arange(24 * 7 * 4)[:, None]
    started = rng.poisson(30 * _daily(t) * np.ones((1, 60))).astype(np.float64) + 1
    rate = rng.binomial(started.astype(int), 0.25) / started
    scores = run_series("seasonal_baseline", rate, started)
    scored = scores[np.isfinite(scores)]
    assert scored.size > 60 * 24 * 7 * 2
    assert (scored >= ALERT).mean() < 1e-3


def test_seasonal_baseline_still_catches_an_incident() -> None:
    """The wider, honest band must not hide a real incident: a rate 0.25 -> 0.45 on
    ~500 sessions an hour for 6 hours is flagged from its first hour."""
    rng = np.random.default_rng(5)
    t = np.arange(24 * 7 * 3 + 30)[:, None]
    started = rng.poisson(500 * _daily(t)).astype(np.float64) + 1
    p = np.where((t >= 24 * 21 + 11) & (t < 24 * 21 + 17), 0.45, 0.25)
    rate = rng.binomial(started.astype(int), p) / started
    scores = run_series("seasonal_baseline", rate, started)[:, 0]
    assert (scores[24 * 21 + 11: 24 * 21 + 17] >= ALERT).all()
    assert np.nanmax(scores[24 * 8: 24 * 21]) < ALERT


def test_seasonal_baseline_waits_for_a_settled_scale() -> None:
    """A scale from a handful of residuals is a guess: scores start only after a day of
    them (one week of slots, then 24 residuals), not at the first residual."""
    rng = np.random.default_rng(6)
    v = 50 + rng.normal(0, 2, (24 * 9, 1))
    scores = run_series("seasonal_baseline", v)[:, 0]
    first = int(np.flatnonzero(np.isfinite(scores))[0])
    assert first == 24 * 8


def test_seasonal_baseline_warmup_period_is_never_shorter_than_its_season() -> None:
    """A point is scored only once its slot holds a value, so ``warmup: 1d`` with weekly
    slots scored nothing for a week while ``warmup_period`` (what ``cxmon score``,
    ``validate`` and ``backtest`` say a detector needs) said 1d."""
    hour = timedelta(hours=1)
    week = create({"type": "seasonal_baseline", "warmup": "1d"}, interval=hour)
    day = create({"type": "seasonal_baseline", "warmup": "1d", "season": "day"}, interval=hour)
    long = create({"type": "seasonal_baseline", "warmup": "2w", "season": "day"}, interval=hour)
    assert (week.warmup_period, day.warmup_period, long.warmup_period) == (
        timedelta(weeks=1), timedelta(days=1), timedelta(weeks=2))
    v = 50 + np.random.default_rng(3).normal(0, 2, (24 * 9, 1))
    scores = run_series("seasonal_baseline", v, warmup="1d")[:, 0]
    first = int(np.flatnonzero(np.isfinite(scores))[0])
    assert first >= week.warmup_period // hour  # what it says is what it does


def test_seasonal_baseline_old_checkpoint_is_refused() -> None:
    """The record layout changed (volume and domain flags): an old record must be
    reported as unusable (the pipeline then learns afresh), not misread."""
    det = create({"type": "seasonal_baseline"}, interval=HOUR)
    det.learn(TickBatch.of(["s"], [0], [1.0]), np.zeros(1, bool))
    blob = det.get_state()["s"]
    old = blob[:4] + bytes([1]) + blob[5:]
    with pytest.raises(ValueError, match="not a seasonal_baseline"):
        create({"type": "seasonal_baseline"}, interval=HOUR).set_state({"s": old})


# -- prophet -------------------------------------------------------------------------------------


class _Held(Executor):
    """Keeps submitted fits; the test installs the forecast it wants."""

    def __init__(self) -> None:
        self.calls: list[Future] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        fut: Future = Future()
        self.calls.append(fut)
        return fut


def _prophet_with(history: np.ndarray, volumes: np.ndarray | None, yhat: float,
                  half_band: float, **settings: Any) -> ProphetDetector:
    """A prophet detector whose installed forecast is ``yhat +- half_band`` (80 %)."""
    ex = _Held()
    det = ProphetDetector(ProphetConfig(min_history="2d", **settings), interval=HOUR,
                          executor=ex)
    vol = np.full(len(history), np.nan) if volumes is None else volumes
    for t, (y, v) in enumerate(zip(history, vol, strict=True)):
        det.learn(TickBatch.of(["s"], [t * H], [y], [v]), np.zeros(1, bool))
    n = len(history)
    ex.calls[0].set_result(Forecast(n * H, np.full(48, yhat), np.full(48, yhat - half_band),
                                    np.full(48, yhat + half_band), half_band / 10, 0.1))
    det.collect_fits()
    return det


def test_prophet_counts_are_never_less_noisy_than_poisson() -> None:
    """Prophet's noise is one sigma for the whole series; at a busy hour a count of 115
    against 100 expected is ordinary Poisson noise (1.5 sd), whatever the fitted band."""
    rng = np.random.default_rng(7)
    det = _prophet_with(rng.poisson(100, 60).astype(np.float64), None, 100.0, 0.5)
    s = det.score(TickBatch.of(["s", "s"], [61 * H] * 2, [115.0, 200.0]))
    assert s.score[0] < 0.99 < ALERT < s.score[1]
    assert s.lower[0] >= 0.0


def test_prophet_rates_respect_binomial_noise_and_domain() -> None:
    """A rate of 0.30 vs 0.25 expected is noise on 100 sessions and an incident on
    100,000; a forecast below 0 is shown as 0 for a rate."""
    rng = np.random.default_rng(8)
    det = _prophet_with(rng.uniform(0.2, 0.3, 60), np.full(60, 1000.0), 0.25, 0.001)
    s = det.score(TickBatch.of(["s", "s"], [61 * H] * 2, [0.30, 0.30], [100.0, 100_000.0]))
    assert s.score[0] < 0.99 < ALERT < s.score[1]
    low = _prophet_with(rng.uniform(0.0, 0.05, 60), np.full(60, 1000.0), -0.02, 0.01)
    out = low.score(TickBatch.of(["s"], [61 * H], [0.01], [1000.0]))
    assert out.expected[0] == 0.0 and out.lower[0] == 0.0


def test_prophet_noise_follows_the_volume_behind_a_mean() -> None:
    """CSAT from 1,000 responses is far less noisy than from 10, though Prophet fits one
    sigma to both: a 0.8 drop is an incident at high volume and noise at low volume."""
    rng = np.random.default_rng(10)
    hist = 4.3 + rng.normal(0, 0.1, 60)  # a mean (not a count, not a rate)
    vol = np.where(np.arange(60) % 2 == 0, 10.0, 1000.0)
    half = 0.2 * NormalDist().inv_cdf(0.9)  # Prophet's sigma: 0.2
    probe = TickBatch.of(["s", "s"], [61 * H] * 2, [3.5, 3.5], [1000.0, 10.0])
    busy, thin = _prophet_with(hist, vol, 4.3, half).score(probe).score
    assert thin < 0.99 < ALERT < busy
    flat = _prophet_with(hist, vol, 4.3, half, volume_noise_share=0.0).score(probe).score
    assert flat[0] < ALERT  # one sigma for all volumes misses it


def test_prophet_first_fit_after_a_week_does_not_extrapolate_the_weekend() -> None:
    """Contact volume with a busy Monday and a quiet weekend, fitted on its first week
    (the bench's min_history): the forecast of the next week must stay near the data.
    With Prophet's linear trend and its own 'auto' (weekly only after two weeks) the
    weekend became a falling trend and the forecast went negative within days."""
    rng = np.random.default_rng(9)
    t = np.arange(24 * 14)
    weekday = (t // 24) % 7  # day 0 is a Monday
    level = np.array([1.2, 1.05, 1.0, 1.0, 0.95, 0.6, 0.45])[weekday]
    hourly = np.clip(np.sin((t % 24 - 7) / 13 * np.pi), 0.05, None)
    y = rng.poisson(150 * level * hourly).astype(np.float64)
    start = 1_767_571_200 * 10**9  # 2026-01-05, a Monday
    fc = fit_forecast(start + t[:168] * H, y[:168],
                      ProphetConfig(uncertainty_samples=20).model_dump(mode="json"), H, 168)
    assert fc.yhat.min() > -0.5 * y[168:].mean()  # was -1.8 x the mean
    shown = np.maximum(fc.yhat, 0.0)  # what the detector expects for a count
    assert np.abs(shown - y[168:]).mean() < 0.4 * y[168:].mean()  # was 1.25 x the mean


def test_seasonal_baseline_spike_in_the_history_does_not_pollute_its_slot() -> None:
    """18 days of history learned unflagged (a backtest's first tick) with one spike on the
    second visit of its hour-of-week slot: the slot held one value, so the ring's median was
    the mean of the value and the spike, and the week after alarmed. Scored: the next week."""
    rng = np.random.default_rng(1)
    det = create({"type": "seasonal_baseline"}, interval=HOUR)
    history, spike, alarms = 18 * 24, 11 * 24 + 12, 0
    for i in range(history + 24 * 7):
        y = 40.0 + 60.0 * (9 <= i % 24 < 18) + rng.normal(0.0, 3.0) + 500.0 * (i == spike)
        batch = TickBatch.of(["s"], [i * H], [y])
        flag = i >= history and bool(det.score(batch).score[0] >= ALERT)
        alarms += flag
        det.learn(batch, np.array([flag]))
    assert alarms == 0


def _office_hours(t: np.ndarray) -> np.ndarray:
    """40 at night, 100 from 9 to 18 on weekdays, 64 on weekend days (t in hours from a
    Monday)."""
    day = (t % 24 >= 9) & (t % 24 < 18)
    return 40.0 + 60.0 * day * np.where((t // 24) % 7 >= 5, 0.4, 1.0)


def test_seasonal_baseline_first_visit_incident_does_not_become_its_slot() -> None:
    """Week 1 (warm-up, learned unflagged) holds a 1-3 hour incident on every series, a
    spike to 4x or an outage to 0, on weekdays and weekend days alike: each slot it hit
    held the incident as its only value, so in week 2 ordinary values alarmed against it,
    were learned clipped towards it, and alarmed for weeks (1,860 alarms on 398 of 400
    series in weeks 2-5 before). Now the once-seen slot is trusted only near the same hour
    of its most similar day, and the next visit replaces it."""
    rng = np.random.default_rng(7)
    n, ticks = 60, 24 * 7 * 4
    t = np.arange(ticks)[:, None]
    base = _office_hours(t) * np.ones((1, n))
    start, length = rng.integers(24, 160, n), rng.integers(1, 4, n)
    hit = (t >= start) & (t < start + length)
    values = base + rng.normal(0.0, 3.0, (ticks, n))
    values = np.where(hit, np.where(np.arange(n) % 2 == 0, 4.0 * base, 0.0), values)
    scores = run_series("seasonal_baseline", values)
    assert np.isfinite(scores[24 * 8:]).all()
    assert (scores[24 * 7:] >= ALERT).sum() == 0
    # The incident's slots expect the ordinary level again from their second visit on.
    det = create({"type": "seasonal_baseline"}, interval=HOUR)
    keys = np.array([f"s{i}" for i in range(n)], dtype=object)
    for i in range(24 * 7 * 2):
        det.learn(TickBatch.of(keys, np.full(n, i * H), values[i]), np.zeros(n, bool))
    later = start + 24 * 7 * 2
    expected = det.score(TickBatch.of(keys, later * H, base[later, np.arange(n)])).expected
    assert np.abs(expected - base[later, np.arange(n)]).max() < 15.0


def test_seasonal_baseline_weekly_pattern_of_one_day_is_still_learned() -> None:
    """A slot pulled towards its most similar day must not lose a real pattern of its own:
    Monday 9-13 runs 50 % above every other day. Its second visit agrees with its first,
    so the slot keeps it: no alarm in weeks 2-4 and Monday's level expected in week 3."""
    rng = np.random.default_rng(8)
    n, ticks = 60, 24 * 7 * 4
    t = np.arange(ticks)[:, None]
    monday = ((t // 24) % 7 == 0) & (t % 24 >= 9) & (t % 24 < 13)
    level = _office_hours(t) * np.where(monday, 1.5, 1.0) * np.ones((1, n))
    scores = run_series("seasonal_baseline", level + rng.normal(0.0, 3.0, (ticks, n)))
    assert (scores[24 * 7:] >= ALERT).sum() == 0
    monday_w3 = scores[24 * 14 + 9: 24 * 14 + 13]
    assert np.isfinite(monday_w3).all() and (monday_w3 < 0.999).mean() > 0.95


def test_seasonal_baseline_band_narrows_as_slots_fill_and_week_two_stays_quiet() -> None:
    """A slot's median from 1, 2, 3 visits is uncertain: its band is widest in week 2 and
    narrows week by week; on pure noise (300 series) week 2 raises no alarm, and scores
    past 0.99 are no more frequent than once the slots are full."""
    rng = np.random.default_rng(9)
    n, ticks = 300, 24 * 7 * 5
    t = np.arange(ticks)[:, None]
    values = _office_hours(t) + rng.normal(0.0, 3.0, (ticks, n))
    det = create({"type": "seasonal_baseline"}, interval=HOUR)
    keys = np.array([f"s{i}" for i in range(n)], dtype=object)
    width, scores = np.full((ticks, n), np.nan), np.full((ticks, n), np.nan)
    for i in range(ticks):
        batch = TickBatch.of(keys, np.full(n, i * H), values[i])
        out = det.score(batch)
        width[i], scores[i] = out.upper - out.lower, out.score
        det.learn(batch, np.nan_to_num(out.score) >= ALERT)
    weekly = [float(np.nanmedian(width[w * 168:(w + 1) * 168])) for w in range(1, 5)]
    assert weekly == sorted(weekly, reverse=True) and weekly[0] > 1.15 * weekly[-1]
    week2, full = scores[168:336], scores[504:]
    assert np.isfinite(week2).mean() > 0.8
    assert (week2 >= ALERT).sum() == 0
    assert np.nanmean(week2 >= 0.99) <= np.nanmean(full >= 0.99)


def test_seasonal_baseline_catches_an_incident_in_a_once_seen_slot() -> None:
    """The pull towards the most similar day must not hide a real incident in week 2: a
    2x spike or an outage of 1-3 hours is caught on nearly every series, with no alarm
    outside it."""
    rng = np.random.default_rng(10)
    n, ticks = 60, 24 * 7 * 3
    t = np.arange(ticks)[:, None]
    base = _office_hours(t) * np.ones((1, n))
    start, length = rng.integers(24 * 8, 24 * 14 - 4, n), rng.integers(1, 4, n)
    hit = (t >= start) & (t < start + length)
    values = base + rng.normal(0.0, 3.0, (ticks, n))
    values = np.where(hit, np.where(np.arange(n) % 2 == 0, 2.0 * base, 0.0), values)
    alarms = run_series("seasonal_baseline", values) >= ALERT
    caught = (alarms & hit).any(axis=0)
    assert caught.mean() >= 0.95
    assert (alarms & ~hit).sum() == 0
