"""``novelty``: a streaming discord detector: how unlike anything in the recent past is the
shape the series has just drawn? The default of ``cxmon bench nab``.

Model, per series (vectorized over the series of a tick)::

    d_w       = distance from the last w points to their nearest neighbour among the
                earlier, non-overlapping w-point windows of the last ``history`` points
                (the left matrix profile of Yeh et al. 2016, for w in ``windows``)
    d_day     = distance from the last 8 points to the same 8 points of each of the
                previous ``seasonal_days`` days (the nearest of them)
    d_b       = d_8 on the series of block means of b points, for b in ``coarse``,
                computed when a block completes
    a         = minus the mean, over the last ``arc_points`` points, of the log of how far
                back the nearest twin of the middle window's shape ends (the left matrix
                profile's index, not its distance); it has a say once 200 such means
                have been seen
    q         = mean over the last ``sequence_window`` points of -log2 P(bin | previous
                bins): the series binned into ``sequence_bins`` quantile bins of its last
                2,000 points (re-estimated every 100), P from its own counts of which bin
                followed which ``sequence_order`` bins (orders interpolated); it has a
                say once 200 such means have been seen
    dec_c     = -log10 P(N > (d_c - mu_c) / sd_c)   for every channel c; mu_c, sd_c: EW
                moments of d_c (half-life likelihood_halflife, coarse_halflife in blocks),
                each d_c capped at mu_c + outlier_clip sd_c (the sd from before the run
                of capped distances began) before it updates them
    shape     = median of dec_w over w, and of dec_q once it has a say
    decades   = max(shape, (shape + dec_day) / 2, dec_b for every b, dec_a, dec_q)
    decades  -= fatigue_decades * (EW count of this series' recent alarms)
    score     = 1 - 10 ** -decades

Why: most incidents in machine and business series draw a shape the series has not drawn
before (a spike higher than the usual ones, a step, a missing daily peak, a changed rhythm),
while the recurring oddities of a healthy series (the nightly batch spike, the Monday peak)
have a near twin in its history. Comparing the nearest-neighbour distance with the series'
*own* history of such distances turns it into a tail probability calibrated per series, so
one threshold suits noisy and quiet series. The median over three window lengths keeps
anomalies that stand out at several scales and drops one scale's flukes; the same-time-of-day
view catches a normal-looking shape at the wrong time (no morning peak), and can only
strengthen the shape's own evidence; the block
means catch slow drifts that no short window sees; and the sequence model catches a burst of
ordinary-sized spikes or a sudden oscillation, where every shape has a twin but the order of
highs and lows is one the series rarely produces; the twins' ages catch the same burst, or a
new regime, another way: its shapes resemble each other more than anything older. After a
point reaches
``refractory_decades`` the detector reports 0 for ``refractory`` points: the first point of an
incident carries the news. And a series that alarms often needs rarer evidence for its next
alarm (alarm fatigue: each recent alarm adds ``fatigue_decades``, fading with
``fatigue_halflife``), so one restless series does not flood its owners.

The expected value and band come from an EW mean and mean absolute deviation (as
:mod:`detectors.surprise`); they describe the level, not the shape.

Cost: O(history x sum(windows)) per point and ``8 x (history + max window)`` bytes of
state per series plus about 1 KB (about 33 KB at the default), so this is a detector for
hundreds of key series, not for the long tail (use ``robust_seasonal`` there).

Example: a noisy daily pattern that suddenly skips its peak.

>>> from datetime import timedelta
>>> import numpy as np
>>> det = Novelty(NoveltyConfig(history=600), interval=timedelta(hours=1))
>>> rng = np.random.default_rng(1)
>>> day = 10 * np.sin(np.arange(24) / 24 * 2 * np.pi)
>>> values = np.concatenate([np.tile(day, 30), np.zeros(12)]) + rng.normal(size=732)
>>> scores = []
>>> for t, v in enumerate(values):
...     batch = TickBatch.of(["kpi"], [t * 3600 * 10**9], [v])
...     scores.append(det.score(batch).score[0])
...     det.learn(batch, np.zeros(1, dtype=bool))
>>> scores = np.nan_to_num(scores)
>>> bool(scores[200:720].max() < 0.999), bool(scores[720:].max() > 0.9999)
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from detectors.base import DetectorConfig, Scores, TickBatch
from detectors.records import RecordDetector
from detectors.registry import register
from detectors.surprise import _LN10, _ew_moments, _rate, log10_gauss_tail
from monitor.durations import Duration
from monitor.zones import Zone, wall_clock_ns

__all__ = ["Novelty", "NoveltyConfig"]



class NoveltyConfig(DetectorConfig):
    """Settings of :class:`Novelty`. Lengths are in points (rows); ``history`` may also be a
    duration."""

    type: Literal["novelty"] = "novelty"
    windows: list[int] = Field(default_factory=lambda: [4, 8, 16], min_length=1,
                               max_length=8, description="Shape lengths compared (points).")
    history: int | Duration = Field(4000, description="What the nearest-neighbour search "
                                    "looks back over: points (an integer, 16 to 100,000) or a "
                                    "duration such as 14d (turned into points with the metric's "
                                    "interval).")
    likelihood_halflife: float = Field(1000.0, gt=0.0, le=1e7, description="Half-life "
                                       "(points) of the history each distance is compared "
                                       "with.")
    seasonal_days: int = Field(7, ge=0, le=60, description="Also compare the latest "
                               "8 points with the same time on each of this many previous "
                               "days (0 disables; needs at least 16 points a day).")
    timezone: Zone = Field("UTC", description="IANA time zone whose wall clock 'the same "
                           "time on previous days' follows: the day after a change of "
                           "summer time is 23 or 25 hours back; a metric's timezone sets it "
                           "unless given here.")
    coarse: list[int] = Field(default_factory=lambda: [4, 8], max_length=4, description="Also "
                              "search 8-block shapes of block means of these sizes (points), "
                              "for slow anomalies.")
    coarse_halflife: float = Field(100.0, gt=0.0, le=1e7, description="Half-life (blocks) of "
                                   "the history each coarse distance is compared with.")
    sequence_bins: int = Field(4, ge=0, le=8, description="Also learn which of this many "
                               "quantile bins follows which (a sequence model of the series) "
                               "and score the mean surprise of the last sequence_window "
                               "points (0 disables; else at least 2).")
    sequence_order: int = Field(2, ge=1, le=3, description="Points of context of the sequence "
                                "model.")
    sequence_window: int = Field(16, ge=2, le=256, description="Points whose surprise is "
                                 "averaged.")
    arc_points: int = Field(12, ge=0, le=256, description="Also score how recent the "
                            "nearest twins of the last this many shapes (of the middle "
                            "window length) are: the shapes of a new regime, or of a burst, "
                            "resemble each other rather than anything older (0 disables).")
    min_distances: int = Field(10, ge=2, le=100_000, description="Distances seen before the "
                               "first score.")
    outlier_clip: float = Field(25.0, ge=0.0, le=1e6, description="A distance beyond its "
                                "channel's mean + this many standard deviations (as they were "
                                "before the run of such distances began) updates the moments "
                                "as if it were at that bound (0 disables): one glitch must not "
                                "blind the series for weeks.")
    refractory: int = Field(100, ge=0, le=10**7, description="Points reported as 0 after a "
                            "point reaches refractory_decades (0 disables).")
    refractory_decades: float = Field(3.0, gt=0.0, le=300.0, description="-log10 p that "
                                      "starts the refractory period.")
    fatigue_decades: float = Field(1.0, ge=0.0, le=100.0, description="How much rarer (in "
                                   "decades of p) each recent alarm makes the next one have to "
                                   "be (0 disables).")
    fatigue_halflife: float = Field(3000.0, gt=0.0, le=1e8, description="Half-life (points) "
                                    "of that effect.")
    level_halflife: float = Field(3.0, gt=0.0, le=1e6, description="Half-life (points) of "
                                  "the EW mean reported as the expected value.")
    scale_halflife: float = Field(200.0, gt=0.0, le=1e7, description="Half-life (points) of "
                                  "the mean absolute deviation behind the band.")
    z_band: float = Field(3.0, gt=0.0, le=50.0, description="Half-width of the band in "
                          "mean absolute deviations.")

    @field_validator("history")
    @classmethod
    def _history_range(cls, v: int | timedelta) -> int | timedelta:
        if isinstance(v, int) and not 16 <= v <= 100_000:
            raise ValueError("history in points must be between 16 and 100,000")
        if isinstance(v, timedelta) and v <= timedelta(0):
            raise ValueError("history must be a positive duration")
        return v

    @model_validator(mode="after")
    def _history_holds_the_windows(self) -> NoveltyConfig:
        if isinstance(self.history, int) and self.history < 2 * max(self.windows):
            raise ValueError(f"history ({self.history} points) must be at least twice the "
                             f"longest window ({max(self.windows)}), or nothing is ever compared")
        return self

    @field_validator("sequence_bins")
    @classmethod
    def _bins_not_one(cls, v: int) -> int:
        if v == 1:
            raise ValueError("one bin says nothing: use 0 to disable, or 2 to 8 bins")
        return v

    @field_validator("windows", "coarse")
    @classmethod
    def _lengths_positive(cls, v: list[int]) -> list[int]:
        if any(w < 1 or w > 1000 for w in v):
            raise ValueError("every length must be between 1 and 1000 points")
        return sorted(set(v))


def _history_points(config: NoveltyConfig, interval: timedelta) -> int:
    """``history`` in points: as given, or a duration divided by the interval (clamped)."""
    if isinstance(config.history, int):
        return config.history
    points = round(config.history / max(interval, timedelta(seconds=1)))
    return int(min(100_000, max(2 * max(config.windows), 16, points)))


_SEASONAL_WINDOW = 8  # points compared with the same time on previous days
_COARSE_WINDOW = 8  # blocks per coarse shape
_SEQ_START = 100  # points before the sequence model bins its first point
_SEQ_REBIN = 100  # the bin edges are re-estimated every this many points ...
_SEQ_SPAN = 2000  # ... from the quantiles of at most this many latest points
_SEQ_MIN_SURPRISES = 200  # window means seen before the sequence channel has a say
_ARC_MIN_MEANS = 200  # the same for the channel of the twins' ages


def _nearest(series: np.ndarray, have: np.ndarray, w: int) -> np.ndarray:
    """Per row of ``series`` (S, T; the newest point last, ``have`` real points at the end):
    the distance from the last ``w`` points to the nearest earlier window that does not
    overlap them (NaN if none)."""
    return _nearest_twin(series, have, w)[0]


def _nearest_twin(series: np.ndarray, have: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_nearest`, and how many points before the newest one that nearest window ends
    (its age: ``w`` for the window just before, NaN if none)."""
    total = series.shape[1]
    past_n = total - 2 * w + 1  # windows ending at or before t - w
    if past_n <= 0:
        return np.full(len(series), np.nan), np.full(len(series), np.nan)
    # squared differences summed term by term, never as sum(a^2) + sum(b^2) - 2ab from
    # running sums: one huge glitch in the buffer would cancel every later distance to noise
    cur = series[:, total - w:]
    d2 = np.zeros((len(series), past_n))
    for k in range(w):
        diff = series[:, k:k + past_n] - cur[:, k:k + 1]
        d2 += diff * diff
    # a past window is real when all its points are: it starts at or after total - have
    d2 = np.where(np.arange(past_n)[None, :] >= (total - have)[:, None], d2, np.inf)
    at = d2.argmin(axis=1)
    best = d2[np.arange(len(d2)), at]
    found = np.isfinite(best)
    return (np.where(found, np.sqrt(np.maximum(best, 0.0)), np.nan),
            np.where(found, (total - w - at).astype(np.float64), np.nan))


