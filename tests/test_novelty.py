"""The ``novelty`` detector: recurring shapes are normal, new shapes are news, once."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from detectors.base import TickBatch
from detectors.novelty import Novelty, NoveltyConfig

STEP_NS = 300 * 10**9
ALARM = 1 - 10**-3.0


def _scores(det: Novelty, values: np.ndarray) -> np.ndarray:
    out = []
    for t, v in enumerate(values):
        batch = TickBatch.of(["s"], [t * STEP_NS], [v])
        out.append(det.score(batch).score[0])
        det.learn(batch, np.zeros(1, dtype=bool))
    return np.nan_to_num(np.array(out))


def _daily_spikes(days: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with the same batch-job spike at the same time every day (48 points a day)."""
    values = 10 + rng.normal(size=48 * days)
    values[20::48] += 30
    return values


def test_a_recurring_spike_is_learned_and_a_new_shape_is_flagged() -> None:
    rng = np.random.default_rng(5)
    values = _daily_spikes(30, rng)
    values[48 * 28 + 5] += 60  # a spike twice as high as the daily one, at another time
    scores = _scores(Novelty(NoveltyConfig(), interval=timedelta(minutes=30)), values)
    later_daily = np.arange(48 * 5 + 20, 48 * 28, 48)
    assert scores[later_daily].max() < ALARM  # the daily spike has near twins
    assert scores[48 * 28 + 5] >= ALARM  # the new one has none
    assert scores[48 * 5:48 * 28].max() < ALARM  # and nothing else fired in between


def test_fires_once_then_stays_quiet_for_the_refractory_period() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([50 + rng.normal(size=400), 80 + rng.normal(size=60)])
    scores = _scores(Novelty(NoveltyConfig(refractory=30), interval=timedelta(minutes=5)),
                     values)
    fired = np.flatnonzero(scores >= ALARM)
    assert 400 <= fired[0] <= 402  # the jump, at once
    assert (scores[fired[0] + 1:fired[0] + 31] == 0.0).all()  # its echo is not reported
    assert scores[100:400].max() < ALARM


def test_without_refractory_the_echo_is_reported() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([50 + rng.normal(size=400), 80 + rng.normal(size=60)])
    scores = _scores(Novelty(NoveltyConfig(refractory=0), interval=timedelta(minutes=5)),
                     values)
    assert (scores[400:416] >= ALARM).sum() > 1


def test_state_is_bounded_by_history() -> None:
    det = Novelty(NoveltyConfig(history=100, windows=[4, 8]), interval=timedelta(minutes=5))
    _scores(det, np.arange(500.0))
    (blob,) = det.get_state().values()
    # the buffer, plus a fixed part: channel moments, level, the sequence model (4 bins,
    # order 2: 84 counts, 16 surprises, edges and context) and 12 twin ages, about 1.1 KB
    assert len(blob) < 8 * (100 + 8) + 1200
    small = Novelty(NoveltyConfig(history=100, windows=[4, 8], sequence_bins=0, arc_points=0),
                    interval=timedelta(minutes=5))
    _scores(small, np.arange(500.0))
    assert len(next(iter(small.get_state().values()))) < 8 * (100 + 8) + 200


def _two_novel_events() -> np.ndarray:
    rng = np.random.default_rng(11)
    values = 10 + rng.normal(size=900)
    values[500:504] += 30  # a burst never seen before
    values[700:704] -= 30  # and later a drop never seen before
    return values


def test_alarm_fatigue_makes_a_restless_series_need_rarer_evidence() -> None:
    def alarms(**cfg: float) -> np.ndarray:
        det = Novelty(NoveltyConfig(refractory=20, **cfg), interval=timedelta(minutes=5))
        return np.flatnonzero(_scores(det, _two_novel_events()) >= ALARM)

    without = alarms(fatigue_decades=0.0)
    assert any(500 <= i < 510 for i in without) and any(700 <= i < 710 for i in without)
    tired = alarms(fatigue_decades=50.0)
    assert any(500 <= i < 510 for i in tired) and not any(700 <= i < 710 for i in tired)
    rested = alarms(fatigue_decades=50.0, fatigue_halflife=5.0)  # the effect has faded by 700
    assert any(700 <= i < 710 for i in rested)


def test_history_as_a_duration_and_windows_that_cannot_fit_are_rejected() -> None:
    import pytest
    from pydantic import ValidationError

    det = Novelty(NoveltyConfig(history="1d"), interval=timedelta(minutes=5))
    assert det._len == 288 + 16  # one day of 5-minute points, plus the longest window
    with pytest.raises(ValidationError, match="at least twice the longest window"):
        NoveltyConfig(history=16, windows=[500])


