"""``robust_seasonal``: the default detector, a vectorized robust z-score against a
time-of-week baseline.

Why this model: CX KPIs (drop-off rates, contact volumes, CSAT) are dominated by a weekly
rhythm (time of day x weekday/weekend), drift, sometimes shift for good, and are noisier when
fewer customers stand behind a number. A robust Holt-Winters-style smoother captures that in
about 1.4 KB per series, updates in O(1) per point and vectorizes across tens of thousands of
series, so it can score every series on every tick; heavier seasonal models run beside it.

Model, per series (every step vectorized over the series of a tick)::

    expected = baseline + offset
    baseline = L + D[time of day] + w * W[time of week]
    sigma    = robust scale of the time-of-day slot x noise factor (volume / Poisson)
    z        = (value - expected) / sigma
    score    = P(|T| < |z|),  T ~ Student-t(tail_dof)   (= 1 - two-sided tail probability)
               and, for a count below expected, at least 1 - 2 P(X <= value) with X negative
               binomial (mean expected, sd sigma): a channel gone silent is rare at once

* The **baseline** is slow. ``D`` is a time-of-day profile learned across *all* days (kept
  centred, so ``L`` carries the mean) and ``W`` the weekly correction on top of it (weekday
  vs weekend); both are running means at first and exponentially weighted later
  (``baseline_halflife``, ``seasonal_halflife``), so one day gives a usable daily shape.
  ``L``, the deseasonalized level, keeps the first value through the first day while ``D``
  learns that day exactly, then takes over the profile's mean and moves with
  ``baseline_halflife``, only as far as the weekly slot has been seen: a first weekend is
  the weekly layer's to learn, not a drop of the level. Each layer learns its own target
  (``D`` what ``L`` and the trusted part of ``W`` leave, ``W`` what ``L + D`` leave) rather
  than sharing one error, so the layers do not compete for it.
* Until a weekly slot has been seen, ``W`` is 0 and the detector falls back to the
  time-of-day profile; afterwards the correction is used with weight
  ``w = max(0, 1 - weekly_shrink / t^2)``, where ``t`` is the correction over its standard
  error (positive-part James-Stein shrinkage): a weekend that differs is trusted after one
  week, a weekday that differs only by noise is not. The detector is useful after a week.
  A slot seen only once is used only within ``k`` sigma of its neighbouring slots' range,
  and its second visit replaces it if that visit agrees with the neighbours: a one-off spike
  in the history is not learned as a weekly pattern (a real one-hour weekly pattern is
  learned one week later). A slot's first visit is learned without the Huber clip, as in
  warm-up, also when it comes after warm-up (a Sunday whose first one was a skipped holiday).
* The **offset** is fast (``level_halflife``): it follows drift and slow trends on top of the
  baseline, from the full prediction error. Keeping it apart from ``L`` means the
  seasonal layers always learn against a level that a weekend or an incident did not drag.
  It learns in proportion to how often the seasonal slot has been seen, since an error in a
  slot never seen before is the season's to explain, not drift.
* **Noise** is the exponentially weighted mean absolute prediction error (MAD-like, scaled
  to a Gaussian sigma) per time-of-day slot, pooled with a per-series scale while a slot has
  few observations. Rates and means carry a ``volume`` (denominator / count): noise is
  scaled by ``sqrt(typical volume / volume)``, since a rate from 10 sessions is noisier than
  from 10,000 (only ``volume_noise_share`` of the variance is assumed to shrink with volume:
  real KPIs also move for reasons that do not average out). Series of non-negative integers
  without a volume are counts: noise scales with ``sqrt(expected)`` and is never below
  Poisson noise. Rates in [0, 1] are never assumed less noisy than binomial noise.
* **Learning is robust**: errors are Huber-clipped at ``k`` sigma, so an outlier moves the
  baseline and the scale by a bounded step, and points the post-rules flagged as anomalous
  learn at ``anomaly_learning`` times the usual rates, so an incident does not become the
  new normal. A *persistent* one-sided deviation is a level shift rather than an incident:
  an exponentially weighted mean of the clipped z (half-life ``shift_confirm``) detects it,
  and when it reaches ``k`` the baseline level jumps to the new regime, flagged or not. A
  shift of 2k sigma or more is accepted after one ``shift_confirm``, one of ``d`` sigma
  (k < d < 2k) after ``shift_confirm * log2(d / (d - k))``; smaller shifts are learned
  through the normal, clipped updates. A count shifts in proportion (its daily rhythm with
  it), anything else by a constant. An accepted shift is remembered for ``shift_memory``:
  a point closer to the level before it is scored against that level, so the end of a
  two-day outage is a recovery, not a shift the other way (until the detector has moved
  back, which ends the memory).

Why Student-t for the tail probability: the scale is an exponentially weighted estimate from
an effective sample of a few dozen points, and seasonal residuals are heavier-tailed than
Gaussian. The predictive distribution of a new point given a scale estimated from ``n``
points is Student-t, so ``tail_dof`` of about 8 is principled and conservative: p = 1e-4
(the post-rules' default, severity 25) needs a robust z of about 7 rather than the Gaussian
3.9, which keeps false alarms on real, imperfectly modelled data rare, while a clear spike
(z of 15 or more) still gets p < 1e-6. For integer degrees of freedom the CDF has a closed
form, so no SciPy is needed.

Time slots come from the int64 ns timestamps (UTC) read on the wall clock of ``timezone``
(default UTC; :func:`monitor.zones.wall_clock_ns`) and the metric interval: the slot size is
``max(interval, 1h)``, so hourly and 5-minute data get 168 weekly and 24 daily slots and
daily data gets 7 weekly slots. Rates are given as half-lives and converted per point, so a
config behaves the same on 5-minute and hourly data.

Example: a flat series with noise, then an outlier.

>>> from datetime import timedelta
>>> import numpy as np
>>> det = RobustSeasonal(RobustSeasonalConfig(season="none"), interval=timedelta(hours=1))
>>> rng = np.random.default_rng(0)
>>> hour = 3_600 * 10**9
>>> for t in range(48):
...     batch = TickBatch.of(["csat"], [t * hour], [4.2 + rng.normal(0.0, 0.05)])
...     det.learn(batch, np.zeros(1, dtype=bool))
>>> normal = det.score(TickBatch.of(["csat"], [48 * hour], [4.2]))
>>> outlier = det.score(TickBatch.of(["csat"], [48 * hour], [3.1]))
>>> bool(normal.score[0] < 0.99), bool(outlier.score[0] > 0.9999)
(True, True)
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from detectors.base import Detector, DetectorConfig, Scores, TickBatch
from detectors.count_tail import count_drop_score
from detectors.registry import register
from monitor.durations import Duration, positive_duration
from monitor.zones import Zone, wall_clock_ns, zone_tag

__all__ = ["RobustSeasonal", "RobustSeasonalConfig", "t_two_sided_cdf"]

_NS_HOUR = 3_600 * 10**9
_NS_DAY = 24 * _NS_HOUR
_NS_WEEK = 7 * _NS_DAY
_SQRT_HALF_PI = math.sqrt(math.pi / 2.0)  # Gaussian sigma / mean absolute deviation
_SCALE_PRIOR = 4.0  # pseudo-observations of the series scale in a time-of-day slot's scale
_SCALE_SETTLED = 24.0  # sample weight after which scale samples are Huber-clipped
_UNSEEN_WEEK_WEIGHT = 0.25  # weight of a scale sample from a weekly slot seen the first time
_SHIFT_SIZE_RATE = 1.0 / 3.0  # EW rate of the error whose value is the size of a shift
_COUNT_MAX = float(np.iinfo(np.uint16).max)
_EVIDENCE_CLIP = 6.0  # one extreme point adds at most this much z to the sustained test
_EVIDENCE_MIN_Z = 2.0  # the sustained test speaks only for a point at least this unusual

_FLAG_COUNT = 1  # every learned value was a non-negative integer
_FLAG_UNIT = 2  # every learned value was within [0, 1]
_MIN_RATIO = 0.02  # a shift in proportion scales the profile by at least this (at most 1/it)

_MAGIC = b"CXRS"
_VERSION = 4  # v4 adds ``ez2`` (the slow sustained test); v3 records load with it at 0
_HEADER = struct.Struct("<4sBBBB")  # magic, version, day slots, week slots - 1, zone tag


def _ns(value: timedelta) -> int:
    return value // timedelta(microseconds=1) * 1_000


class RobustSeasonalConfig(DetectorConfig):
    """Settings of :class:`RobustSeasonal`; the defaults suit hourly and 5-minute CX KPIs.

    Durations are written like the rest of the config (``12h``, ``1d``, ``3w``) and turned
    into per-point rates with the metric's interval.
    """

    type: Literal["robust_seasonal"] = "robust_seasonal"
    season: Literal["week", "day", "none"] = Field(
        "week", description="Seasonal baseline: time of week (with a time-of-day fallback), "
        "time of day only, or none (level + noise)."
    )
    timezone: Zone = Field(
        "UTC", description="IANA time zone whose wall clock the time-of-day and time-of-week "
        "slots follow (Europe/Berlin: a 9:00 peak stays in the 9:00 slot across summer "
        "time); a metric's timezone sets it unless given here."
    )
    warmup: Duration | None = Field(
        None, description="History needed before scoring (scores are NaN until then); "
        "default one season: 1w for week, 1d for day, nothing for none."
    )
    min_points: int = Field(
        24, ge=2, le=1_000_000, description="Learned points also needed before scoring."
    )
    level_halflife: Duration = Field(
        timedelta(hours=12), description="How fast the offset follows drift and trends."
    )
    baseline_halflife: Duration = Field(
        timedelta(weeks=1), description="Memory of the baseline level and daily profile."
    )
    seasonal_halflife: Duration = Field(
        timedelta(weeks=3), description="Memory of the weekly (time-of-week) correction."
    )
    scale_halflife: Duration = Field(
        timedelta(weeks=1), description="Memory of the noise scale."
    )
    weekly_shrink: float = Field(
        1.0, ge=0.0, le=100.0, description="How clearly a weekly slot must stand out of its "
        "noise before it overrides the time-of-day profile: weight max(0, 1 - weekly_shrink "
        "/ t^2), t = correction / standard error (0 = use every slot once seen)."
    )
    k: float = Field(
        3.0, ge=1.0, le=10.0, description="Huber clip in sigmas: the most one point can move "
        "the baseline or the scale; also the shift-detection threshold."
    )
    anomaly_learning: float = Field(
        0.05, gt=0.0, le=1.0, description="Learning-rate factor for points flagged anomalous "
        "(small, but not zero, so the detector still adapts)."
    )
    shift_confirm: Duration = Field(
        timedelta(days=1), description="How long a large one-sided deviation (2k sigma or "
        "more) must persist before it is accepted as the new level."
    )
    z_band: float = Field(
        3.0, gt=0.0, le=50.0, description="Half-width of the lower/upper band in sigmas."
    )
    tail_dof: int = Field(
        8, ge=1, le=60, description="Degrees of freedom of the Student-t that turns a robust "
        "z into a tail probability (smaller = heavier tails = fewer alerts)."
    )
    count_noise: Literal["auto", "poisson", "off"] = Field(
        "auto", description="'auto': series without volume whose values are all non-negative "
        "integers are counts (noise ~ sqrt(expected), at least Poisson); 'poisson': every "
        "series without volume scales so; 'off': none."
    )
    volume_noise_share: float = Field(
        0.75, ge=0.0, le=1.0, description="Share of the noise variance (at typical volume) "
        "that shrinks as 1/volume; 0 ignores volumes."
    )
    min_scale: float = Field(
        0.0, ge=0.0, description="Floor of sigma in the KPI's units (0 = none)."
    )
    shift_memory: Duration = Field(
        timedelta(days=7), description="How long after an accepted level shift a return "
        "to the level before it is scored against that level (a recovery, not a new shift); "
        "0 disables."
    )
    evidence_rate: float = Field(
        0.3, ge=0.0, lt=1.0, description="EWMA weight of the newest point in the sustained-"
        "deviation test (0 disables it): several moderately unusual points in a row, all on "
        "one side, are as rare as one extreme point and score so."
    )
    slow_evidence_rate: float = Field(
        0.1, ge=0.0, lt=1.0, description="The same test over a longer run (0 disables it): "
        "a conversion that drops from 25% to 2% on 37 sessions a bucket is only 3 sigma out "
        "each time, yet two dozen such buckets in a row are far rarer than any one point."
    )

    @field_validator(
        "level_halflife", "baseline_halflife", "seasonal_halflife", "scale_halflife",
        "shift_confirm",
    )
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        return positive_duration(value)

    @field_validator("warmup", "shift_memory")
    @classmethod
    def _non_negative(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(0):
            raise ValueError("must not be negative")
        return value


def t_two_sided_cdf(z: np.ndarray, dof: int) -> np.ndarray:
    """``P(|T| < |z|)`` for Student-t with integer ``dof``: the score of a robust z.

    Closed form (Abramowitz & Stegun 26.7.3-4): a short sum in ``cos^2`` of
    ``atan(|z| / sqrt(dof))``, vectorized, exact and without SciPy. It returns ``1 - p``
    directly: 0 at z = 0, 1 at ``|z| = inf``, NaN only for NaN.

    >>> t_two_sided_cdf(np.array([0.0, 2.2281389]), 10).round(6).tolist()
    [0.0, 0.95]
    >>> float(t_two_sided_cdf(np.array([np.inf]), 3)[0])
    1.0
    """
    t = np.abs(np.asarray(z, dtype=np.float64))
    nu = float(dof)
    with np.errstate(divide="ignore", invalid="ignore"):
        sin = 1.0 / np.sqrt(1.0 + nu / (t * t))  # sin(theta): 0 at t = 0, 1 at t = inf
    cos2 = nu / (nu + t * t)
    term = np.ones_like(t)
    acc = np.ones_like(t)
    if dof % 2 == 0:
        for j in range(1, dof // 2):
            term = term * cos2 * ((2 * j - 1) / (2 * j))
            acc += term
        out = sin * acc
    else:
        for j in range(1, (dof - 1) // 2):
            term = term * cos2 * ((2 * j) / (2 * j + 1))
            acc += term
        tail = sin * np.sqrt(cos2) * acc if dof > 1 else 0.0
        out = (2.0 / math.pi) * (np.arctan2(t, math.sqrt(nu)) + tail)
    return np.clip(out, 0.0, 1.0)


def _clipped_mad_consistency(k: float) -> float:
    """Factor turning ``E[min(|r|, k sigma)]`` into ``sigma`` for Gaussian errors, so the
    clipped mean absolute error estimates the same sigma as an unclipped one."""
    tail = math.erfc(k / math.sqrt(2.0))  # P(|X| > k)
    mean_clipped = math.sqrt(2.0 / math.pi) * (1.0 - math.exp(-k * k / 2.0)) + k * tail
    return 1.0 / mean_clipped


def _evidence_step(state: np.ndarray, z: np.ndarray, lam: float) -> np.ndarray:
    """One step of a sustained-deviation EWMA (weight ``lam``) on ``z`` clipped at
    ``_EVIDENCE_CLIP`` (a NaN z adds 0), from the stored ``state``.

    >>> _evidence_step(np.array([1.0, 0.0]), np.array([10.0, np.nan]), 0.5).tolist()
    [3.5, 0.0]
    """
    zc = np.clip(np.where(np.isfinite(z), z, 0.0), -_EVIDENCE_CLIP, _EVIDENCE_CLIP)
    return (1.0 - lam) * state.astype(np.float64) + lam * zc


def _rate(period: timedelta, halflife: timedelta) -> float:
    """Exponential-smoothing rate per step of length ``period`` for a given half-life."""
    return float(1.0 - 2.0 ** (-(period / halflife)))


@dataclass(slots=True)
class _Pred:
    """What the state predicts for the series of one batch that have state.

    Cached between :meth:`RobustSeasonal.score` and :meth:`RobustSeasonal.learn` of the same
    batch (while the state is unchanged), so a tick computes it once.
    """

    all_rows: np.ndarray  # state row of every position of the batch, -1 = unknown series
    sel: np.ndarray  # positions in the batch of series that have state
    rows: np.ndarray  # their state rows
    id_d: np.ndarray  # flat index into the time-of-day arrays
    id_w: np.ndarray  # flat index into the time-of-week arrays
    y: np.ndarray
    flags: np.ndarray
    vol_ok: np.ndarray  # a usable volume was given (rate / mean)
    is_count: np.ndarray
    weekly: np.ndarray  # w W, the weekly correction as used
    baseline: np.ndarray  # L + D + w W, the slow part of the prediction
    raw: np.ndarray  # baseline + offset, not clipped to the series' domain
    expected: np.ndarray  # raw clipped to the series' domain (>= 0, <= 1 for rates)
    factor: np.ndarray  # noise factor from volume / Poisson
    sigma_n: np.ndarray  # scale in normalized units
    sigma: np.ndarray  # scale in the KPI's units, with floors
    ready: np.ndarray  # past warm-up
    back: np.ndarray  # the point fits the level before a recent shift better (a recovery)
    before: np.ndarray  # expected at that earlier level (= expected without a recent shift)
    sigma_before: np.ndarray  # its scale
    week_used: np.ndarray  # W as used (a once-seen slot's clamped to its neighbours)
    isolated: np.ndarray  # once-seen slot that its neighbours and this point both disown

    def take(self, index: np.ndarray) -> _Pred:
        """The prediction for a subset (``index`` into ``sel``)."""
        parts = {f: getattr(self, f)[index] for f in self.__slots__ if f != "all_rows"}
        return _Pred(all_rows=self.all_rows, **parts)


@register("robust_seasonal")
class RobustSeasonal(Detector):
    """Robust z-score against a time-of-week baseline plus a drift offset (module docs)."""

    Config = RobustSeasonalConfig

    _t0: np.ndarray
    _n: np.ndarray
    _L: np.ndarray
    _O: np.ndarray
    _sig: np.ndarray
    _mz: np.ndarray
    _mr: np.ndarray
    _ez: np.ndarray
    _ez2: np.ndarray
    _jump: np.ndarray
    _log_ratio: np.ndarray
    _t_jump: np.ndarray
    _sD: np.ndarray
    _ns: np.ndarray
    _flags: np.ndarray
    _D: np.ndarray
    _Sd: np.ndarray
    _wS: np.ndarray
    _Vd: np.ndarray
    _nD: np.ndarray
    _W: np.ndarray
    _nW: np.ndarray

    def __init__(self, config: DetectorConfig, *, interval: timedelta) -> None:
        if not isinstance(config, RobustSeasonalConfig):
            raise TypeError(f"expected RobustSeasonalConfig, got {type(config).__name__}")
        if interval <= timedelta(0):
            raise ValueError(f"interval must be positive, got {interval}")
        super().__init__(config, interval=interval)
        self.cfg: RobustSeasonalConfig = config
        c = config
        slot_ns = max(_ns(interval), _NS_HOUR)
        self._slot_ns = slot_ns
        n_d = 1 if c.season == "none" else max(1, -(-_NS_DAY // slot_ns))
        n_w = max(1, -(-_NS_WEEK // slot_ns)) if c.season == "week" else 1
        #: Time-of-day slots: 24 for hourly or finer data, 1 for daily data or no season.
        self.day_slots: int = int(n_d)
        #: Time-of-week slots: 168 for hourly or finer data, 7 for daily data.
        self.week_slots: int = int(n_w)
        self._use_d = n_d > 1
        self._use_w = n_w > 1
        self._per_visit = slot_ns / _ns(interval)  # points per slot visit (12 for 5m data)

        # Per-point rates: a slot array with n slots is visited every n * interval.
        self._a_offset = _rate(interval, c.level_halflife)
        self._a_level = _rate(interval, c.baseline_halflife)
        self._a_day = _rate(n_d * interval, c.baseline_halflife)
        self._a_week = _rate(n_w * interval, c.seasonal_halflife)
        self._a_scale_slot = _rate(n_d * interval, c.scale_halflife)
        self._a_scale = _rate(interval, c.scale_halflife)
        self._a_shift = _rate(interval, c.shift_confirm)
        self._memory_ns = _ns(c.shift_memory)
        # Effective number of weekly visits behind a slot's EW mean at its floor rate.
        self._week_visits_cap = 2.0 / _rate(timedelta(weeks=1), c.seasonal_halflife) - 1.0
        self._c_k = _clipped_mad_consistency(c.k)
        # With a season, the level holds the first value for the first day, while the daily
        # profile learns the day relative to it exactly; then the profile's mean moves into
        # the level and the level moves slowly. The seasonal layers learn against the level,
        # so it must not wander (say from the weekday to the weekly mean) while they learn.
        # Without a season the level is a running mean at first.
        self._seasonal = self._use_d or self._use_w
        self._level_start = max(1, _NS_DAY // _ns(interval)) if self._seasonal else 0
        if c.warmup is None:
            warm = {"week": timedelta(weeks=1), "day": timedelta(days=1), "none": timedelta(0)}
            self._warmup_ns = _ns(warm[c.season])
        else:
            self._warmup_ns = _ns(c.warmup)

        self._record = np.dtype([
            ("t0", "<i8"), ("n", "<i8"), ("L", "<f4"), ("O", "<f4"), ("sig", "<f4"),
            ("mz", "<f4"), ("mr", "<f4"), ("sD", "<f4"), ("ns", "<f4"), ("ez", "<f4"),
            ("jump", "<f4"), ("log_ratio", "<f4"), ("t_jump", "<i8"), ("flags", "u1"),
            ("D", "<f4", (n_d,)), ("Sd", "<f4", (n_d,)), ("wS", "<f4", (n_d,)),
            ("Vd", "<f4", (n_d,)),
            ("nD", "<u2", (n_d,)), ("W", "<f4", (n_w,)), ("nW", "<u2", (n_w,)),
            ("ez2", "<f4"),
        ])
        #: the v3 record (before ``ez2``): checkpoints written by the previous release
        self._record_v3 = np.dtype([(n, self._record.fields[n][0]) for n in
                                    self._record.names if n != "ez2"])
        self._slot: dict[str, int] = {}
        self._free: list[int] = []
        self._cap = 0
        self._alloc(0)
        self._version = 0  # bumped by every state change; guards the cached prediction
        self._cache: tuple[TickBatch, int, _Pred] | None = None

    @property
    def state_bytes(self) -> int:
        """Size of one series' checkpoint (header + record)."""
        return _HEADER.size + self._record.itemsize

    def __len__(self) -> int:
        """Number of series with state."""
        return len(self._slot)

    # ------------------------------------------------------------------ state storage

    def _alloc(self, cap: int) -> None:
        """(Re)allocate the per-series arrays for ``cap`` rows, keeping existing rows."""
        old = self._cap
        for name in self._record.names:
            base, shape = self._record[name].base, self._record[name].shape
            arr = np.zeros((cap, *shape), dtype=base.newbyteorder("="))
            if old:
                arr[:old] = getattr(self, "_" + name)
            setattr(self, "_" + name, arr)
        self._cap = cap
        # Flat views: one gather/scatter per field for "slot s of row r" = r * n_slots + s.
        self._Df, self._Sdf, self._Vdf = (a.reshape(-1) for a in (self._D, self._Sd, self._Vd))
        self._wSf = self._wS.reshape(-1)
        self._nDf, self._Wf, self._nWf = (a.reshape(-1) for a in (self._nD, self._W, self._nW))

    def _clear_rows(self, rows: np.ndarray) -> None:
        for name in self._record.names:
            getattr(self, "_" + name)[rows] = 0

    def _lookup(self, series: np.ndarray) -> np.ndarray:
        """State row of each key, -1 for unknown series."""
        get = self._slot.get
        return np.fromiter((get(k, -1) for k in series.tolist()), np.int64, len(series))

    def _create(self, keys: Sequence[str]) -> None:
        """Give each new key a cleared row, growing the arrays geometrically."""
        need = len(keys) - len(self._free)
        if need > 0:
            used = self._cap
            target = max(used + need, 2 * used, 64)
            self._alloc(target)
            self._free.extend(range(target - 1, used - 1, -1))
        rows = [self._free.pop() for _ in keys]
        self._clear_rows(np.array(rows, dtype=np.int64))
        self._slot.update(zip(keys, rows, strict=True))
        self._version += 1

    # ------------------------------------------------------------------ prediction

    def _slots(self, ts: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of the time-of-day and time-of-week slots of each point."""
        id_d = id_w = rows
        ts = wall_clock_ns(ts, self.cfg.timezone)
        if self._use_d:
            d = np.minimum((ts % _NS_DAY) // self._slot_ns, self.day_slots - 1)
            id_d = rows * self.day_slots + d
        if self._use_w:
            w = np.minimum((ts % _NS_WEEK) // self._slot_ns, self.week_slots - 1)
            id_w = rows * self.week_slots + w
        return id_d, id_w

    def _predict(self, batch: TickBatch, all_rows: np.ndarray) -> _Pred:
        c = self.cfg
        sel = np.flatnonzero(all_rows >= 0)
        r = all_rows[sel]
        ts = batch.timestamps[sel].astype(np.int64, copy=False)
        y = batch.values[sel].astype(np.float64, copy=False)
        vol = batch.volumes[sel].astype(np.float64, copy=False)
        id_d, id_w = self._slots(ts, r)

        # The daily profile is used centred (its running sum sD is kept) so that the level,
        # not the profile, carries the mean: otherwise L + c and D - c fit equally well.
        base = self._L[r].astype(np.float64)
        if self._use_d:
            centre = np.where(self._n[r] >= self._level_start, self._sD[r], 0.0)
            base = base + (self._Df[id_d] - centre / self.day_slots)
        week = self._Wf[id_w].astype(np.float64) if self._use_w else None
        offset = self._O[r].astype(np.float64)
        flags = self._flags[r]
        s_slot = self._Sdf[id_d].astype(np.float64)
        s_all = self._sig[r].astype(np.float64)
        v_typ = self._Vdf[id_d].astype(np.float64)

        vol_ok = (vol > 0) & np.isfinite(vol)
        if c.count_noise == "auto":
            is_count = ~vol_ok & ((flags & _FLAG_COUNT) != 0)
        else:
            is_count = ~vol_ok & (c.count_noise == "poisson")
        nonneg = (flags & (_FLAG_COUNT | _FLAG_UNIT)) != 0
        unit = vol_ok & ((flags & _FLAG_UNIT) != 0)

        def domain(x: np.ndarray) -> np.ndarray:
            """Counts and non-negative series are not expected below 0, rates above 1."""
            x = np.where(nonneg, np.maximum(x, 0.0), x)
            return np.where(unit, np.minimum(x, 1.0), x)

        # Noise factor against the slot's typical volume (rates, means) or count.
        full = base + offset if week is None else base + week + offset
        share = c.volume_noise_share
        ratio = np.where(vol_ok, v_typ / vol, np.where(is_count, domain(full) / v_typ, 1.0))
        ratio = np.where(np.isfinite(ratio) & (v_typ > 0), np.clip(ratio, 1e-6, 1e6), 1.0)
        factor = np.sqrt((1.0 - share) + share * ratio)
        n_sd = self._wSf[id_d].astype(np.float64)  # weight of samples behind the slot scale
        sigma_n = np.sqrt((n_sd * s_slot * s_slot + _SCALE_PRIOR * s_all * s_all)
                          / (n_sd + _SCALE_PRIOR))
        sigma = sigma_n * factor

        # Weekly correction, shrunk towards the daily profile unless it stands out of its
        # noise (positive-part James-Stein on t^2 = visits * W^2 / sigma^2).
        isolated = np.zeros(len(r), dtype=bool)
        if week is not None:
            # A weekly slot seen once is trusted only as far as its neighbours in the week
            # agree (within k sigma): one spike in the history is not a weekly pattern, while
            # a weekend or a shifted morning spans neighbouring slots and passes.
            pos = id_w % self.week_slots
            first = id_w - pos
            prev = self._Wf[first + (pos - 1) % self.week_slots].astype(np.float64)
            nxt = self._Wf[first + (pos + 1) % self.week_slots].astype(np.float64)
            n_w = self._nWf[id_w].astype(np.float64)
            once = (n_w >= self._per_visit) & (n_w < 2.0 * self._per_visit)
            band = c.k * sigma
            kept = np.clip(week, np.minimum(prev, nxt) - band, np.maximum(prev, nxt) + band)
            kept = np.where(once, kept, week)
            target = y - base - offset
            isolated = once & (np.abs(target - kept) < np.abs(target - week))
            week = kept
            visits = np.minimum(self._nWf[id_w] / self._per_visit, self._week_visits_cap)
            t2 = visits * week * week
            noise = c.weekly_shrink * sigma * sigma
            weekly = np.where(t2 > noise, (1.0 - noise / t2) * week, 0.0)
            base = base + weekly
        else:
            weekly = np.zeros(len(r))
        raw = base + offset
        expected = domain(raw)

        # Floors: Poisson for counts, binomial for rates in [0, 1], configured, numerical.
        sigma = np.where(is_count, np.maximum(sigma, np.sqrt(np.maximum(expected, 1.0))), sigma)
        vol1 = np.maximum(vol, 1.0)
        p = np.clip(expected, 1.0 / (vol1 + 1.0), vol1 / (vol1 + 1.0))
        sigma = np.where(unit, np.maximum(sigma, np.sqrt(p * (1.0 - p) / vol1)), sigma)
        sigma = np.maximum(sigma, np.maximum(c.min_scale, 1e-9 * np.abs(expected) + 1e-300))

        ready = (self._n[r] >= c.min_points) & (ts - self._t0[r] >= self._warmup_ns)

        # A return to the level before a recently accepted shift is scored against that
        # level: the series recovering from a two-day outage is not a new shift the other way.
        jump = self._jump[r].astype(np.float64)
        shrink = np.exp(-self._log_ratio[r].astype(np.float64))
        recent = (((jump != 0.0) | (shrink != 1.0))
                  & (ts - self._t_jump[r] <= self._memory_ns))
        before = np.where(recent, domain((raw - jump) * shrink), expected)
        sigma_b = np.where(recent, sigma * shrink, sigma)
        sigma_b = np.where(recent & is_count,
                           np.maximum(sigma_b, np.sqrt(np.maximum(before, 1.0))), sigma_b)
        back = recent & (np.abs(y - before) / sigma_b < np.abs(y - expected) / sigma)
        return _Pred(all_rows, sel, r, id_d, id_w, y, flags, vol_ok, is_count, weekly, base,
                     raw, expected, factor, sigma_n, sigma, ready, back, before, sigma_b,
                     np.zeros(len(r)) if week is None else week, isolated)

    def _prediction(self, batch: TickBatch) -> _Pred:
        cached = self._cache
        if cached is not None and cached[0] is batch and cached[1] == self._version:
            return cached[2]
        with np.errstate(all="ignore"):
            pred = self._predict(batch, self._lookup(batch.series))
        self._cache = (batch, self._version, pred)
        return pred

    # ------------------------------------------------------------------ contract

    @property
    def warmup_period(self) -> timedelta:
        """How long a new series learns before it is scored."""
        return timedelta(microseconds=self._warmup_ns // 1000)

    def score(self, batch: TickBatch) -> Scores:
        """Score every point of the tick against the state learned so far (no mutation).

        Series never learned, points in warm-up and NaN values score NaN; expected and the
        band are still given for every series with state (useful on dashboards).
        """
        out = Scores.empty(len(batch))
        if len(batch) == 0:
            return out
        pr = self._prediction(batch)
        with np.errstate(all="ignore"):
            half = self.cfg.z_band * pr.sigma
            nonneg = (pr.flags & (_FLAG_COUNT | _FLAG_UNIT)) != 0
            unit = pr.vol_ok & ((pr.flags & _FLAG_UNIT) != 0)
            lower = pr.expected - half
            upper = pr.expected + half
            z = (pr.y - pr.expected) / pr.sigma
            score = t_two_sided_cdf(z, self.cfg.tail_dof)
            for lam, state in self._sustained_tests():
                if lam <= 0:
                    continue
                # EWMA control chart on the clipped z: its stationary sd is sqrt(lam/(2-lam)).
                ez = _evidence_step(state[pr.rows], z, lam)
                sustained = t_two_sided_cdf(ez / math.sqrt(lam / (2.0 - lam)), self.cfg.tail_dof)
                # Only while the current point itself still deviates the same way: the
                # EWMA lags, and the hour after an incident must not inherit its alert.
                ongoing = (np.sign(z) == np.sign(ez)) & (np.abs(z) >= _EVIDENCE_MIN_Z)
                score = np.fmax(score, np.where(np.isfinite(z) & ongoing, sustained, np.nan))
            # A count far below its expected value: ask the count distribution, whose lower
            # tail near 0 is much lighter than the Student-t's (detectors/count_tail.py).
            # Only well below (z < -2.5): above that neither tail is near an alert, and the
            # incomplete beta is the costliest step of a tick.
            low = np.flatnonzero(pr.is_count & (z < -2.5))
            if len(low):
                drop = count_drop_score(pr.y[low], pr.expected[low], pr.sigma[low])
                score[low] = np.fmax(score[low], drop)
            if pr.back.any():  # a recovery: scored against the level before the shift
                half_b = self.cfg.z_band * pr.sigma_before
                score = np.where(pr.back, t_two_sided_cdf(
                    (pr.y - pr.before) / pr.sigma_before, self.cfg.tail_dof), score)
                lower = np.where(pr.back, pr.before - half_b, lower)
                upper = np.where(pr.back, pr.before + half_b, upper)
        out.expected[pr.sel] = np.where(pr.back, pr.before, pr.expected)
        out.lower[pr.sel] = np.where(nonneg, np.maximum(lower, 0.0), lower)
        out.upper[pr.sel] = np.where(unit, np.minimum(upper, 1.0), upper)
        out.score[pr.sel] = np.where(pr.ready & np.isfinite(pr.y), score, np.nan)
        return out

    def learn(self, batch: TickBatch, anomalous: np.ndarray) -> None:
        """Update the state of every series in the tick; non-finite values are skipped.

        ``anomalous`` points learn at ``anomaly_learning`` times the usual rates. A series
        present twice in one batch (a backfill) has its points learned in time order.
        """
        flagged = np.asarray(anomalous, dtype=bool)
        if flagged.shape != (len(batch),):
            raise ValueError(f"anomalous has shape {flagged.shape}, expected ({len(batch)},)")
        if len(batch) == 0:
            return
        pr = self._prediction(batch)
        missing = np.isfinite(batch.values) & (pr.all_rows < 0)
        if missing.any():
            self._create(list(dict.fromkeys(batch.series[missing].tolist())))
            pr = self._prediction(batch)
        finite = np.isfinite(pr.y)
        if not finite.all():
            pr = pr.take(np.flatnonzero(finite))
        if len(pr.rows) == 0:
            return
        positions = np.arange(len(pr.rows))
        marker = np.empty(self._cap, np.int64)
        marker[pr.rows] = positions
        if (marker[pr.rows] != positions).any():
            self._learn_in_order(batch.take(pr.sel), flagged[pr.sel])
            return
        with np.errstate(all="ignore"):
            self._update(pr, batch.timestamps[pr.sel], batch.volumes[pr.sel], flagged[pr.sel])
        self._version += 1

    def _learn_in_order(self, batch: TickBatch, flagged: np.ndarray) -> None:
        """Learn a batch with repeated series: earliest point of each series first."""
        order = np.argsort(batch.timestamps, kind="stable")
        _, first = np.unique(batch.series[order].astype(str), return_index=True)
        first_pos = np.sort(order[first])
        rest = np.setdiff1d(np.arange(len(batch)), first_pos)
        self.learn(batch.take(first_pos), flagged[first_pos])
        self.learn(batch.take(rest), flagged[rest])

    def _update(self, pr: _Pred, ts: np.ndarray, vol: np.ndarray, flagged: np.ndarray) -> None:
        """One robust smoothing step for the unique, finite points of ``pr``."""
        c = self.cfg
        r, y = pr.rows, pr.y
        n = self._n[r]
        new = n == 0
        fr = np.where(flagged, c.anomaly_learning, 1.0)
        clip = np.where(pr.ready, c.k * pr.sigma, np.inf)  # no Huber clip in warm-up
        err = np.where(new, 0.0, np.clip(y - pr.raw, -clip, clip))

        # Offset: fast, on the prediction error, and only as far as the slot is known.
        n_d = self._nDf[pr.id_d].astype(np.float64)
        if self._use_w:
            seen = self._nWf[pr.id_w] / self._per_visit
        elif self._use_d:
            seen = n_d / self._per_visit
        else:
            seen = np.ones(len(r))
        known = seen / (seen + 1.0)
        self._O[r] = self._O[r] + (fr * self._a_offset) * known * err

        # Baseline: the level, then each seasonal layer on its own target.
        if self._seasonal:
            gain = np.where(n < self._level_start, 0.0, (fr * self._a_level) * known)
        else:
            gain = fr * np.maximum(self._a_level, 1.0 / (n + 1.0))
        level = np.where(new, y, self._L[r] + gain * np.clip(y - pr.baseline, -clip, clip))
        d_c = 0.0
        if self._use_d:
            d_old = self._Df[pr.id_d]
            s_d = self._sD[r]
            centred = n >= self._level_start
            d_mean = np.where(centred, s_d, 0.0) / self.day_slots
            rate = fr * np.maximum(self._a_day, 1.0 / (n_d + 1.0))
            target = y - level - pr.weekly - (d_old - d_mean)
            d_store = (d_old + rate * np.clip(target, -clip, clip)).astype(np.float32)
            self._Df[pr.id_d] = d_store
            s_d = (s_d + (d_store - d_old)).astype(np.float32)
            self._sD[r] = s_d
            # After the first day the profile is centred and its mean moves to the level.
            start = n + 1 == self._level_start
            level = np.where(start, level + s_d.astype(np.float64) / self.day_slots, level)
            d_mean = np.where(centred | start, s_d, 0.0) / self.day_slots
            d_c = d_store - d_mean
        if self._use_w:
            w_old = self._Wf[pr.id_w].astype(np.float64)
            # The second visit of a slot replaces a first one that it and the neighbouring
            # slots disown (a spike in the history) before the usual update.
            w_old = np.where(pr.isolated, pr.week_used, w_old)
            n_w = self._nWf[pr.id_w].astype(np.float64)
            rate = fr * np.maximum(self._a_week, 1.0 / (n_w + 1.0))
            # A slot's first visit is learned unclipped, as in warm-up, also when it comes
            # later (a skipped holiday): clipped, a first Sunday after warm-up would leave
            # Sunday's pattern under-learned for weeks.
            clip_w = np.where(n_w < self._per_visit, np.inf, clip)
            self._Wf[pr.id_w] = w_old + rate * np.clip(y - level - d_c - w_old, -clip_w, clip_w)
            self._nWf[pr.id_w] = np.minimum(n_w + 1.0, _COUNT_MAX)
        self._nDf[pr.id_d] = np.minimum(n_d + 1.0, _COUNT_MAX)

        # Noise scale: a weighted running mean of the normalized prediction error at first,
        # exponentially weighted later. Errors in a time-of-day slot never seen before
        # measure the unknown daily shape, not noise, so they are no sample; errors in a
        # weekly slot seen for the first time count a quarter (they include the unknown
        # weekly pattern). Once a few dozen samples are in, samples are Huber-clipped, so
        # an outlier inflates the scale by a bounded factor; flagged points weigh little.
        weight = fr * np.where(n_d > 0, 1.0, 0.0)
        if self._use_w:
            weight = weight * np.where(seen >= 1.0, 1.0, _UNSEEN_WEEK_WEIGHT)
        norm = np.abs(y - pr.expected) / pr.factor
        w_all = self._ns[r].astype(np.float64) + weight
        settled = (w_all > _SCALE_SETTLED) & (pr.sigma_n > 0)
        sample = np.where(settled, self._c_k * np.minimum(norm, c.k * pr.sigma_n),
                          _SQRT_HALF_PI * norm)
        s_all = self._sig[r].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(weight > 0, np.maximum(self._a_scale * weight, weight / w_all), 0.0)
        self._sig[r] = s_all + rate * (sample - s_all)
        self._ns[r] = np.minimum(w_all, 1e9)
        s_slot = self._Sdf[pr.id_d].astype(np.float64)
        w_slot = self._wSf[pr.id_d].astype(np.float64) + weight
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(weight > 0, np.maximum(self._a_scale_slot * weight, weight / w_slot),
                            0.0)
        self._Sdf[pr.id_d] = s_slot + rate * (sample - s_slot)
        self._wSf[pr.id_d] = np.minimum(w_slot, 1e9)

        # Typical volume (rates, means) or expected count (counts) of the time-of-day slot.
        proxy = np.where(pr.vol_ok, vol, np.where(new, np.maximum(y, 0.0), pr.expected))
        v_old = self._Vdf[pr.id_d].astype(np.float64)
        rate_slot = fr * np.maximum(self._a_scale_slot, 1.0 / (n_d + 1.0))
        self._Vdf[pr.id_d] = np.where(pr.vol_ok | pr.is_count | new,
                                      v_old + rate_slot * (proxy - v_old), v_old)

        # A persistent one-sided deviation is a level shift: move the baseline level to it.
        z = np.clip((y - pr.expected) / pr.sigma, -2.0 * c.k, 2.0 * c.k)
        mz = self._mz[r].astype(np.float64)
        mr = self._mr[r].astype(np.float64)
        mz = np.where(pr.ready, mz + self._a_shift * (z - mz), mz)
        mr = np.where(pr.ready, mr + _SHIFT_SIZE_RATE * (y - pr.raw - mr), mr)
        z_raw = (y - pr.expected) / pr.sigma
        ez, ez2 = (np.where(pr.ready, _evidence_step(state[r], z_raw, lam), 0.0) if lam > 0
                   else np.zeros(len(r)) for lam, state in self._sustained_tests())
        accept = pr.ready & (np.abs(mz) >= c.k)
        self._L[r] = level
        if accept.any():
            self._accept_shifts(pr, ts, accept, mr)
        self._ez[r] = np.where(accept, 0.0, ez)
        self._ez2[r] = np.where(accept, 0.0, ez2)
        self._mz[r] = np.where(accept, 0.0, mz)
        self._mr[r] = np.where(accept, 0.0, mr)

        is_int = (y >= 0) & (y == np.floor(y))
        unit = (y >= 0) & (y <= 1)
        obs = (np.where(is_int, _FLAG_COUNT, 0) | np.where(unit, _FLAG_UNIT, 0)).astype(np.uint8)
        self._flags[r] = np.where(new, obs, pr.flags & obs)
        self._t0[r] = np.where(new, ts, self._t0[r])
        self._n[r] = n + 1

    def _accept_shifts(self, pr: _Pred, ts: np.ndarray, accept: np.ndarray,
                       size: np.ndarray) -> None:
        """Move the level of the ``accept`` series by ``size`` (the shift's recent mean error)
        and remember the shift for ``shift_memory``.

        Why in proportion for counts: contact and session volumes keep their daily rhythm in
        proportion (half the traffic, half the peak). Moving only the level would keep the
        old amplitude, so after a drop to a fifth the night's expected count would be
        clamped at 0 and the real night read as a rise, for as long as the profile takes to
        relearn. Rates, means and other values shift additively.

        The memory (how far from the level before the first shift: ``jump`` additively,
        ``log_ratio`` in proportion, and when) lets a return to that level score against it.
        A further shift of the detour (a correction) adds to it; one back more than halfway
        ends it, or the detour's level would be remembered and a relapse to it not alerted.
        """
        idx = np.flatnonzero(accept)
        r, ts, size, raw = pr.rows[idx], ts[idx], size[idx], pr.raw[idx]
        level = self._L[r].astype(np.float64)
        # in proportion: the recent points over what was expected of them (a channel gone
        # silent is taken as a fiftieth, so the profile can still come back)
        mult = pr.is_count[idx] & (raw > 0) & (level > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(mult, np.clip((raw + size) / raw, _MIN_RATIO, 1.0 / _MIN_RATIO), 1.0)
        scaled = r[mult]
        if len(scaled):
            k = f[mult]
            for arr in (self._D, self._Sd, self._W, self._Vd):
                arr[scaled] = arr[scaled] * k[:, None]
            for arr in (self._sD, self._sig, self._O):
                arr[scaled] = arr[scaled] * k
        self._L[r] = np.where(mult, level * f, level + size)

        jump = self._jump[r].astype(np.float64)
        log_ratio = self._log_ratio[r].astype(np.float64)
        recent = (((jump != 0.0) | (log_ratio != 0.0))
                  & (ts - self._t_jump[r] <= self._memory_ns))
        total_jump = np.where(recent, jump, 0.0) + np.where(mult, 0.0, size)
        total_log = np.where(recent, log_ratio, 0.0) + np.log(f)
        returning = recent & np.where(mult, np.abs(total_log) < 0.5 * np.abs(log_ratio),
                                      np.abs(total_jump) < 0.5 * np.abs(jump))
        forget = returning | (self._memory_ns == 0)
        self._jump[r] = np.where(forget, 0.0, total_jump)
        self._log_ratio[r] = np.where(forget, 0.0, total_log)
        self._t_jump[r] = np.where(returning, self._t_jump[r], ts)

    def observe(self, batch: TickBatch) -> None:
        """A calendar ``score`` day: move the sustained-deviation tests (part of scoring),
        nothing of the baseline, so the day alerts as an ordinary one would."""
        if len(batch) == 0:
            return
        pr = self._prediction(batch)
        if len(pr.rows) == 0:
            return
        with np.errstate(all="ignore"):
            z = (pr.y - pr.expected) / pr.sigma
        ok = pr.ready & np.isfinite(pr.y)
        for lam, state in self._sustained_tests():
            if lam > 0:
                state[pr.rows] = np.where(ok, _evidence_step(state[pr.rows], z, lam),
                                          state[pr.rows])
        self._version += 1

    def _sustained_tests(self) -> tuple[tuple[float, np.ndarray], ...]:
        """(EWMA weight, per-series state) of the fast and the slow sustained tests."""
        return ((self.cfg.evidence_rate, self._ez), (self.cfg.slow_evidence_rate, self._ez2))

    # ------------------------------------------------------------------ checkpoints

    def get_state(self, series: Sequence[str] | None = None) -> dict[str, bytes]:
        """Per-series checkpoint: an 8-byte header (magic, version, slot layout) and one
        packed little-endian record (about 1.4 KB with weekly seasonality)."""
        keys = list(self._slot) if series is None else [k for k in series if k in self._slot]
        if not keys:
            return {}
        rows = np.array([self._slot[k] for k in keys], dtype=np.int64)
        rec = np.zeros(len(rows), dtype=self._record)
        for name in self._record.names:
            rec[name] = getattr(self, "_" + name)[rows]
        header = _HEADER.pack(_MAGIC, _VERSION, self.day_slots, self.week_slots - 1,
                              zone_tag(self.cfg.timezone))
        raw = rec.tobytes()
        size = self._record.itemsize
        return {k: header + raw[i * size:(i + 1) * size] for i, k in enumerate(keys)}

    def set_state(self, states: Mapping[str, bytes]) -> None:
        """Restore series from :meth:`get_state`, overwriting series already present.

        Raises ``ValueError`` for a record of another format or slot layout (e.g. the
        metric's interval changed from 1h to 1d, or its time zone, which moves every slot):
        such state cannot be reused.
        """
        if not states:
            return
        formats = {
            _HEADER.pack(_MAGIC, version, self.day_slots, self.week_slots - 1,
                         zone_tag(self.cfg.timezone)): record
            for version, record in ((_VERSION, self._record), (3, self._record_v3))}
        versions = set()
        for key, blob in states.items():
            record = formats.get(bytes(blob[: _HEADER.size]))
            if record is None or len(blob) != _HEADER.size + record.itemsize:
                raise ValueError(
                    f"state of {key!r} is not a robust_seasonal v3 or v{_VERSION} record for "
                    f"{self.day_slots} day / {self.week_slots} week slots in "
                    f"{self.cfg.timezone}"
                )
            versions.add(record)
        if len(versions) > 1:  # one restore mixing releases: each part on its own
            for record in versions:
                self.set_state({k: b for k, b in states.items()
                                if formats.get(bytes(b[: _HEADER.size])) is record})
            return
        (record,) = versions
        rec = np.frombuffer(b"".join(bytes(b[_HEADER.size:]) for b in states.values()),
                            dtype=record)
        keys = list(states)
        missing = [k for k in keys if k not in self._slot]
        if missing:
            self._create(missing)
        rows = np.array([self._slot[k] for k in keys], dtype=np.int64)
        for name in self._record.names:
            getattr(self, "_" + name)[rows] = rec[name] if name in record.names else 0
        self._version += 1

    def forget(self, series: Sequence[str]) -> None:
        """Drop the state of series that no longer exist; their rows are reused."""
        rows = [self._slot.pop(k) for k in series if k in self._slot]
        if rows:
            self._clear_rows(np.array(rows, dtype=np.int64))
            self._free.extend(rows)
            self._version += 1