def _at_lags(series: np.ndarray, have: np.ndarray, w: int, lags: np.ndarray) -> np.ndarray:
    """Distance from the last ``w`` points to the nearest of the windows ``lags`` points
    earlier (``lags``: one row per series, one column per day back; NaN when none of them is
    real yet)."""
    total = series.shape[1]
    cur = series[:, total - w:]
    best = np.full(len(series), np.inf)
    steps = np.arange(w)
    for lag in lags.T:
        start = np.clip(total - w - lag, 0, total - w)
        past = np.take_along_axis(series, start[:, None] + steps[None, :], axis=1)
        d2 = ((past - cur) ** 2).sum(axis=1)
        best = np.where((have >= lag + w) & (lag + w <= total), np.minimum(best, d2), best)
    return np.where(np.isfinite(best), np.sqrt(best), np.nan)


def _clip_outliers(d: np.ndarray, mu: np.ndarray, var: np.ndarray, ref: np.ndarray,
                   known: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """``d`` capped at ``mu + k sd``, and the channel's new ``ref``: the variance in force when
    the current run of capped distances began (0 outside a run; NaN distances keep it).

    Why: the moments are exponentially weighted, so one distance 10,000 sds out (a unit
    error, a counter reset) would widen the channel's spread for tens of thousands of points
    and hide every later incident of the series. Capped, the glitch's few distances widen it
    by a bounded factor; the sd of the cap stays the one from before the run, or each capped
    distance would raise the next cap and the bound would compound. A long incident still
    widens the spread (later alarms need rarer evidence). Only where the moments are known
    and show some spread: a series flat so far must still learn its first change.

    >>> d, ref = _clip_outliers(np.array([1e9, 1e9, 2.0, np.nan]), np.ones(4),
    ...                         np.array([4.0, 9.0, 4.0, 4.0]), np.array([0.0, 4.0, 4.0, 4.0]),
    ...                         np.ones(4, dtype=bool), 25.0)
    >>> d[:3].tolist(), ref.tolist()
    ([51.0, 51.0, 2.0], [4.0, 4.0, 0.0, 4.0])
    """
    ok = np.isfinite(d)
    base = np.where(ref > 0.0, ref, var)
    bound = mu + k * np.sqrt(np.maximum(base, 0.0))
    with np.errstate(invalid="ignore"):
        over = known & (var > 0.0) & ok & (d > bound)
    return np.where(over, bound, d), np.where(ok, np.where(over, base, 0.0), ref)


def _context(symbols: np.ndarray, order: int, bins: int) -> np.ndarray:
    """Index of the context made of the last ``order`` symbols of each row (0 for order 0).

    >>> _context(np.array([[1, 3], [0, 2]]), 2, 4).tolist(), _context(np.array([[1, 3]]), 1, 4)
    ([7, 2], array([3]))
    """
    ctx = np.zeros(len(symbols), dtype=np.int64)
    for j in range(symbols.shape[1] - order, symbols.shape[1]):
        ctx = ctx * bins + symbols[:, j]
    return ctx


@dataclass(slots=True)
class _Step:
    """What one batch implies for the series that have state (score and update)."""

    sel: np.ndarray  # positions in the batch
    rows: np.ndarray  # state rows
    x: np.ndarray
    dist: np.ndarray  # (len(rows), channels); NaN where a channel has no distance
    decades: np.ndarray
    ready: np.ndarray
    seq: _SeqStep | None = None
    arc_ring: np.ndarray | None = None  # (rows, arc_points) log-ages, this point's last


@dataclass(slots=True)
class _SeqStep:
    """The sequence model's view of this point (for the series past ``_SEQ_START``)."""

    on: np.ndarray  # bool per row: the point is binned and learned
    edges: np.ndarray  # (rows, bins - 1) bin edges in force
    symbol: np.ndarray  # bin of the point
    ring: np.ndarray  # (rows, window) latest surprises, this point's last


@register("novelty")
class Novelty(RecordDetector):
    """Nearest-neighbour distance of the latest shape, as a per-series tail probability."""

    Config = NoveltyConfig
    record_magic = b"CXNV3"
    #: Why the business calendar's days are learned all the same (monitor/detection.py): the
    #: shapes and same-time-of-day lags are positions in the buffer, and a day left out shifts
    #: them (on the demo, 8 alerts instead of 4: a total skipped for 30 hours compared each
    #: hour with the wrong hour of the previous days for a week). Scores are still blanked.
    learns_calendar_days: str | None = "its shapes are positions in its history"

    def __init__(self, config: DetectorConfig, *, interval: timedelta) -> None:
        super().__init__(config, interval=interval)
        assert isinstance(config, NoveltyConfig)
        self.cfg: NoveltyConfig = config
        self._len = _history_points(config, interval) + max(config.windows)
        day = round(86_400 / max(interval.total_seconds(), 1e-9))
        self._step_ns = max(1, interval // timedelta(microseconds=1) * 1_000)
        #: lags (points) of the same time on previous days that fit in the buffer
        self._lags = [k * day for k in range(1, config.seasonal_days + 1)
                      if day >= 2 * _SEASONAL_WINDOW and k * day + _SEASONAL_WINDOW < self._len]
        bins, order = config.sequence_bins, config.sequence_order
        self._seq = bins > 0
        #: offset of each context order's count table (order o: bins ** o contexts x bins)
        self._seq_off = np.cumsum([0] + [bins ** (o + 1) for o in range(order + 1)])
        self._arc = config.arc_points > 0
        #: the window length whose twins' ages are watched: the middle one
        self._arc_w = config.windows[len(config.windows) // 2]
        k = (len(config.windows) + (1 if self._lags else 0) + len(config.coarse) + self._arc
             + self._seq)
        fields = [
            ("buf", "<f8", (self._len,)), ("n", "<i8"), ("cool", "<i8"),
            ("mu", "<f8", (k,)), ("var", "<f8", (k,)), ("cnt", "<f8", (k,)),
            ("ref", "<f8", (k,)),
            ("m", "<f8"), ("s", "<f8"), ("load", "<f8"),
        ]
        if self._arc:
            fields += [("arc_ring", "<f8", (config.arc_points,)), ("arc_k", "<i8")]
        if self._seq:
            fields += [("seq_edges", "<f8", (bins - 1,)), ("seq_sym", "<i8", (order,)),
                       ("seq_cnt", "<f8", (int(self._seq_off[-1]),)),
                       ("seq_ring", "<f8", (config.sequence_window,)), ("seq_k", "<i8")]
        self._set_record(np.dtype(fields))
        fine = len(config.windows) + (1 if self._lags else 0)
        self._rates = np.array([_rate(config.likelihood_halflife)] * fine
                               + [_rate(config.coarse_halflife)] * len(config.coarse)
                               + [_rate(config.likelihood_halflife)] * (self._arc + self._seq))
        #: distances each channel's moments need before they count (and cap distances)
        self._min_cnt = np.array([config.min_distances] * (k - self._arc - self._seq)
                                 + [_ARC_MIN_MEANS] * self._arc
                                 + [config.min_distances] * self._seq, dtype=np.float64)
        self._fatigue_keep = 2.0 ** (-1.0 / config.fatigue_halflife)
        self._a_level = _rate(config.level_halflife)
        self._a_scale = _rate(config.scale_halflife)

    # ------------------------------------------------------------------ model

    def _day_lags(self, ts: np.ndarray) -> np.ndarray:
        """Points back to the same wall-clock time 1..seasonal_days days ago, per point: one
        day is 23 hours back the day after clocks go forward, 25 after they go back."""
        lags = np.broadcast_to(np.asarray(self._lags, dtype=np.int64), (len(ts), len(self._lags)))
        if self.cfg.timezone == "UTC" or not len(ts):
            return lags
        day_ns = 86_400 * 1_000_000_000
        ts = np.asarray(ts, dtype=np.int64)
        offset = wall_clock_ns(ts, self.cfg.timezone) - ts
        ks = np.round(np.asarray(self._lags) * self._step_ns / day_ns).astype(np.int64)
        shifts = np.stack([offset - (wall_clock_ns(ts - k * day_ns, self.cfg.timezone)
                                     - (ts - k * day_ns)) for k in ks], axis=1)
        return lags - shifts // self._step_ns

    def _distances(self, buf: np.ndarray, n: np.ndarray, x: np.ndarray,
                   ts: np.ndarray | None = None) -> np.ndarray:
        """Distance of the latest shape to its nearest past twin, one column per channel:
        every window length, then the same time on previous days, then every coarse block
        size (NaN where a channel has nothing to say at this point).

        ``buf`` holds the past, oldest first (the newest ``n`` entries are real).
        """
        return self._distances_and_age(buf, n, x, ts)[0]

    def _distances_and_age(self, buf: np.ndarray, n: np.ndarray, x: np.ndarray,
                           ts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_distances`, and the age of the middle window's nearest twin."""
        series = np.concatenate([buf, x[:, None]], axis=1)  # (S, L + 1), x last
        series -= x[:, None]  # centred on the newest value
        # scaled to at most 1 (distances scale back below): squares of values beyond 1e154
        # would overflow
        scale = np.abs(series).max(axis=1)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        series /= scale[:, None]
        have = np.minimum(n, self._len) + 1  # real points, x included
        cols, age = [], np.full(len(x), np.nan)
        for w in self.cfg.windows:
            d, a = _nearest_twin(series, have, w)
            cols.append(d)
            if w == self._arc_w:
                age = a
        if self._lags:
            lags = (self._day_lags(ts) if ts is not None else
                    np.broadcast_to(np.asarray(self._lags, np.int64), (len(x), len(self._lags))))
            cols.append(_at_lags(series, have, _SEASONAL_WINDOW, lags))
        for b in self.cfg.coarse:
            d = np.full(len(x), np.nan)
            due = np.flatnonzero((n + 1) % b == 0)  # this point completes a block
            if len(due):
                blocks = series[due, series.shape[1] % b:]
                means = blocks.reshape(len(due), -1, b).mean(axis=2)
                d[due] = _nearest(means, have[due] // b, _COARSE_WINDOW)
            cols.append(d)
        return np.stack(cols, axis=1) * scale[:, None], age

    def _arc_view(self, st: np.ndarray, age: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ring of the last ``arc_points`` log-ages of the middle window's twin, and
        minus their mean once the ring is full (NaN before): high when the latest shapes'
        nearest twins are all recent.

        Why: the distance channels ask how far the nearest twin is; this one asks *when* it
        was. In a steady series the twins of successive shapes come from all over the
        history. After a change of regime, or in a burst of spikes no larger than earlier
        ones, the latest shapes resemble each other more than anything older, so their
        twins are all a few points back (the arcs of the matrix profile stop crossing the
        change: the idea behind FLUSS / FLOSS, Gharghabi et al. 2017). Compared with the
        series' own history of this mean (like every channel), a run of young twins is
        evidence even where each shape is near enough to something old.
        """
        log_age = np.log(np.maximum(age, 1.0))
        ring = np.concatenate([st["arc_ring"][:, 1:], log_age[:, None]], axis=1)
        full = st["arc_k"] + 1 >= self.cfg.arc_points
        with np.errstate(invalid="ignore"):
            return ring, np.where(full, -ring.mean(axis=1), np.nan)

    def _sequence(self, st: np.ndarray, x: np.ndarray) -> tuple[_SeqStep, np.ndarray]:
        """Bin the point, and the mean surprise (-log2 P(bin | the previous bins)) of the last
        ``sequence_window`` points under the series' own bin-sequence counts (NaN before
        ``_SEQ_START`` points and until the window is full).

        Why: a burst of ordinary-sized spikes, or an oscillation where the series used to be
        calm, draws no shape that is new point by point, but an order of highs and lows that
        the series has rarely produced. The model interpolates context orders 0..order (a
        context seen n times gets weight n / (n + 2) over the shorter ones), so short
        histories still predict.
        """
        c = self.cfg
        bins, order = c.sequence_bins, c.sequence_order
        n = st["n"]
        on = n >= _SEQ_START
        edges = st["seq_edges"].copy()
        due = np.flatnonzero(on & (n % _SEQ_REBIN == 0))
        if len(due):
            span = min(_SEQ_SPAN, self._len)
            recent = st["buf"][due, -span:].copy()
            real = np.arange(span)[None, :] >= (span - np.minimum(n[due], span))[:, None]
            recent[~real] = np.nan
            levels = np.linspace(0.0, 1.0, bins + 1)[1:-1]
            edges[due] = np.nanquantile(recent, levels, axis=1).T
        symbol = (edges <= x[:, None]).sum(axis=1)
        p = np.full((len(x), bins), 1.0 / bins)
        cells = np.arange(bins)[None, :]
        for o in range(order + 1):
            ctx = _context(st["seq_sym"], o, bins)
            counts = np.take_along_axis(st["seq_cnt"],
                                        self._seq_off[o] + ctx[:, None] * bins + cells, axis=1)
            total = counts.sum(axis=1, keepdims=True)
            weight = total / (total + 2.0)
            p = np.where(total > 0, weight * counts / np.maximum(total, 1e-300)
                         + (1.0 - weight) * p, p)
        surprise = -np.log2(np.maximum(np.take_along_axis(p, symbol[:, None], axis=1)[:, 0],
                                       1e-12))
        ring = np.concatenate([st["seq_ring"][:, 1:], surprise[:, None]], axis=1)
        full = on & (st["seq_k"] + 1 >= c.sequence_window)
        mean = np.where(full, ring.mean(axis=1), np.nan)
        return _SeqStep(on, edges, symbol, ring), mean

    def _compute(self, batch: TickBatch) -> _Step:
        c = self.cfg
        rows_all = self._rows(batch.series)
        sel = np.flatnonzero((rows_all >= 0) & np.isfinite(batch.values))
        rows = rows_all[sel]
        st = self._st[rows]
        x = batch.values[sel]
        dist, age = self._distances_and_age(st["buf"], st["n"], x, batch.timestamps[sel])
        seq = arc_ring = None
        if self._arc:
            arc_ring, arc = self._arc_view(st, age)
            dist = np.column_stack([dist, arc])
        if self._seq:
            seq, surprise = self._sequence(st, x)
            dist = np.column_stack([dist, surprise])
        floor = np.maximum(np.abs(st["m"]) * 1e-9, 1e-12)[:, None]
        sd = np.sqrt(np.maximum(st["var"], 0.0))
        known = st["cnt"] >= self._min_cnt
        if self._seq:  # the sequence model's surprise means little until it has counted a lot
            known[:, -1] &= st["cnt"][:, -1] >= _SEQ_MIN_SURPRISES
        with np.errstate(invalid="ignore"):
            z = (dist - st["mu"]) / np.maximum(sd, np.maximum(1e-6 * np.abs(st["mu"]), floor))
        dec = log10_gauss_tail(np.where(np.isfinite(z) & known, z, 0.0))
        k = len(c.windows)
        # the median of the scales: an anomaly must stand out at half of them at least, so
        # one scale's fluke (a jittered spike seen by the shortest window) cannot alarm alone
        fine = np.median(dec[:, :k], axis=1)
        if self._seq:  # the sequence view joins the shape views once it has a say
            fine = np.where(known[:, -1], np.median(np.column_stack([dec[:, :k], dec[:, -1]]),
                                                    axis=1), fine)
        if self._lags:  # the same-time-of-day view can only add to the shape's own view
            fine = np.maximum(fine, 0.5 * (fine + dec[:, k]))
            k += 1
        decades = np.max(np.column_stack([fine, dec[:, k:]]), axis=1)
        # alarm fatigue: every recent alarm of this series raises the bar
        decades = np.maximum(decades - c.fatigue_decades * st["load"] * self._fatigue_keep, 0.0)
        ready = known[:, :len(c.windows)].all(axis=1)
        return _Step(sel, rows, x, dist, np.where(ready, decades, 0.0), ready, seq, arc_ring)

    # ------------------------------------------------------------------ contract

    def score(self, batch: TickBatch) -> Scores:
        """Score the tick (no mutation); NaN until ``min_distances`` distances are known."""
        out = Scores.empty(len(batch))
        if len(batch) == 0 or not self._slot:
            return out
        sp = self._step(batch)
        if len(sp.rows) == 0:
            return out
        st = self._st[sp.rows]
        score = np.where(st["cool"] > 0, 0.0, -np.expm1(-sp.decades * _LN10))
        started = st["n"] > 0
        band = self.cfg.z_band * st["s"]
        out.expected[sp.sel] = np.where(started, st["m"], np.nan)
        out.lower[sp.sel] = np.where(started, st["m"] - band, np.nan)
        out.upper[sp.sel] = np.where(started, st["m"] + band, np.nan)
        out.score[sp.sel] = np.where(sp.ready, score, np.nan)
        return out

    def _learn_points(self, batch: TickBatch, flagged: np.ndarray) -> None:
        """Remember every point (a shape seen once is known afterwards); ``flagged`` does not
        matter here."""
        new = [k for k in batch.series.tolist() if k not in self._slot]
        if new:
            self._add_series(new)
        self._update(batch)

    def _update(self, batch: TickBatch) -> None:
        sp = self._step(batch)
        st = self._st[sp.rows]
        n = st["n"].astype(np.float64)
        clip = self.cfg.outlier_clip
        for j, rate in enumerate(self._rates):
            d = sp.dist[:, j]
            ok = np.isfinite(d)
            cnt = st["cnt"][:, j]
            if clip > 0:  # bounded influence: see _clip_outliers
                d, st["ref"][:, j] = _clip_outliers(d, st["mu"][:, j], st["var"][:, j],
                                                    st["ref"][:, j],
                                                    cnt >= self._min_cnt[j], clip)
            mu, var = _ew_moments(st["mu"][:, j], st["var"][:, j], np.where(ok, d, 0.0), cnt,
                                  float(rate))
            st["mu"][:, j] = np.where(ok, mu, st["mu"][:, j])
            st["var"][:, j] = np.where(ok, var, st["var"][:, j])
            st["cnt"][:, j] = cnt + ok
        alarm = sp.ready & (sp.decades >= self.cfg.refractory_decades) & (st["cool"] == 0)
        st["load"] = st["load"] * self._fatigue_keep + alarm
        st["cool"] = np.where(st["cool"] > 0, st["cool"] - 1,
                              np.where(alarm, self.cfg.refractory, 0))
        err = sp.x - st["m"]
        first = st["n"] == 0
        st["m"] = np.where(first, sp.x, st["m"] + self._a_level * err)
        st["s"] = np.where(first, 0.0, np.where(
            n < 30, st["s"] + (np.abs(err) - st["s"]) / np.maximum(n, 1.0),
            st["s"] + self._a_scale * (np.abs(err) - st["s"])))
        if sp.seq is not None:
            self._learn_sequence(st, sp.seq)
        if sp.arc_ring is not None:
            st["arc_ring"] = sp.arc_ring
            st["arc_k"] = st["arc_k"] + 1
        st["buf"] = np.concatenate([st["buf"][:, 1:], sp.x[:, None]], axis=1)
        st["n"] = st["n"] + 1
        self._commit(sp.rows, st)

    def _learn_sequence(self, st: np.ndarray, seq: _SeqStep) -> None:
        """Count the point's bin after each of its contexts; shift it into the context."""
        bins, order = self.cfg.sequence_bins, self.cfg.sequence_order
        on = np.flatnonzero(seq.on)
        if not len(on):
            return
        sym = st["seq_sym"][on]
        counts = st["seq_cnt"][on]
        for o in range(order + 1):
            ctx = _context(sym, o, bins)
            counts[np.arange(len(on)), self._seq_off[o] + ctx * bins + seq.symbol[on]] += 1.0
        st["seq_cnt"][on] = counts
        st["seq_sym"][on] = np.concatenate([sym[:, 1:], seq.symbol[on, None]], axis=1)
        st["seq_edges"][on] = seq.edges[on]
        st["seq_ring"][on] = seq.ring[on]
        st["seq_k"][on] = st["seq_k"][on] + 1
