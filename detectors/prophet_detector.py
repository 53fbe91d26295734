"""``prophet``: Prophet per series, fitted off the tick path, scored from its forecast.

Prophet (daily / weekly / yearly seasonality, country holidays, a custom events calendar)
is far too slow to fit on every tick, so the detector separates the two:

* **Scoring** (on the tick path) only looks up the last fit's forecast: at fit time the
  model predicts ``yhat``, ``yhat_lower`` and ``yhat_upper`` on the metric's time grid for
  ``horizon`` ahead (default twice ``refit``), and that small table is the series' model
  state. ``expected`` is ``yhat``, the band is Prophet's interval, and the score is the tail
  probability of the residual against the band width: with the interval covering
  ``interval_width`` of a Gaussian, ``sigma = (upper - lower) / (2 z_w)`` and
  ``score = P(|T| < |value - yhat| / sigma)`` (Student-t, ``tail_dof``), the same scale as
  every other detector.
* **Fitting** happens on a schedule (``refit: 1d``): ``learn`` appends the point to the
  series' history and, when a refit is due, *submits* it to an executor
  (``concurrent.futures``: the default runs it inline, which keeps backtests and tests
  deterministic; the pipeline can plug a thread pool or a Dask client's executor with
  :meth:`ProphetDetector.set_executor`). A finished fit is picked up by the next ``learn``;
  until then the previous forecast keeps scoring. The fit function is a plain module-level
  function of arrays, so it pickles to worker processes.

Flagged points are left out of the fit (an incident must not become the forecast), unless at
least half of the last ``refit`` window is flagged: then it is a new regime and is learned.
No look-ahead: a fit uses only points already learned, and its forecast starts after them.
"""

from __future__ import annotations

import logging
import math
import pickle
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from detectors.base import Detector, DetectorConfig, Scores, TickBatch
from detectors.registry import register
from detectors.robust_seasonal import t_two_sided_cdf
from monitor.durations import Duration

__all__ = ["InlineExecutor", "ProphetConfig", "ProphetDetector", "fit_forecast"]

_MAGIC = b"CXPF1"
_PREDICT_LOCK = threading.Lock()  # Prophet samples its bands with NumPy's global RNG


def _ns(value: timedelta) -> int:
    return value // timedelta(microseconds=1) * 1_000


class Event(BaseModel):
    """A custom calendar entry: ``{name: black_friday, start: 2026-11-27, end: 2026-11-30}``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> Event:
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


Seasonality = Literal["auto"] | bool


class ProphetConfig(DetectorConfig):
    """Settings of :class:`ProphetDetector`."""

    type: Literal["prophet"] = "prophet"
    daily: Seasonality = Field("auto", description="Daily seasonality (Prophet's option).")
    weekly: Seasonality = Field("auto", description="Weekly seasonality.")
    yearly: Seasonality = Field("auto", description="Yearly seasonality (needs 2 years).")
    holidays: str | None = Field(None, description="Country holidays, e.g. GB, US, DE.")
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
    tail_dof: int = Field(8, ge=1, le=60, description="Student-t dof of the tail probability.")

    @model_validator(mode="after")
    def _check(self) -> ProphetConfig:
        if self.refit <= timedelta(0) or self.history <= timedelta(0):
            raise ValueError("refit and history must be positive durations")
        if self.holidays is not None:
            import holidays as hol

            if self.holidays.upper() not in hol.list_supported_countries():
                raise ValueError(f"unknown holidays country {self.holidays!r}")
        return self


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


def fit_forecast(
    ts_ns: np.ndarray, y: np.ndarray, settings: dict[str, Any], step_ns: int, steps: int
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Fit Prophet on ``(ts_ns, y)`` and forecast ``steps`` points after the last one.

    Returns ``(first forecast ns, yhat, yhat_lower, yhat_upper)``. Module-level and plain
    data in and out, so executors can ship it to other processes.
    """
    import pandas as pd
    from prophet import Prophet

    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    logging.getLogger("prophet").setLevel(logging.WARNING)
    cfg = ProphetConfig.model_validate(settings)
    holidays = None
    if cfg.events:
        rows = [(e.name, pd.Timestamp(d)) for e in cfg.events
                for d in pd.date_range(e.start, e.end, freq="D")]
        holidays = pd.DataFrame(rows, columns=["holiday", "ds"])
    m = Prophet(
        daily_seasonality=cfg.daily, weekly_seasonality=cfg.weekly,
        yearly_seasonality=cfg.yearly, holidays=holidays, interval_width=cfg.interval_width,
        uncertainty_samples=cfg.uncertainty_samples,
        changepoint_prior_scale=cfg.changepoint_prior_scale,
        seasonality_mode=cfg.seasonality_mode,
    )
    if cfg.holidays:
        m.add_country_holidays(country_name=cfg.holidays.upper())
    ds = pd.to_datetime(ts_ns, unit="ns")
    m.fit(pd.DataFrame({"ds": ds, "y": y}))
    start = int(ts_ns[-1]) + step_ns
    future = pd.DataFrame({"ds": pd.to_datetime(start + step_ns * np.arange(steps), unit="ns")})
    with _PREDICT_LOCK:
        rng_state = np.random.get_state()
        np.random.seed(0)  # the same data gives the same band, in every process
        try:
            fc = m.predict(future)
        finally:
            np.random.set_state(rng_state)
    return (start, fc["yhat"].to_numpy(np.float64), fc["yhat_lower"].to_numpy(np.float64),
            fc["yhat_upper"].to_numpy(np.float64))