def test_sequence_model_notices_a_new_order_of_ordinary_values() -> None:
    """Low, high, low, high for a long time, then low, low, high, high: every value is
    ordinary, but the order is new. The sequence channel (the last distance column: the mean
    surprise of the last 16 points, in bits) rises to several times its usual level; without the
    channel (``sequence_bins: 0``) there is no such column."""
    rng = np.random.default_rng(5)
    base = np.tile([0.0, 10.0], 600)
    values = np.concatenate([base, np.tile([0.0, 0.0, 10.0, 10.0], 10)])
    values = values + rng.normal(scale=0.1, size=len(values))
    det = Novelty(NoveltyConfig(), interval=timedelta(minutes=5))
    surprise = []
    for t, v in enumerate(values):
        batch = TickBatch.of(["k"], [t * 300 * 10**9], [v])
        dist = det._step(batch).dist  # no row before the series' first point
        surprise.append(dist[0, -1] if len(dist) else np.nan)
        det.learn(batch, np.zeros(1, dtype=bool))
    surprise = np.array(surprise)
    usual = np.nanmax(surprise[600:1200])
    # the noise splits each level over two of the 4 bins: about 1 bit a point is usual
    assert usual < 1.5
    assert surprise[1200:].max() > 3 * usual
    plain = Novelty(NoveltyConfig(sequence_bins=0), interval=timedelta(minutes=5))
    plain.learn(TickBatch.of(["k"], [0], [1.0]), np.zeros(1, dtype=bool))
    batch = TickBatch.of(["k"], [10**12], [1.0])
    assert det._step(batch).dist.shape[1] == plain._step(batch).dist.shape[1] + 1


def test_sequence_bins_of_one_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="one bin says nothing"):
        NoveltyConfig(sequence_bins=1)


def test_a_value_too_large_to_square_is_still_flagged() -> None:
    """Squares beyond 1e154 overflowed to inf and such a value scored 0."""
    rng = np.random.default_rng(3)
    values = 100 + rng.normal(size=400)
    values[300] = 1e200
    scores = _scores(Novelty(NoveltyConfig(history=400), interval=timedelta(minutes=5)), values)
    assert scores[300] >= ALARM


def test_distances_do_not_cancel_after_a_huge_glitch() -> None:
    """Distances from running sums of squares (a^2 + b^2 - 2ab) cancelled to noise for
    ``history`` points after one huge value: an exact twin came out ~1e8 away."""
    from detectors.novelty import _nearest

    rng = np.random.default_rng(4)
    series = np.concatenate([[1e12], rng.normal(size=100)])[None, :]
    have = np.array([series.shape[1]])
    w, total = 8, series.shape[1]
    brute = min(np.sqrt(((series[0, j:j + w] - series[0, total - w:]) ** 2).sum())
                for j in range(total - 2 * w + 1))
    assert 0.5 < brute < 10  # noise vs noise (the glitch's windows are far)
    assert _nearest(series, have, w)[0] == pytest.approx(brute, rel=1e-9)


def test_one_huge_glitch_does_not_blind_the_series() -> None:
    """One value 10,000x the level used to widen every channel's spread for tens of
    thousands of points: an incident weeks later scored nothing. The distances that update
    the moments are now capped at mean + ``outlier_clip`` sds."""
    rng = np.random.default_rng(5)
    t = np.arange(3000)
    values = 100 + 20 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 3, len(t))
    values[1000] = 1e6  # a unit error in one row
    values[2500:2504] += 40  # an ordinary incident, 5 days later

    def evidence(clip: float) -> float:
        det = Novelty(NoveltyConfig(outlier_clip=clip), interval=timedelta(minutes=5))
        scores = _scores(det, values)
        assert scores[1000] >= ALARM  # the glitch itself is news
        return float(-np.log10(max(1.0 - scores[2500:2516].max(), 1e-300)))

    assert evidence(NoveltyConfig().outlier_clip) > 5.0  # (300 decades without the glitch)
    assert evidence(0.0) < 4.0  # without the cap the shape views stay blind


def test_twins_ages_keep_seeing_a_new_regime_whose_shapes_resemble_only_each_other() -> None:
    """After 1,500 points of noise the series starts to alternate (+-1.5, inside the noise's
    range). Its first shapes are new; later ones have exact twins a few points back, so every
    distance channel goes quiet (no refractory period here, to watch the channels alone). The
    twins' ages still say the regime is new: all of them are recent, where a steady series'
    twins come from anywhere. Without that channel (``arc_points: 0``) nothing is seen."""
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(size=1500),
                             np.tile([1.5, -1.5], 30) + 0.05 * rng.normal(size=60)])
    seen = {}
    for arc in (12, 0):
        det = Novelty(NoveltyConfig(seasonal_days=0, coarse=[], sequence_bins=0, refractory=0,
                                    fatigue_decades=0, arc_points=arc),
                      interval=timedelta(minutes=5))
        scores = _scores(det, values)
        seen[arc] = (scores[1200:1500].max(), scores[1530:].max())
    noise, regime = seen[12]
    assert regime > 0.999 > noise
    assert seen[0][1] < 0.5
