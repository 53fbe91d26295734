"""``seasonal_baseline``: a fast, vectorized, per-slot robust baseline for very many series.

For every series and every time-of-week slot (slot size ``max(interval, 1h)``: 168 slots for
hourly and 5-minute data, 7 for daily data) the detector keeps the last ``depth`` values seen
in that slot (for hourly data: the same hour of the last ``depth`` weeks) in a small ring of
float32. A point is judged against::

    expected = median(ring of its slot) + offset
    sigma^2  = ((k - 1) * (c_k * 1.4826 * MAD(ring))^2 + 4 * (s * f)^2) / (k - 1 + 4)
               * (1 + Var(median of k) / sigma^2)                  k = values in the ring
    sigma    = max(sigma, Poisson floor for counts, binomial floor for rates with a volume)
    score    = P(|T| < |z|),  z = (value - expected) / sigma,  T ~ Student-t(tail_dof)

``offset`` is a short exponentially weighted mean of the residual (drift since last week),
``s`` a per-series robust scale of the residuals (which carries slots with few values) and
``f`` a noise factor: ``sqrt(typical volume / volume)`` for rates and means that carry a
volume (a rate from 30 sessions is noisier than from 3,000), ``sqrt(expected / typical
level)`` for counts. Why each correction: with the 1-4 values a slot holds, a raw MAD is
biased low (``c_k`` undoes that), the median itself is uncertain (a point is compared with
an estimate, not the truth), and a scale learned from one lucky residual must not collapse
(``s`` is clipped against itself only after ``_SCALE_SETTLED`` samples, and scores wait for
``_SCALE_READY`` of them). Counts are never assumed less noisy than Poisson, rates in [0, 1]
with a volume never less noisy than binomial, and the expected value stays in the series'
domain. The median and MAD make one bad week harmless; points the post-rules flagged, and
any point while its slot holds a single value (the median of two is their mean; history is
learned unflagged), enter the ring clipped to ``expected +- k sigma``, so an incident or a
spike in the history does not become the baseline,
while a lasting shift still does after ``depth / 2`` weeks.

A slot's first value is one draw and may be an incident (an outage in week 1, learned
unflagged during warm-up). While a slot holds a single value (weekly season, slots of 1-8
hours), its median is used only within ``k`` sigma of the same time on the most similar day
(the day whose slots around that time, +-4, differ least by their median distance, so a few
hours of incident do not count), and only when the slot stands out from its own day more
than that reference stands out from its day (a spike on Sunday is not judged by a Monday,
nor a quiet Saturday by a Sunday spike). A point that disowns the slot's value (closer to
the reference, and farther than the margin from that value) replaces it; one that agrees (a
pattern of that day alone, such as a busier Monday morning) learns against it. Until the
series scale is ready, the margin is ``k`` times the median day-to-day difference. Once it
is, a slot within ``k`` sigma of every other day's value at that time is left as it is
without the search (most are, which keeps the week after warm-up cheap).

A sparse slot's band is wider, and narrows as the slot fills: the median of ``k`` values is
uncertain by ``Var(median of k)``, and with few values the slot's own MAD weighs little
against the series scale ``s``. No model is fitted: building a series' baseline from
history is learning its points, which is one vectorized step per tick for all series
(``cxmon bench detect`` reports it as fits per second).

>>> from datetime import timedelta
>>> det = SeasonalBaseline(SeasonalBaselineConfig(), interval=timedelta(hours=1))
>>> rng = np.random.default_rng(0)
>>> H = 3_600 * 10**9
>>> for t in range(24 * 7 * 3):
...     y = 100 + 30 * (t % 24 >= 9) + rng.normal(0, 2)
...     det.learn(TickBatch.of(["s"], [t * H], [y]), np.zeros(1, dtype=bool))
>>> t = 24 * 7 * 3 + 10
>>> ok, spike = det.score(TickBatch.of(["s", "s2"], [t * H] * 2, [130.0, 160.0])).score
>>> bool(ok < 0.99), bool(np.isnan(spike))
(True, True)
>>> float(det.score(TickBatch.of(["s"], [t * H], [160.0])).score[0]) > 0.9999
True
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import Field

from detectors.base import Detector, DetectorConfig, Scores, TickBatch
from detectors.registry import register
from detectors.robust_seasonal import t_two_sided_cdf
from monitor.durations import Duration
from monitor.zones import Zone, wall_clock_ns, zone_tag

__all__ = ["SeasonalBaseline", "SeasonalBaselineConfig"]

_NS_HOUR = 3_600 * 10**9
_NS_WEEK = 168 * _NS_HOUR
_MAD_SIGMA = 1.4826
_PRIOR = 4.0  # pseudo-observations of the series scale in a slot's scale
_SCALE_SETTLED = 24.0  # scale samples after which they are clipped against the scale
_SCALE_READY = 24  # scale samples before scoring (fewer for series with fewer slots)
_DAY_WINDOW = 4  # slots each side that compare two days around a once-seen slot
_MAGIC = b"CXSB"
_VERSION = 2
_HEADER = struct.Struct("<4sBHB")  # magic, version, slots, depth
_FLAG_COUNT = 1  # every learned value was a non-negative integer
_FLAG_UNIT = 2  # every learned value was within [0, 1]

# Gaussian small-sample constants for k = 0..16 values in a slot (simulated, 1e6 draws):
# c_k makes (c_k * 1.4826 * MAD)^2 an unbiased variance estimate; _VAR_MEDIAN[k] is the
# variance of the median of k values in units of sigma^2 (pi / 2k beyond the table).
_C_MAD = np.array([0.0, 0.0, 0.953, 1.147, 1.182, 1.05, 1.075, 1.026, 1.042, 1.018, 1.027,
                   1.013, 1.02, 1.01, 1.015, 1.009, 1.012])
_VAR_MEDIAN = np.array([0.0, 0.997, 0.499, 0.449, 0.298, 0.287, 0.214, 0.211, 0.168, 0.166,
                        0.139, 0.137, 0.118, 0.117, 0.102, 0.102, 0.09])


def _ns(value: timedelta) -> int:
    return value // timedelta(microseconds=1) * 1_000


def _small_sample(depth: int) -> tuple[np.ndarray, np.ndarray]:
    """``c_k`` and ``1 + Var(median of k)`` for k = 0..depth (table, then asymptotics)."""
    k = np.arange(depth + 1)
    c = np.ones(depth + 1)
    var = np.pi / (2.0 * np.maximum(k, 1))
    n = min(depth + 1, len(_C_MAD))
    c[:n], var[:n] = _C_MAD[:n], _VAR_MEDIAN[:n]
    return c, 1.0 + var


def _clipped_consistency(k: float) -> float:
    """Factor turning ``E[min(|r|, k sigma)]`` into ``sigma`` for Gaussian errors."""
    tail = math.erfc(k / math.sqrt(2.0))
    return 1.0 / (math.sqrt(2.0 / math.pi) * (1.0 - math.exp(-k * k / 2.0)) + k * tail)


class SeasonalBaselineConfig(DetectorConfig):
    """Settings of :class:`SeasonalBaseline`."""

    type: Literal["seasonal_baseline"] = "seasonal_baseline"
    depth: int = Field(4, ge=2, le=52, description="Values kept per time-of-week slot "
                       "(hourly data: weeks of history per slot).")
    season: Literal["week", "day"] = Field("week", description="Slot by time of week or of day.")
    timezone: Zone = Field("UTC", description="IANA time zone whose wall clock the slots "
                           "follow across summer time; a metric's timezone sets it unless "
                           "given here.")
    warmup: Duration = Field(timedelta(weeks=1), description="History before scoring.")
    min_points: int = Field(24, ge=1, description="Points learned before scoring.")
    offset_halflife: int = Field(6, ge=1, description="Points: memory of the drift offset.")
    scale_halflife: int = Field(336, ge=1, description="Points: memory of the series scale.")
    k: float = Field(3.0, ge=1.0, description="Clip (sigmas) for flagged points and drift.")
    tail_dof: int = Field(8, ge=1, le=60, description="Student-t degrees of freedom of the "
                          "tail probability (as robust_seasonal).")
    z_band: float = Field(3.0, gt=0, description="Band half-width in sigmas.")
    anomaly_learning: float = Field(0.05, ge=0, le=1, description="Drift-offset learning "
                                    "rate factor for flagged points.")
    count_noise: Literal["auto", "off"] = Field(
        "auto", description="'auto': series without volume whose values are all non-negative "
        "integers are counts (noise scales with sqrt(expected), never below Poisson).")
    volume_noise_share: float = Field(
        0.75, ge=0.0, le=1.0, description="Share of the series-scale variance (at typical "
        "volume) that shrinks as 1/volume; 0 ignores volumes.")


def _median_sorted(s: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Median of the first ``k`` (>= 1) entries along the last axis of ``s`` (sorted, NaN
    last); NaN where ``k`` is 0."""
    lo = np.take_along_axis(s, (np.maximum(k - 1, 0) // 2)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(s, (np.maximum(k, 1) // 2)[..., None], axis=-1)[..., 0]
    return np.where(k > 0, np.where(k % 2 == 1, lo, 0.5 * (lo + hi)), np.nan)


def _median_net(a: np.ndarray) -> np.ndarray:
    """Median over the (short) last axis, no NaN: an odd-even transposition network on
    whole columns, several times faster than a sort of many short rows."""
    n = a.shape[-1]
    col = list(np.moveaxis(a, -1, 0).copy())
    for r in range(n):
        for i in range(r % 2, n - 1, 2):
            col[i], col[i + 1] = np.minimum(col[i], col[i + 1]), np.maximum(col[i], col[i + 1])
    return 0.5 * (col[(n - 1) // 2] + col[n // 2])


def _nanmedian(a: np.ndarray) -> np.ndarray:
    """Median over the (short) last axis ignoring NaN, NaN where all are."""
    out = _median_net(a)
    gaps = np.isnan(a).any(axis=-1)
    if gaps.any():
        srt = np.sort(a[gaps], axis=-1)
        out[gaps] = _median_sorted(srt, np.isfinite(srt).sum(axis=-1))
    return out


@dataclass
class _Prediction:
    """What :meth:`SeasonalBaseline._predict` returns, per point of a batch."""

    slot: np.ndarray
    k: np.ndarray  # values in the slot's ring
    expected: np.ndarray
    sigma: np.ndarray
    factor: np.ndarray  # noise factor of the series scale
    nonneg: np.ndarray
    unit: np.ndarray
    raw: np.ndarray  # expected from the slot alone (differs where ``clamped``)
    sigma_raw: np.ndarray
    factor_raw: np.ndarray
    clamped: np.ndarray  # a once-seen slot pulled towards its most similar day
    margin: np.ndarray  # how far it may stand from them (NaN unless clamped)


def _day_layout(slots: int, slot_ns: int) -> tuple[int, np.ndarray]:
    """Slots per day (0 unless the slots tile two or more days of three or more slots: a
    weekly season of hourly to 8-hourly slots) and the offsets of the neighbouring slots
    that say which day is most like another."""
    day = 24 * _NS_HOUR
    per_day = day // slot_ns if day % slot_ns == 0 else 0
    if per_day < 3 or slots <= per_day or slots % per_day:
        return 0, np.zeros(0, np.int64)
    half = min(_DAY_WINDOW, (per_day - 1) // 2)
    return per_day, np.array([o for o in range(-half, half + 1) if o], np.int64)


@register("seasonal_baseline")
class SeasonalBaseline(Detector):
    """Median / MAD of the same time-of-week slot over the last few weeks (module docs)."""

    Config = SeasonalBaselineConfig

    def __init__(self, config: DetectorConfig, *, interval: timedelta) -> None:
        super().__init__(config, interval=interval)
        assert isinstance(config, SeasonalBaselineConfig)
        self.cfg = c = config
        period = _NS_WEEK if c.season == "week" else 24 * _NS_HOUR
        self._slot_ns = max(_ns(interval), _NS_HOUR)
        self.slots = max(1, period // self._slot_ns)
        self._warmup_ns = _ns(c.warmup)
        self._a_off = 1.0 - 2.0 ** (-1.0 / c.offset_halflife)
        self._a_scale = 1.0 - 2.0 ** (-1.0 / c.scale_halflife)
        self._c_k, self._inflate = _small_sample(c.depth)
        self._c_clip = _clipped_consistency(c.k)
        self._ready_ws = float(min(_SCALE_READY, self.slots))
        self._per_day, self._window = _day_layout(self.slots, self._slot_ns)
        # Per time of day: where the slots at it (``_same``, [per_day, days]) and around it
        # (``_around``, [per_day, days, window]) on every day of the season start in a ring.
        per_day, d = max(self._per_day, 1), c.depth
        same = (np.arange(0, self.slots, per_day)[None, :] + np.arange(per_day)[:, None])
        self._same = (same % self.slots) * d
        self._around = ((same[:, :, None] + self._window[None, None, :]) % self.slots) * d
        self._version = 0  # bumped by every state change; guards the cached pull
        self._cache: tuple[TickBatch, int, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._rows: dict[str, int] = {}
        self._free: list[int] = []
        self._cap = 0
        self._alloc(16)

    # -- storage ----------------------------------------------------------------------------

    _FIELDS = ("ring", "cnt", "off", "s", "ws", "vref", "n", "t0", "flags")

    def _alloc(self, cap: int) -> None:
        d, S = self.cfg.depth, self.slots
        new = {
            "ring": np.full((cap, S, d), np.nan, np.float32),
            "cnt": np.zeros((cap, S), np.uint16),  # values ever written to the slot
            "off": np.zeros(cap, np.float32),
            "s": np.zeros(cap, np.float32),  # series scale, in units of the noise factor
            "ws": np.zeros(cap, np.float32),  # scale samples so far
            "vref": np.zeros(cap, np.float32),  # typical volume (rates, means) or level (counts)
            "n": np.zeros(cap, np.uint32),
            "t0": np.zeros(cap, np.int64),
            "flags": np.zeros(cap, np.uint8),
        }
        for name, arr in new.items():
            if self._cap:
                arr[: self._cap] = getattr(self, "_" + name)
            setattr(self, "_" + name, arr)
        self._free.extend(range(cap - 1, self._cap - 1, -1))
        self._cap = cap

    def _clear(self, rows: np.ndarray) -> None:
        self._version += 1
        self._ring[rows] = np.nan
        for name in self._FIELDS[1:]:
            getattr(self, "_" + name)[rows] = 0

    def _create(self, keys: Sequence[str]) -> None:
        need = len(keys) - len(self._free)
        if need > 0:
            self._alloc(max(self._cap * 2, self._cap + need))
        for key in keys:
            self._rows[key] = self._free.pop()

    def _lookup(self, series: np.ndarray) -> np.ndarray:
        get = self._rows.get
        return np.fromiter((get(k, -1) for k in series.tolist()), np.int64, len(series))

    # -- model ------------------------------------------------------------------------------

    def _band(self, rows: np.ndarray, k: np.ndarray, med: np.ndarray, mad: np.ndarray,
              vol: np.ndarray) -> tuple[np.ndarray, ...]:
        """Expected value, sigma, noise factor and domain flags for a slot median ``med``."""
        c = self.cfg
        flags = self._flags[rows]
        vol_ok = np.isfinite(vol) & (vol > 0)
        is_count = ~vol_ok & ((flags & _FLAG_COUNT) != 0) & (c.count_noise == "auto")
        nonneg = (flags & (_FLAG_COUNT | _FLAG_UNIT)) != 0
        unit = vol_ok & ((flags & _FLAG_UNIT) != 0)
        raw = med + self._off[rows]
        expected = np.where(nonneg, np.maximum(raw, 0.0), raw)
        expected = np.where(unit, np.minimum(expected, 1.0), expected)
        expected = np.where(k > 0, expected, np.nan)
        # Noise factor of the series scale: volume (rates, means) or level (counts).
        vref = self._vref[rows].astype(np.float64)
        ratio = np.where(vol_ok, vref / vol,
                         np.where(is_count, np.maximum(expected, 1.0) / vref, 1.0))
        ratio = np.where(np.isfinite(ratio) & (vref > 0), np.clip(ratio, 1e-6, 1e6), 1.0)
        share = c.volume_noise_share
        factor = np.sqrt((1.0 - share) + share * ratio)
        s = self._s[rows].astype(np.float64) * factor
        dof = np.maximum(k - 1, 0)
        slot_sd = self._c_k[k] * _MAD_SIGMA * mad
        sig2 = (dof * slot_sd * slot_sd + _PRIOR * s * s) / (dof + _PRIOR)
        sigma = np.sqrt(sig2 * self._inflate[k])
        # Floors: Poisson for counts, binomial for rates in [0, 1] with a volume, numerical.
        sigma = np.where(is_count, np.maximum(sigma, np.sqrt(np.maximum(expected, 1.0))), sigma)
        vol1 = np.maximum(np.where(vol_ok, vol, 1.0), 1.0)
        p = np.clip(expected, 1.0 / (vol1 + 1.0), vol1 / (vol1 + 1.0))
        sigma = np.where(unit, np.maximum(sigma, np.sqrt(p * (1.0 - p) / vol1)), sigma)
        sigma = np.maximum(sigma, 1e-9 * np.abs(expected) + 1e-12)
        return expected, sigma, factor, nonneg, unit

    def _reference(self, rows: np.ndarray, slot: np.ndarray, med: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """For once-seen slots: the median of the same time on the day that is most like the
        slot's own day around that time (median distance over the neighbouring slots, so a
        few hours of incident do not count; NaN where the slot's own value is the more
        ordinary of the two), and the noise of a day-to-day difference."""
        per_day, depth = self._per_day, self.cfg.depth
        own, pos = slot // per_day, slot % per_day
        b = np.arange(len(rows))
        flat = self._ring.reshape(-1)
        base = (rows * (self.slots * depth))[:, None]
        # The first kept value of each slot around this time on every day (a once-seen
        # slot's only one): [B, days, window]; NaN for a slot never seen.
        near = flat.take(base[:, :, None] + self._around[pos])
        diff = np.abs(near - near[b, own][:, None, :])
        dist = _median_net(np.where(np.isnan(diff), np.inf, diff))  # a gap: far
        sib = base + self._same[pos]
        dist = np.where(np.isnan(flat.take(sib)), np.inf, dist)
        dist[b, own] = np.inf
        best = np.argmin(dist, axis=1)
        # The most similar day's median at this time of day.
        ring = np.sort(self._ring.reshape(-1, depth)[sib[b, best] // depth], axis=1)
        k = np.minimum(self._cnt.reshape(-1)[sib[b, best] // depth], depth).astype(np.int64)
        ref = np.where(np.isfinite(dist[b, best]), _median_sorted(ring.astype(np.float64), k),
                       np.nan)
        # Which of the two is out of line with its own day around it: the slot's value
        # is pulled only if it stands out more than the reference does.
        level = _nanmedian(np.stack([near[b, own], near[b, best]], axis=1)).astype(np.float64)
        odd = np.abs(med - level[:, 0]) > np.abs(ref - level[:, 1])
        # Noise of a day-to-day difference: the median distance over the other days (the
        # nearest one's is biased low), for when the series scale is not known yet.
        spread = _MAD_SIGMA * _median_net(dist).astype(np.float64)  # own day: +inf
        return np.where(odd, ref, np.nan), spread

    def _predict(self, rows: np.ndarray, ts: np.ndarray, vol: np.ndarray,
                 batch: TickBatch | None = None, at: np.ndarray | None = None
                 ) -> _Prediction:
        """Slot, values in it, expected value, sigma, noise factor and the domain flags; a
        slot that holds a single value is used only within ``k`` sigma of its most similar day.
        ``batch`` and ``at`` (positions in it) let learn reuse what score computed."""
        c = self.cfg
        slot = (wall_clock_ns(ts, c.timezone) // self._slot_ns) % self.slots
        ring = self._ring[rows, slot].astype(np.float64)  # [B, depth]
        k = np.minimum(self._cnt[rows, slot], c.depth).astype(np.int64)
        srt = np.sort(ring, axis=1)
        med = _median_sorted(srt, k)
        mad = _median_sorted(np.sort(np.abs(ring - med[:, None]), axis=1), k)
        band = self._band(rows, k, med, mad, vol)
        pred = _Prediction(slot, k, *band, raw=band[0], sigma_raw=band[1],
                           factor_raw=band[2], clamped=np.zeros(len(rows), dtype=bool),
                           margin=np.full(len(rows), np.nan))
        once = np.flatnonzero(k == 1)
        if len(once) and self._per_day:
            # One visit is one draw, and it may be an incident in the history: it is used
            # only within k sigma of the same time on the most similar other day.
            ref, margin = self._cached_pull(rows[once], slot[once], med[once],
                                            band[1][once], vol[once], batch,
                                            None if at is None else at[once])
            m1 = med[once]
            ok = np.isfinite(ref) & np.isfinite(margin)
            used = np.where(ok, np.clip(m1, ref - margin, ref + margin), m1)
            moved = np.flatnonzero(used != m1)
            if len(moved):
                j = once[moved]
                e, sg, f, _, _ = self._band(rows[j], k[j], used[moved], mad[j], vol[j])
                pred.expected = pred.expected.copy()
                pred.sigma = pred.sigma.copy()
                pred.factor = pred.factor.copy()
                pred.expected[j], pred.sigma[j], pred.factor[j] = e, sg, f
                pred.clamped[j] = True
                pred.margin[j] = margin[moved]
        return pred

    def _pull(self, rows: np.ndarray, slot: np.ndarray, med: np.ndarray, sigma: np.ndarray,
              vol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For once-seen slots (median ``med``, sigma ``sigma``): the reference and how far
        from it the slot's value may stand (NaN: the value stands as it is)."""
        c = self.cfg
        ref, margin = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
        # Once the series scale is known, a slot within k sigma (its own) of every other
        # day's value at this time is left as it is: most are, and they cost nothing more.
        trusted = self._ws[rows] >= self._ready_ws
        same = self._ring.reshape(-1).take((rows * (self.slots * c.depth))[:, None]
                                           + self._same[slot % self._per_day])
        gap = np.abs(same - med[:, None])
        far = np.where(np.isnan(gap), 0.0, gap).max(axis=1) > c.k * sigma
        todo = np.flatnonzero(~trusted | far)
        if len(todo) == 0:
            return ref, margin
        r = rows[todo]
        ref[todo], spread = self._reference(r, slot[todo], med[todo])
        one = np.ones(len(todo), np.int64)
        sig_ref = self._band(r, one, np.where(np.isfinite(ref[todo]), ref[todo], med[todo]),
                             np.zeros(len(todo)), vol[todo])[1]
        margin[todo] = c.k * np.where(trusted[todo], sig_ref, spread)
        return ref, margin

    def _cached_pull(self, rows: np.ndarray, slot: np.ndarray, med: np.ndarray,
                     sigma: np.ndarray, vol: np.ndarray, batch: TickBatch | None,
                     at: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_pull`, computed once per batch for score and learn (``at``: positions in
        ``batch``)."""
        if batch is None or at is None:
            return self._pull(rows, slot, med, sigma, vol)
        cached = self._cache
        if cached is None or cached[0] is not batch or cached[1] != self._version:
            nan = np.full(len(batch), np.nan)
            cached = self._cache = (batch, self._version, nan, nan.copy(),
                                    np.zeros(len(batch), dtype=bool))
        _, _, ref, margin, done = cached
        todo = np.flatnonzero(~done[at])
        if len(todo):
            ref[at[todo]], margin[at[todo]] = self._pull(rows[todo], slot[todo], med[todo],
                                                         sigma[todo], vol[todo])
            done[at[todo]] = True
        return ref[at], margin[at]

    @property
    def warmup_period(self) -> timedelta:
        """How long a new series learns before it is scored: ``warmup``, but never less than
        one season, since a point is scored only once its slot holds a value (with
        ``warmup: 1d`` and ``season: week`` nothing scored for a week while ``cxmon score``,
        ``validate`` and ``backtest`` said it needed 1d)."""
        season_ns = self.slots * self._slot_ns
        return timedelta(microseconds=max(self._warmup_ns, season_ns) // 1000)

    def score(self, batch: TickBatch) -> Scores:
        out = Scores.empty(len(batch))
        rows = self._lookup(batch.series)
        sel = np.flatnonzero(rows >= 0)
        if len(sel) == 0:
            return out
        r, ts, y = rows[sel], batch.timestamps[sel], batch.values[sel]
        with np.errstate(all="ignore"):
            pr = self._predict(r, ts, batch.volumes[sel], batch, sel)
            k, expected, sigma, nonneg, unit = pr.k, pr.expected, pr.sigma, pr.nonneg, pr.unit
            z = (y - expected) / sigma
            score = t_two_sided_cdf(z, self.cfg.tail_dof)
        ready = ((self._n[r] >= self.cfg.min_points) & (ts - self._t0[r] >= self._warmup_ns)
                 & (k > 0) & (self._ws[r] >= self._ready_ws) & np.isfinite(y))
        half = self.cfg.z_band * sigma
        out.expected[sel] = expected
        out.lower[sel] = np.where(nonneg, np.maximum(expected - half, 0.0), expected - half)
        out.upper[sel] = np.where(unit, np.minimum(expected + half, 1.0), expected + half)
        out.score[sel] = np.where(ready, score, np.nan)
        return out

    def learn(self, batch: TickBatch, anomalous: np.ndarray) -> None:
        flags = np.asarray(anomalous, dtype=bool)
        if flags.shape != (len(batch),):
            raise ValueError(f"anomalous has shape {flags.shape}, expected ({len(batch)},)")
        fin = np.flatnonzero(np.isfinite(batch.values))
        if len(fin) == 0:
            return
        keys = batch.series[fin]
        if len(set(keys.tolist())) < len(keys):  # a series twice: learn in time order
            order = fin[np.argsort(batch.timestamps[fin], kind="stable")]
            seen: set[str] = set()
            first = [i for i in order if not (str(batch.series[i]) in seen
                                              or seen.add(str(batch.series[i])))]
            rest = np.setdiff1d(order, first)
            self.learn(batch.take(np.array(first)), flags[first])
            self.learn(batch.take(rest), flags[rest])
            return
        rows = self._lookup(keys)
        if (rows < 0).any():
            self._create(list(dict.fromkeys(keys[rows < 0].tolist())))
            rows = self._lookup(keys)
        ts, y, fl, vol = (batch.timestamps[fin], batch.values[fin], flags[fin],
                          batch.volumes[fin])
        c = self.cfg
        new = self._n[rows] == 0
        # Domain flags: a series is a count / a unit-interval rate while every value is one.
        kind = (np.where((y >= 0) & (y == np.floor(y)), _FLAG_COUNT, 0)
                | np.where((y >= 0) & (y <= 1), _FLAG_UNIT, 0)).astype(np.uint8)
        self._flags[rows] = np.where(new, kind, self._flags[rows] & kind)
        with np.errstate(all="ignore"):
            pr = self._predict(rows, ts, vol, batch, fin)
            slot, k = pr.slot, pr.k
            # A once-seen slot pulled towards its reference: the point learns against the
            # side it agrees with. If it disowns the slot's value (an incident in the
            # history), it replaces that value and teaches neither offset nor scale; if it
            # agrees (a weekly pattern of its own), the slot's value stands.
            isolated = (pr.clamped & (np.abs(y - pr.expected) < np.abs(y - pr.raw))
                        & (np.abs(y - pr.raw) > pr.margin))
            own = pr.clamped & ~isolated
            expected = np.where(own, pr.raw, pr.expected)
            sigma = np.where(own, pr.sigma_raw, pr.sigma)
            factor = np.where(own, pr.factor_raw, pr.factor)
            known = k > 0
            err = np.where(known, y - expected, 0.0)
            ws_old = self._ws[rows].astype(np.float64)
            trusted = known & (ws_old >= self._ready_ws)
            clip = np.where(trusted, c.k * sigma, np.inf)
            err_c = np.clip(err, -clip, clip)
            # Flagged points, and any point while the slot holds a single value (a median of
            # two is their mean, so one unflagged spike in history would become the slot's
            # baseline), enter the ring clipped to expected +- k sigma.
            winsorize = known & (fl | (k < 2))
            stored = np.where(winsorize, expected + err_c, y)
            # Drift offset from the clipped residual (flagged points move it slowly).
            learn = np.where(known & ~isolated, np.where(fl, c.anomaly_learning, 1.0), 0.0)
            off = self._off[rows] + learn * self._a_off * err_c
            # Series scale, in units of the noise factor and of the median's uncertainty:
            # a plain running mean of |residual| first, Huber-clipped once it has settled.
            e_n = err / (factor * np.sqrt(self._inflate[k]))
            s_old = self._s[rows].astype(np.float64)
            settled = ws_old >= _SCALE_SETTLED
            lim = c.k * s_old
            sample = np.where(settled, self._c_clip * np.minimum(np.abs(e_n), lim),
                              math.sqrt(math.pi / 2.0) * np.abs(e_n))
            w = np.where(known & ~fl & ~isolated & np.isfinite(sample), 1.0, 0.0)
            ws = ws_old + w
            rate = np.where(w > 0, np.maximum(self._a_scale, w / np.maximum(ws, 1.0)), 0.0)
            s = s_old + rate * (np.where(w > 0, sample, 0.0) - s_old)
            # Typical volume (rates, means) or level (counts) behind the series scale.
            level = np.where(np.isfinite(vol) & (vol > 0), vol, np.maximum(y, 1.0))
            vref = self._vref[rows].astype(np.float64)
            n_old = self._n[rows].astype(np.float64)
            a_v = np.maximum(self._a_scale, 1.0 / (n_old + 1.0))
            vref = np.where(new, level, vref + a_v * (level - vref))
        cnt = self._cnt[rows, slot].astype(np.int64)
        pos = np.where(isolated, 0, cnt % c.depth)  # isolated: cnt == 1, overwrite it
        self._ring[rows, slot, pos] = stored - np.where(known, self._off[rows], 0.0)
        self._cnt[rows, slot] = np.where(isolated, cnt, np.minimum(cnt + 1, 60000))
        self._off[rows] = off
        self._s[rows] = s
        self._ws[rows] = np.minimum(ws, 1e9)
        self._vref[rows] = vref
        self._t0[rows] = np.where(new, ts, self._t0[rows])
        self._n[rows] = self._n[rows] + 1
        self._version += 1

    # -- checkpoints ------------------------------------------------------------------------

    def _header(self) -> bytes:
        """The record's header; on a clock other than UTC one more byte names the zone (a
        ring learned in other slots is not reused; UTC headers are those of before)."""
        head = _HEADER.pack(_MAGIC, _VERSION, self.slots, self.cfg.depth)
        zone = self.cfg.timezone
        return head if zone == "UTC" else head + bytes([zone_tag(zone)])

    def _record_size(self) -> int:
        return sum(getattr(self, "_" + f)[0].nbytes for f in self._FIELDS)

    def get_state(self, series: Sequence[str] | None = None) -> dict[str, bytes]:
        """Per series: a short header and the packed ring, counts and scalars (float32;
        about ``slots * (4 * depth + 2)`` bytes: 3.0 KB for hourly data, depth 4)."""
        keys = list(self._rows) if series is None else [k for k in series if k in self._rows]
        if not keys:
            return {}
        rows = np.array([self._rows[k] for k in keys], np.int64)
        parts = [getattr(self, "_" + f)[rows].reshape(len(rows), -1).view(np.uint8)
                 for f in self._FIELDS]
        packed = np.concatenate(parts, axis=1)
        head = self._header()
        return {k: head + packed[i].tobytes() for i, k in enumerate(keys)}

    def set_state(self, states: Mapping[str, bytes]) -> None:
        if not states:
            return
        head, size = self._header(), self._record_size()
        for key, blob in states.items():
            if bytes(blob[: len(head)]) != head or len(blob) != len(head) + size:
                raise ValueError(f"state of {key!r} is not a seasonal_baseline v{_VERSION} "
                                 f"record for {self.slots} slots x depth {self.cfg.depth} "
                                 f"in {self.cfg.timezone}")
        keys = list(states)
        missing = [k for k in keys if k not in self._rows]
        if missing:
            self._create(missing)
        rows = np.array([self._rows[k] for k in keys], np.int64)
        self._version += 1
        raw = np.frombuffer(b"".join(bytes(states[k][len(head):]) for k in keys), np.uint8)
        raw = raw.reshape(len(keys), size)
        at = 0
        for f in self._FIELDS:
            arr = getattr(self, "_" + f)
            width = arr[0].nbytes
            chunk = raw[:, at:at + width].copy().view(arr.dtype)
            arr[rows] = chunk.reshape((len(keys), *arr.shape[1:]))
            at += width

    def forget(self, series: Sequence[str]) -> None:
        rows = [self._rows.pop(k) for k in series if k in self._rows]
        if rows:
            self._clear(np.array(rows, np.int64))
            self._free.extend(rows)
