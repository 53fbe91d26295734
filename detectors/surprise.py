"""``surprise``: a streaming change detector for irregular, unseasonal machine and business
series, scored like Numenta's anomaly likelihood; the default of ``cxmon bench nab``.

Model, per series (every step vectorized over the series of a tick; all memories are given
in points, so it needs no interval)::

    error     = value - EW mean of past values            (half-life predict_halflife)
    z         = min(|error| / EW mean |error|, z_clip)     (scale half-life scale_halflife)
    short     = mean of the last ``window`` z
    surprise  = -log10 P(N > (short - mu) / sd)            mu, sd: EW moments of ``short``
                                                           (half-life likelihood_halflife)
    shift     = the same test on |mean of the last shift_window values - EW mean| / EW sd
                (half-life shift_halflife): a level shift that the fast mean absorbs
    decades   = max(surprise, shift_weight * shift)
    score     = 1 - 10 ** -decades                         (= 1 - p, as every detector)

Why: most anomalies in machine and business data are a burst of bad predictions (spikes,
jumps, a changed rhythm). Averaging the prediction error over a few points and comparing it
with the series' *own* history of such averages (rather than with a fixed Gaussian) makes the
score a tail probability calibrated per series, so one threshold suits noisy and quiet series
alike (Ahmad et al. 2017, "anomaly likelihood"). After a point reaches
``refractory_decades`` the detector reports 0 for ``refractory`` points: the first point of an
incident carries the news and its echo is not reported again (ARTime and CAD-OSE do the
same), while learning goes on.

Example: a flat noisy series, then a jump that lasts (one point moves ``short`` by at most
``z_clip / window``, so a single spike needs about two points to reach p = 1e-3).

>>> from datetime import timedelta
>>> import numpy as np
>>> det = Surprise(SurpriseConfig(), interval=timedelta(minutes=5))
>>> rng = np.random.default_rng(1)
>>> step = 300 * 10**9
>>> for t in range(500):
...     batch = TickBatch.of(["cpu"], [t * step], [50.0 + rng.normal()])
...     det.learn(batch, np.zeros(1, dtype=bool))
>>> bool(det.score(TickBatch.of(["cpu"], [500 * step], [50.0])).score[0] < 0.9)
True
>>> jump = [TickBatch.of(["cpu"], [t * step], [80.0]) for t in (500, 501)]
>>> first = det.score(jump[0]).score[0]
>>> det.learn(jump[0], np.zeros(1, dtype=bool))
>>> bool(0.9 < first < 0.999), bool(det.score(jump[1]).score[0] > 0.999)
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import Field

from detectors.base import DetectorConfig, Scores, TickBatch
from detectors.records import RecordDetector
from detectors.registry import register

__all__ = ["Surprise", "SurpriseConfig", "log10_gauss_tail"]

_LN10 = math.log(10.0)
_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
         -1.13520398, 1.48851587, -0.82215223, 0.17087277)


def log10_gauss_tail(z: np.ndarray) -> np.ndarray:
    """``-log10 P(N > z)`` for a standard normal, 0 for ``z <= 0``; computed in log space
    (Numerical Recipes' ``erfcc``, relative error < 1.2e-7), so it never underflows.

    >>> log10_gauss_tail(np.array([-1.0, 1.6448536, 5.0])).round(4).tolist()
    [0.0, 1.301, 6.5426]
    """
    zz = np.maximum(np.asarray(z, dtype=np.float64), 0.0)
    x = zz / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * x)
    poly = np.full_like(t, _ERFC[-1])
    for c in reversed(_ERFC[:-1]):
        poly = poly * t + c
    log_tail = math.log(0.5) + np.log(t) - x * x + poly
    return np.where(zz > 0.0, np.maximum(-log_tail / _LN10, 0.0), 0.0)


class SurpriseConfig(DetectorConfig):
    """Settings of :class:`Surprise`. Memories are in points (rows), not durations."""

    type: Literal["surprise"] = "surprise"
    predict_halflife: float = Field(3.0, gt=0.0, le=1e6, description="Half-life (points) of "
                                    "the EW mean that predicts the next value.")
    scale_halflife: float = Field(200.0, gt=0.0, le=1e7, description="Half-life (points) of "
                                  "the mean absolute prediction error (the scale).")
    window: int = Field(10, ge=1, le=1000, description="Points averaged before the "
                        "likelihood test.")
    likelihood_halflife: float = Field(1000.0, gt=0.0, le=1e7, description="Half-life "
                                       "(points) of the history the averaged error is "
                                       "compared with.")
    z_clip: float = Field(20.0, gt=0.0, le=1e3, description="Cap of one point's error in "
                          "scales.")
    shift_window: int = Field(10, ge=1, le=1000, description="Points of the short mean in the "
                              "level-shift test.")
    shift_halflife: float = Field(2000.0, gt=0.0, le=1e7, description="Half-life (points) of "
                                  "the long mean and sd in the level-shift test.")
    shift_weight: float = Field(1.0, ge=0.0, le=10.0, description="Weight of the level-shift "
                                "test (0 disables it).")
    refractory: int = Field(250, ge=0, le=10**7, description="Points reported as 0 after a "
                            "point reaches refractory_decades (0 disables).")
    refractory_decades: float = Field(3.3, gt=0.0, le=300.0, description="-log10 p that "
                                      "starts the refractory period.")
    anomaly_learning: float = Field(1.0, gt=0.0, le=1.0, description="Scale learning-rate "
                                    "factor for points flagged anomalous.")
    z_band: float = Field(3.0, gt=0.0, le=50.0, description="Half-width of the band in "
                          "scales.")


def _rate(halflife: float) -> float:
    return 1.0 - 2.0 ** (-1.0 / halflife)


def _ew_moments(mean: np.ndarray, var: np.ndarray, value: np.ndarray, n: np.ndarray,
                rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``value``: running (equal weights) for the first ``1 / rate``
    points, exponentially weighted after."""
    d = value - mean
    warm = n > 1.0 / rate
    return (np.where(warm, mean + rate * d, mean + d / (n + 1.0)),
            np.where(warm, (1.0 - rate) * (var + rate * d * d),
                     var + (d * d * n / (n + 1.0) - var) / (n + 1.0)))


@dataclass(slots=True)
class _Step:
    """Everything one batch implies for the series that have state (score and update)."""

    sel: np.ndarray  # positions in the batch
    rows: np.ndarray  # state rows
    x: np.ndarray
    err: np.ndarray
    scale: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    z: np.ndarray
    bsum: np.ndarray
    short: np.ndarray
    bs: np.ndarray
    long_short: np.ndarray
    decades: np.ndarray
    ready: np.ndarray


@register("surprise")
class Surprise(RecordDetector):
    """Anomaly likelihood of the averaged prediction error, plus a level-shift test."""

    Config = SurpriseConfig
    record_magic = b"CXSP1"

    def __init__(self, config: DetectorConfig, *, interval: timedelta) -> None:
        super().__init__(config, interval=interval)
        assert isinstance(config, SurpriseConfig)
        self.cfg: SurpriseConfig = config
        w, w2 = config.window, config.shift_window
        self._set_record(np.dtype([
            ("m", "<f8"), ("s", "<f8"), ("lo", "<f8"), ("hi", "<f8"), ("bsum", "<f8"),
            ("mu1", "<f8"), ("var1", "<f8"), ("bs", "<f8"), ("ml", "<f8"), ("vl", "<f8"),
            ("mu2", "<f8"), ("var2", "<f8"), ("n", "<i8"), ("cool", "<i8"),
            ("buf", "<f8", (w,)), ("xbuf", "<f8", (w2,)),
        ]))
        self._a_pred = _rate(config.predict_halflife)
        self._a_scale = _rate(config.scale_halflife)
        self._a_lik = _rate(config.likelihood_halflife)
        self._a_shift = _rate(config.shift_halflife)

    # ------------------------------------------------------------------ model

    def _compute(self, batch: TickBatch) -> _Step:
        c = self.cfg
        rows_all = self._rows(batch.series)
        sel = np.flatnonzero((rows_all >= 0) & np.isfinite(batch.values))
        rows = rows_all[sel]
        st = self._st[rows]
        x = batch.values[sel]
        n = st["n"]
        lo = np.minimum(st["lo"], x)
        hi = np.maximum(st["hi"], x)
        err = x - st["m"]
        scale = np.maximum(np.maximum(st["s"], 1e-3 * (hi - lo)), 1e-9 * np.abs(st["m"]) + 1e-12)
        z = np.minimum(np.abs(err) / scale, c.z_clip)
        idx = np.arange(len(rows))
        bsum = st["bsum"] + z - st["buf"][idx, n % c.window]
        short = bsum / np.minimum(n + 1, c.window)
        ready = n > c.window
        with np.errstate(divide="ignore", invalid="ignore"):
            decades = log10_gauss_tail((short - st["mu1"]) / np.sqrt(np.maximum(st["var1"], 1e-6)))
            bs = st["bs"] + x - st["xbuf"][idx, (n + 1) % c.shift_window]
            sd2 = np.maximum(np.maximum(np.sqrt(st["vl"]), 1e-3 * (hi - lo)), 1e-12)
            z2 = np.minimum(np.abs(bs / c.shift_window - st["ml"]) / sd2, c.z_clip)
            shift = log10_gauss_tail((z2 - st["mu2"]) / np.sqrt(np.maximum(st["var2"], 1e-6)))
        if c.shift_weight > 0:
            decades = np.maximum(decades, c.shift_weight * shift)
        decades = np.where(ready, decades, 0.0)
        return _Step(sel, rows, x, err, scale, lo, hi, z, bsum, short, bs, z2, decades, ready)

    # ------------------------------------------------------------------ contract

    def score(self, batch: TickBatch) -> Scores:
        """Score the tick (no mutation); NaN until ``window`` points have been learned."""
        out = Scores.empty(len(batch))
        if len(batch) == 0 or not self._slot:
            return out
        sp = self._step(batch)
        st = self._st[sp.rows]
        quiet = st["cool"] > 0
        score = np.where(quiet, 0.0, -np.expm1(-sp.decades * _LN10))
        out.expected[sp.sel] = st["m"]
        out.lower[sp.sel] = st["m"] - self.cfg.z_band * sp.scale
        out.upper[sp.sel] = st["m"] + self.cfg.z_band * sp.scale
        out.score[sp.sel] = np.where(sp.ready, score, np.nan)
        return out

    def _learn_points(self, batch: TickBatch, flagged: np.ndarray) -> None:
        """A new series starts from its first value; the others are updated."""
        keys = batch.series.tolist()
        new = [k for k in keys if k not in self._slot]
        if not new:
            self._update(batch, flagged)
            return
        is_new = np.isin(batch.series, np.array(new, dtype=object))
        self._create(new, batch.values[is_new])
        old = np.flatnonzero(~is_new)
        if len(old):
            self._update(batch.take(old), flagged[old])

    def _create(self, keys: list[str], x: np.ndarray) -> None:
        start = self._add_series(keys)
        rec = self._st[start:]
        rec["m"] = rec["lo"] = rec["hi"] = rec["ml"] = x
        rec["xbuf"] = x[:, None]
        rec["bs"] = x * self.cfg.shift_window
        self._st[start:] = rec

    def _update(self, batch: TickBatch, flagged: np.ndarray) -> None:
        c = self.cfg
        sp = self._step(batch)
        st = self._st[sp.rows]
        n = st["n"].astype(np.float64)
        idx = np.arange(len(sp.rows))
        st["lo"], st["hi"] = sp.lo, sp.hi
        st["buf"][idx, st["n"] % c.window] = sp.z
        st["bsum"] = sp.bsum
        st["xbuf"][idx, (st["n"] + 1) % c.shift_window] = sp.x
        st["bs"] = sp.bs
        for mu, var, v in (("mu1", "var1", sp.short), ("mu2", "var2", sp.long_short)):
            st[mu], st[var] = _ew_moments(st[mu], st[var], v, n, self._a_lik)
        fire = (c.refractory > 0) & sp.ready & (sp.decades >= c.refractory_decades)
        st["cool"] = np.where(st["cool"] > 0, st["cool"] - 1, np.where(fire, c.refractory, 0))
        st["m"] = st["m"] + self._a_pred * sp.err
        abs_err = np.abs(sp.err)
        f = np.where(flagged[sp.sel], c.anomaly_learning, 1.0)
        settled = n > 30
        clipped = np.minimum(abs_err, 5 * sp.scale)
        st["s"] = np.where(settled, st["s"] + f * self._a_scale * (clipped - st["s"]),
                           st["s"] + (abs_err - st["s"]) / (n + 1.0))
        st["ml"], st["vl"] = _ew_moments(st["ml"], st["vl"], sp.x, n, self._a_shift)
        st["n"] = st["n"] + 1
        self._commit(sp.rows, st)
