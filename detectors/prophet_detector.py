"""``prophet``: Prophet per series, fitted off the tick path, scored from its forecast.

Prophet (daily / weekly / yearly seasonality, country holidays, a custom events calendar)
is far too slow to fit on every tick, so the detector separates the two:

* **Scoring** (on the tick path) only looks up the last fit's forecast: at fit time the
  model predicts ``yhat``, ``yhat_lower`` and ``yhat_upper`` on the metric's time grid for
  ``horizon`` ahead (default twice ``refit``), and that small table is the series' model
  state. ``expected`` is ``yhat``; the noise is ``sigma = max((upper - lower) / (2 z_w),
  sigma_obs)`` (the interval covers ``interval_width`` of a Gaussian; ``sigma_obs`` is the
  fit's own noise, so a band drawn from few samples cannot come out too narrow), scaled by
  volume (Prophet's noise is one sigma for the whole history, but a rate from 30 sessions
  is noisier than from 3,000, and a count at a busy hour than at night:
  ``volume_noise_share``), never below Poisson noise for counts or binomial noise for rates
  with a volume; the score is
  ``P(|T| < |value - yhat| / sigma)`` (Student-t, ``tail_dof``), the same scale as every
  other detector, and the band shown is ``yhat +- z_band sigma``, as for the others.
  Counts and rates are never expected below 0 (or a rate above 1).
* **Fitting** happens on a schedule (``refit: 1d``): ``learn`` appends the point to the
  series' history and, when a refit is due, *submits* it to an executor
  (``concurrent.futures``: the default runs it inline, which keeps backtests and tests
  deterministic; ``cxmon run`` plugs in the configured thread / process pool or Dask
  cluster through :meth:`ProphetDetector.set_executor`). A finished fit is picked up by the
  next ``learn``; until then the previous forecast keeps scoring. A failed fit (an exception
  in the fit, or an executor that refuses the job) is logged and counted
  (:meth:`ProphetDetector.drain_fit_report`), the previous forecast stays, and the fit is
  retried ``retry_after`` later (doubling while it keeps failing, at most ``refit``).
  The fit function is a plain module-level function of arrays, so it pickles to worker
  processes.

Why ``growth: flat`` by default: between two refits only the seasonal shape and the level
matter, and Prophet's linear trend, fitted on a week or two of data, extrapolates whatever
the last days did (a quiet weekend becomes a falling trend, a forecast of negative contact
volumes a week later). The level is re-estimated at every refit anyway. ``linear`` is there
for long histories with a real trend. Seasonalities set to ``auto`` are switched on as soon
as the history spans one period (Prophet's own rule waits for two, so a first fit after a
week would model the weekly rhythm as trend changes).

Flagged points are left out of the fit (an incident must not become the forecast), unless at
least half of the last ``refit`` window is flagged: then it is a new regime and is learned.
No look-ahead: a fit uses only points already learned, and its forecast starts after them.
"""

from __future__ import annotations

import logging
import math
import pickle
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import timedelta
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from detectors.base import Detector, DetectorConfig, Scores, TickBatch
from detectors.calendar import NamedDays
from detectors.count_tail import count_drop_score
from detectors.registry import register
from detectors.robust_seasonal import t_two_sided_cdf
from monitor.durations import Duration, positive_duration
from monitor.zones import Zone, wall_clock_ns

__all__ = ["FitReport", "Forecast", "InlineExecutor", "ProphetConfig", "ProphetDetector",
           "fit_forecast"]

log = logging.getLogger(__name__)
_MAGIC = b"CXPF2"
_MAGIC_V1 = b"CXPF1"  # before sigma_obs and the domain flags: still readable
_FLAG_COUNT = 1  # every fitted value was a non-negative integer
_FLAG_UNIT = 2  # every fitted value was within [0, 1]
_NS_DAY = 86_400 * 10**9
_PREDICT_LOCK = threading.Lock()  # Prophet samples its bands with NumPy's global RNG


def _ns(value: timedelta) -> int:
    return value // timedelta(microseconds=1) * 1_000


#: Prophet's custom events: named whole days (detectors/calendar.py)
Event = NamedDays