@dataclass
class _Series:
    ts: list[int] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    flagged: list[bool] = field(default_factory=list)
    fitted_at: int | None = None  # newest point the installed forecast was fitted on
    t0: int = 0  # forecast grid
    yhat: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lo: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hi: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def packed(self) -> bytes:
        return _MAGIC + pickle.dumps(
            (np.asarray(self.ts, np.int64), np.asarray(self.y, np.float64),
             np.asarray(self.flagged, bool), self.fitted_at, self.t0, self.yhat, self.lo,
             self.hi), protocol=5)

    @classmethod
    def unpack(cls, blob: bytes) -> _Series:
        ts, y, fl, fitted_at, t0, yhat, lo, hi = pickle.loads(blob[len(_MAGIC):])
        return cls(ts.tolist(), y.tolist(), fl.tolist(), fitted_at, t0, yhat, lo, hi)


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
        self._pending: dict[str, tuple[Future, int]] = {}
        self._blobs: dict[str, bytes] = {}

    def set_executor(self, executor: Executor) -> None:
        """Run future fits on ``executor`` (a thread pool, or ``dask_client.get_executor()``)."""
        self.executor = executor

    # -- scoring ------------------------------------------------------------------------------

    def score(self, batch: TickBatch) -> Scores:
        out = Scores.empty(len(batch))
        for i, key in enumerate(batch.series.tolist()):
            st = self._series.get(key)
            if st is None or len(st.yhat) == 0:
                continue
            pos = (int(batch.timestamps[i]) - st.t0) / self._step
            if not 0 <= pos <= len(st.yhat) - 1:
                continue
            grid = np.arange(len(st.yhat))
            yhat, lo, hi = (float(np.interp(pos, grid, a)) for a in (st.yhat, st.lo, st.hi))
            out.expected[i], out.lower[i], out.upper[i] = yhat, min(lo, yhat), max(hi, yhat)
            y = float(batch.values[i])
            if math.isfinite(y):
                sigma = max((hi - lo) / (2.0 * self._z_w), 1e-9 * abs(yhat) + 1e-12)
                out.score[i] = float(t_two_sided_cdf(np.array([(y - yhat) / sigma]),
                                                     self.cfg.tail_dof)[0])
        return out

    # -- learning -----------------------------------------------------------------------------

    def learn(self, batch: TickBatch, anomalous: np.ndarray) -> None:
        flags = np.asarray(anomalous, dtype=bool)
        if flags.shape != (len(batch),):
            raise ValueError(f"anomalous has shape {flags.shape}, expected ({len(batch)},)")
        self._collect()
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
            cut = 0
            while st.ts[cut] < t - keep:
                cut += 1
            if cut:
                del st.ts[:cut], st.y[:cut], st.flagged[:cut]
            self._blobs.pop(key, None)
            touched.append(key)
        for key in dict.fromkeys(touched):
            self._maybe_refit(key)
        self._collect()

    def _maybe_refit(self, key: str) -> None:
        st = self._series[key]
        if key in self._pending or not st.ts:
            return
        last = st.ts[-1]
        if st.fitted_at is None:
            due = last - st.ts[0] >= _ns(self.cfg.min_history)
        else:
            due = last - st.fitted_at >= _ns(self.cfg.refit)
        if not due:
            return
        ts = np.asarray(st.ts, np.int64)
        y = np.asarray(st.y, np.float64)
        fl = np.asarray(st.flagged, bool)
        recent = ts > last - _ns(self.cfg.refit)
        if fl[recent].mean() < 0.5:  # an incident is left out; a new regime is learned
            ts, y = ts[~fl], y[~fl]
        if len(ts) < 3:
            return
        fut = self.executor.submit(fit_forecast, ts, y, self._settings, self._step, self._steps)
        self._pending[key] = (fut, last)

    def _collect(self) -> None:
        """Install finished fits (their forecasts start after the points they used)."""
        for key, (fut, last) in list(self._pending.items()):
            if not fut.done():
                continue
            del self._pending[key]
            st = self._series.get(key)
            if st is None:
                continue
            try:
                st.t0, st.yhat, st.lo, st.hi = fut.result()
                st.fitted_at = last
            except Exception:  # a failed fit keeps the previous forecast; retried next refit
                logging.getLogger(__name__).exception("prophet fit of %s failed", key)
                continue
            self._blobs.pop(key, None)

    def pending(self) -> int:
        """Fits submitted and not yet installed."""
        return len(self._pending)

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
            if raw[:len(_MAGIC)] != _MAGIC:
                raise ValueError(f"state of {key!r} is not a prophet detector record")
            st = _Series.unpack(raw)
            if key in self._pending:
                del self._pending[key]
            self._series[key] = st
            self._blobs[key] = raw

    def forget(self, series: Sequence[str]) -> None:
        for key in series:
            self._series.pop(key, None)
            self._pending.pop(key, None)
            self._blobs.pop(key, None)

