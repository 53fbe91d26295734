"""Seasonal detectors on the kinds of data CX KPIs are: counts, thin rates, short histories.

Each test is a false-alarm or a detection check that the calibration fixes of
``seasonal_baseline`` and ``prophet`` are there for (a scale that collapses after a lucky
first residual, small-sample MAD bias, Poisson and binomial noise, trend extrapolation).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

import detectors  # noqa: F401
from detectors.base import TickBatch
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


def test_seasonal_baseline_old_checkpoint_is_refused() -> None:
    """The record layout changed (volume and domain flags): an old record must be
    reported as unusable (the pipeline then learns afresh), not misread."""
    det = create({"type": "seasonal_baseline"}, interval=HOUR)
    det.learn(TickBatch.of(["s"], [0], [1.0]), np.zeros(1, bool))
    blob = det.get_state()["s"]
    old = blob[:4] + bytes([1]) + blob[5:]
    with pytest.raises(ValueError, match="not a seasonal_baseline"):
        create({"type": "seasonal_baseline"}, interval=HOUR).set_state({"s": old})