Seasonality = Literal["auto"] | bool


class ProphetConfig(DetectorConfig):
    """Settings of :class:`ProphetDetector`."""

    type: Literal["prophet"] = "prophet"
    daily: Seasonality = Field("auto", description="Daily seasonality (Prophet's option).")
    weekly: Seasonality = Field("auto", description="Weekly seasonality.")
    yearly: Seasonality = Field("auto", description="Yearly seasonality (needs 2 years).")
    holidays: str | None = Field(None, description="Country holidays, e.g. GB, US, DE.")
    timezone: Zone = Field("UTC", description="IANA time zone whose wall clock Prophet sees "
                           "(daily and weekly seasonality, holiday and event dates follow "
                           "local time across summer time); a metric's timezone sets it "
                           "unless given here.")
    events: list[Event] = Field(default_factory=list, description="Custom events calendar.")
    refit: Duration = Field(timedelta(days=1), description="How often each series is refitted.")
    horizon: Duration | None = Field(None, description="How far each fit forecasts (default "
                                     "2 x refit; scores are NaN past it until a refit lands).")
    history: Duration = Field(timedelta(weeks=4), description="History kept and fitted on.")
    min_history: Duration = Field(timedelta(days=2), description="History before a first fit.")
    interval_width: float = Field(0.8, gt=0.5, lt=1.0, description="Prophet's band coverage.")
    uncertainty_samples: int = Field(300, ge=20, le=5000, description="Prophet's samples for "
                                     "the band.")
    changepoint_prior_scale: float = Field(0.05, gt=0, description="Trend flexibility.")
    seasonality_mode: Literal["additive", "multiplicative"] = "additive"
    growth: Literal["flat", "linear"] = Field("flat", description="Trend between refits: "
                                              "flat (level re-fitted each refit) or linear "
                                              "(Prophet's extrapolated trend).")
    tail_dof: int = Field(8, ge=1, le=60, description="Student-t dof of the tail probability.")
    z_band: float = Field(3.0, gt=0, le=50, description="Band half-width in sigmas (as the "
                          "other detectors).")
    volume_noise_share: float = Field(0.75, ge=0.0, le=1.0, description="Share of the "
                                      "fitted noise variance that scales as 1 / volume "
                                      "(rates, means) or as the level (counts); 0 = off.")
    retry_after: Duration = Field(timedelta(hours=1), description="Retry a failed fit this "
                                  "much later (data time), doubling up to refit.")

    # Field validators, not one model validator: pydantic skips a model validator when any
    # field fails, which hid an unknown holidays country behind any other mistake.
    @field_validator("refit", "history", "retry_after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        return positive_duration(value)

    @field_validator("holidays")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is not None:
            import holidays as hol

            if value.upper() not in hol.list_supported_countries():
                raise ValueError(f"unknown holidays country {value!r}; give a country code "
                                 "such as GB, US or DE")
        return value


class InlineExecutor(Executor):
    """A ``concurrent.futures`` executor that runs each call at ``submit`` (deterministic:
    for backtests, ``cxmon score`` and tests)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut


@dataclass(frozen=True, slots=True)
class Forecast:
    """One fit's output: the forecast grid from ``start`` (ns) and the fit's noise."""

    start: int
    yhat: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    sigma_obs: float  # the fitted observation noise, in the KPI's units
    seconds: float  # time the fit and forecast took (where it ran)


@dataclass(slots=True)
class FitReport:
    """Fits installed and failed since the last :meth:`ProphetDetector.drain_fit_report`."""

    seconds: list[float] = field(default_factory=list)
    failures: int = 0


def _auto(setting: Seasonality, span_ns: int, step_ns: int, period_ns: int) -> bool:
    """``auto``: on once the history covers one period (its buckets, the last one included)
    and the data resolves it."""
    if setting != "auto":
        return bool(setting)
    return span_ns + step_ns >= period_ns and step_ns <= period_ns // 4


def _quiet_prophet_logs() -> None:
    """Keep Prophet's and cmdstanpy's chatter off the console, also where no logging is set
    up (``cxmon backtest``, ``cxmon score``, a worker process).

    cmdstanpy attaches its own INFO handler (and sets DEBUG) on first use unless its logger
    already has a handler, so a level set beforehand did not hold for the first fit: its
    "Chain [1] start processing" lines went through the progress bar. A NullHandler makes it
    keep ours; warnings still reach the root handlers. prophet logs "Importing plotly failed"
    at ERROR on import: cxmon draws no plots, so that logger is silenced.
    """
    for name in ("cmdstanpy", "prophet"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)


def fit_forecast(
    ts_ns: np.ndarray, y: np.ndarray, settings: dict[str, Any], step_ns: int, steps: int
) -> Forecast:
    """Fit Prophet on ``(ts_ns, y)`` and forecast ``steps`` points after the last one.

    Module-level and plain data in and out, so executors can ship it to other processes.
    """
    import pandas as pd

    _quiet_prophet_logs()
    from prophet import Prophet

    started = time.perf_counter()
    cfg = ProphetConfig.model_validate(settings)
    holidays = None
    if cfg.events:
        rows = [(e.name, pd.Timestamp(d)) for e in cfg.events
                for d in pd.date_range(e.start, e.end, freq="D")]
        holidays = pd.DataFrame(rows, columns=["holiday", "ds"])
    span = int(ts_ns[-1]) - int(ts_ns[0])
    m = Prophet(
        growth=cfg.growth,
        daily_seasonality=_auto(cfg.daily, span, step_ns, _NS_DAY),
        weekly_seasonality=_auto(cfg.weekly, span, step_ns, 7 * _NS_DAY),
        yearly_seasonality=_auto(cfg.yearly, span, step_ns, 730 * _NS_DAY),
        holidays=holidays, interval_width=cfg.interval_width,
        uncertainty_samples=cfg.uncertainty_samples,
        changepoint_prior_scale=cfg.changepoint_prior_scale,
        seasonality_mode=cfg.seasonality_mode,
    )
    if cfg.holidays:
        m.add_country_holidays(country_name=cfg.holidays.upper())
    # Prophet sees local wall-clock times: its seasonalities and holiday dates then follow
    # the shop's clocks; forecasts are read back by position, so UTC stays the index.
    ds = pd.to_datetime(wall_clock_ns(ts_ns, cfg.timezone), unit="ns")
    m.fit(pd.DataFrame({"ds": ds, "y": y}))
    start = int(ts_ns[-1]) + step_ns
    ahead = wall_clock_ns(start + step_ns * np.arange(steps, dtype=np.int64), cfg.timezone)
    future = pd.DataFrame({"ds": pd.to_datetime(ahead, unit="ns")})
    with _PREDICT_LOCK:
        rng_state = np.random.get_state()
        np.random.seed(0)  # the same data gives the same band, in every process
        try:
            fc = m.predict(future)
        finally:
            np.random.set_state(rng_state)
    sigma_obs = float(np.asarray(m.params["sigma_obs"]).ravel()[0]) * float(m.y_scale)
    return Forecast(start, fc["yhat"].to_numpy(np.float64),
                    fc["yhat_lower"].to_numpy(np.float64), fc["yhat_upper"].to_numpy(np.float64),
                    sigma_obs, time.perf_counter() - started)


def _domain_flags(y: np.ndarray) -> int:
    """Which domain every value of a history lies in (counts, unit-interval rates)."""
    nonneg = bool((y >= 0).all())
    return ((_FLAG_COUNT if nonneg and bool((y == np.floor(y)).all()) else 0)
            | (_FLAG_UNIT if nonneg and bool((y <= 1).all()) else 0))


@dataclass
class _Series:
    ts: list[int] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    flagged: list[bool] = field(default_factory=list)
    vol: list[float] = field(default_factory=list)  # volume behind each point (NaN: none)
    fitted_at: int | None = None  # newest point the installed forecast was fitted on
    t0: int = 0  # forecast grid
    yhat: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lo: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hi: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sigma_obs: float = 0.0  # of the installed fit
    domain: int = 0  # _FLAG_* of the installed fit's history
    vref: float = 0.0  # harmonic mean volume of the fitted points (0: none)
    lref: float = 0.0  # mean level of the fitted points (counts: Poisson-like scaling)
    failures: int = 0  # failed fits in a row (not checkpointed: retried after a restart)
    retry_at: int | None = None  # no new fit before a point this new (after a failure)

    def packed(self) -> bytes:
        return _MAGIC + pickle.dumps(
            (np.asarray(self.ts, np.int64), np.asarray(self.y, np.float64),
             np.asarray(self.flagged, bool), self.fitted_at, self.t0, self.yhat, self.lo,
             self.hi, self.sigma_obs, self.domain, np.asarray(self.vol, np.float64),
             self.vref, self.lref), protocol=5)

    @classmethod
    def unpack(cls, blob: bytes) -> _Series:
        fields = pickle.loads(blob[len(_MAGIC):])
        ts, y, fl, fitted_at, t0, yhat, lo, hi, *rest = fields
        sigma_obs, domain, vol, vref, lref = rest if rest else (
            0.0, 0, np.full(len(ts), np.nan), 0.0, 0.0)
        return cls(ts.tolist(), y.tolist(), fl.tolist(), vol.tolist(), fitted_at, t0, yhat,
                   lo, hi, sigma_obs, domain, vref, lref)


@register("prophet")
class ProphetDetector(Detector):
    """Prophet per series; scores from the last fit's forecast, refits via an executor."""

    Config = ProphetConfig

    def __init__(self, config: DetectorConfig, *, interval: timedelta,
                 executor: Executor | None = None) -> None:
        super().__init__(config, interval=interval)
        assert isinstance(config, ProphetConfig)
        self.cfg = config
        self.executor: Executor = executor or InlineExecutor()
        self._step = _ns(interval)
        horizon = config.horizon or 2 * config.refit
        self._steps = max(1, -(-_ns(horizon) // self._step))
        self._settings = config.model_dump(mode="json")
        self._z_w = NormalDist().inv_cdf(0.5 + config.interval_width / 2.0)
        self._series: dict[str, _Series] = {}
        #: key -> (future, newest point fitted, (domain flags, volume ref, level ref))
        self._pending: dict[str, tuple[Future, int, tuple[int, float, float]]] = {}
        self._blobs: dict[str, bytes] = {}
        self._report = FitReport()
        #: Fits that failed since this instance was created (the report is drained).
        self.failures_total = 0

    def set_executor(self, executor: Executor) -> None:
        """Run future fits on ``executor`` (a thread pool, or ``dask_client.get_executor()``)."""
        self.executor = executor

    @property
    def learns_calendar_days(self) -> str | None:
        """Why this detector learns the business calendar's days all the same (see
        monitor/detection.py), or None: with its own ``holidays`` or ``events`` it estimates
        their effect from the days it has seen."""
        return "holidays or events of its own" if self.cfg.holidays or self.cfg.events else None

    # -- scoring ------------------------------------------------------------------------------

    def score(self, batch: TickBatch) -> Scores:
        out = Scores.empty(len(batch))
        z_band = self.cfg.z_band
        for i, key in enumerate(batch.series.tolist()):
            st = self._series.get(key)
            if st is None or len(st.yhat) == 0:
                continue
            pos = (int(batch.timestamps[i]) - st.t0) / self._step
            if not 0 <= pos <= len(st.yhat) - 1:
                continue
            grid = np.arange(len(st.yhat))
            yhat, lo, hi = (float(np.interp(pos, grid, a)) for a in (st.yhat, st.lo, st.hi))
            sigma = max((hi - lo) / (2.0 * self._z_w), st.sigma_obs)
            vol = float(batch.volumes[i])
            sigma *= self._noise_factor(st, yhat, vol)
            if st.domain:  # counts and rates: not below 0; rates with a volume: not above 1
                yhat = max(yhat, 0.0)
            unit = bool(st.domain & _FLAG_UNIT) and math.isfinite(vol) and vol > 0
            if unit:
                yhat = min(yhat, 1.0)
                v = max(vol, 1.0)
                p = min(max(yhat, 1.0 / (v + 1.0)), v / (v + 1.0))
                sigma = max(sigma, math.sqrt(p * (1.0 - p) / v))
            count = bool(st.domain & _FLAG_COUNT) and not (math.isfinite(vol) and vol > 0)
            if count:
                sigma = max(sigma, math.sqrt(max(yhat, 1.0)))  # never below Poisson noise
            sigma = max(sigma, 1e-9 * abs(yhat) + 1e-12)
            lower, upper = yhat - z_band * sigma, yhat + z_band * sigma
            out.expected[i] = yhat
            out.lower[i] = max(lower, 0.0) if st.domain else lower
            out.upper[i] = min(upper, 1.0) if unit else upper
            y = float(batch.values[i])
            if math.isfinite(y):
                z = (y - yhat) / sigma
                score = float(t_two_sided_cdf(np.array([z]), self.cfg.tail_dof)[0])
                if count and z < -2.5:  # a count far below: its own tail (detectors/count_tail)
                    drop = float(count_drop_score(np.array([y]), np.array([yhat]),
                                                  np.array([sigma]))[0])
                    score = max(score, drop) if math.isfinite(drop) else score
                out.score[i] = score
        return out

    def _noise_factor(self, st: _Series, yhat: float, vol: float) -> float:
        """Prophet's noise is one sigma for the whole history; CX noise is not. A rate or a
        mean from fewer sessions than usual is noisier (variance ~ 1 / volume), a count at
        a busy hour noisier than at night (variance ~ level): ``volume_noise_share`` of the
        fitted variance is redistributed so, against the fitted points' own reference."""
        if math.isfinite(vol) and vol > 0 and st.vref > 0:
            ratio = st.vref / vol
        elif st.domain & _FLAG_COUNT and st.lref > 0 and not math.isfinite(vol):
            ratio = max(yhat, 1.0) / st.lref
        else:
            return 1.0
        share = self.cfg.volume_noise_share
        return math.sqrt((1.0 - share) + share * min(max(ratio, 1e-6), 1e6))

    # -- learning -----------------------------------------------------------------------------

    def learn(self, batch: TickBatch, anomalous: np.ndarray) -> None:
        flags = np.asarray(anomalous, dtype=bool)
        if flags.shape != (len(batch),):
            raise ValueError(f"anomalous has shape {flags.shape}, expected ({len(batch)},)")
        self.collect_fits()
        keep = _ns(self.cfg.history)
        touched = []
        for i in np.argsort(batch.timestamps, kind="stable"):
            y = float(batch.values[i])
            if not math.isfinite(y):
                continue
            key = str(batch.series[i])
            st = self._series.setdefault(key, _Series())
            t = int(batch.timestamps[i])
            st.ts.append(t)
            st.y.append(y)
            st.flagged.append(bool(flags[i]))
            st.vol.append(float(batch.volumes[i]))
            cut = 0
            while st.ts[cut] < t - keep:
                cut += 1
            if cut:
                del st.ts[:cut], st.y[:cut], st.flagged[:cut], st.vol[:cut]
            self._blobs.pop(key, None)
            touched.append(key)
        for key in dict.fromkeys(touched):
            self._maybe_refit(key)
        self.collect_fits()

    def _maybe_refit(self, key: str) -> None:
        st = self._series[key]
        if key in self._pending or not st.ts:
            return
        last = st.ts[-1]
        if st.retry_at is not None and last < st.retry_at:
            return
        if st.fitted_at is None:
            due = last - st.ts[0] >= _ns(self.cfg.min_history)
        else:
            due = last - st.fitted_at >= _ns(self.cfg.refit)
        if not due:
            return
        ts = np.asarray(st.ts, np.int64)
        y = np.asarray(st.y, np.float64)
        fl = np.asarray(st.flagged, bool)
        vol = np.asarray(st.vol, np.float64)
        recent = ts > last - _ns(self.cfg.refit)
        if fl[recent].mean() < 0.5:  # an incident is left out; a new regime is learned
            ts, y, vol = ts[~fl], y[~fl], vol[~fl]
        if len(ts) < 3:
            return
        good = vol[np.isfinite(vol) & (vol > 0)]
        noise = (_domain_flags(y), float(len(good) / np.sum(1.0 / good)) if len(good) else 0.0,
                 float(np.mean(np.maximum(y, 1.0))))
        try:
            fut = self.executor.submit(fit_forecast, ts, y, self._settings, self._step,
                                       self._steps)
        except Exception as exc:  # e.g. a Dask scheduler that went away: retried later
            self._failed(key, st, last, exc)
            return
        self._pending[key] = (fut, last, noise)

    def collect_fits(self) -> None:
        """Install finished fits (their forecasts start after the points they used).

        ``learn`` does this too; the pipeline also calls it at the start of a tick, so a fit
        that finished between ticks scores the very next point."""
        for key, (fut, last, (domain, vref, lref)) in list(self._pending.items()):
            if not fut.done():
                continue
            del self._pending[key]
            st = self._series.get(key)
            if st is None:
                continue
            try:
                if fut.cancelled():
                    raise RuntimeError("the fit was cancelled")
                fc = fut.result()
                if not isinstance(fc, Forecast) or not (
                        len(fc.yhat) == len(fc.lower) == len(fc.upper) > 0):
                    raise TypeError(f"the fit returned {type(fc).__name__}, not a Forecast")
            except Exception as exc:  # the previous forecast keeps scoring
                self._failed(key, st, last, exc)
                continue
            st.t0, st.yhat, st.lo, st.hi = fc.start, fc.yhat, fc.lower, fc.upper
            st.sigma_obs = fc.sigma_obs if math.isfinite(fc.sigma_obs) else 0.0
            st.domain, st.vref, st.lref, st.fitted_at = domain, vref, lref, last
            st.failures, st.retry_at = 0, None
            self._report.seconds.append(fc.seconds)
            self._blobs.pop(key, None)

    def _failed(self, key: str, st: _Series, last: int, exc: BaseException) -> None:
        """Log and count a failed fit; retry after ``retry_after`` x 2^(failures - 1)."""
        st.failures += 1
        wait = min(_ns(self.cfg.retry_after) * 2 ** min(st.failures - 1, 30),
                   _ns(self.cfg.refit))
        st.retry_at = last + wait
        self._report.failures += 1
        self.failures_total += 1
        log.warning("prophet fit of %s failed (%d in a row), retried after %s of data: %s: %s",
                    key, st.failures, timedelta(microseconds=wait // 1_000),
                    type(exc).__name__, exc)

    def pending(self) -> int:
        """Fits submitted and not yet installed."""
        return len(self._pending)

    def pending_futures(self) -> list[Future]:
        """The futures of the fits in flight (to wait on them at shutdown or in tests)."""
        return [fut for fut, _, _ in self._pending.values()]

    def drain_fit_report(self) -> FitReport:
        """Fits installed (their durations) and failed since the last call."""
        report, self._report = self._report, FitReport()
        return report

    # -- checkpoints --------------------------------------------------------------------------

    def get_state(self, series: Sequence[str] | None = None) -> dict[str, bytes]:
        """Per series: its history and the last fit's forecast table (a pending fit is not
        saved; after a restore it is submitted again when the next point arrives)."""
        keys = list(self._series) if series is None else [k for k in series if k in self._series]
        out = {}
        for k in keys:
            blob = self._blobs.get(k)
            if blob is None:
                blob = self._blobs[k] = self._series[k].packed()
            out[k] = blob
        return out

    def set_state(self, states: Mapping[str, bytes]) -> None:
        for key, blob in states.items():
            raw = bytes(blob)
            if raw[:len(_MAGIC)] not in (_MAGIC, _MAGIC_V1):
                raise ValueError(f"state of {key!r} is not a prophet detector record")
            st = _Series.unpack(raw)
            if key in self._pending:
                del self._pending[key]
            self._series[key] = st
            self._blobs[key] = raw if raw[:len(_MAGIC)] == _MAGIC else st.packed()

    def forget(self, series: Sequence[str]) -> None:
        for key in series:
            self._series.pop(key, None)
            self._pending.pop(key, None)
            self._blobs.pop(key, None)
