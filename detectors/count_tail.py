"""How rare a low count is: the lower tail of a negative binomial with the detector's mean
and standard deviation (Poisson when the variance is no larger than the mean).

Why: a robust z with a Student-t tail is the right caution for most KPIs, but it badly
understates a count that falls to (almost) nothing. A chat channel that usually takes 25
contacts an hour and takes none has a z of only 5 (severity 11 with 8 degrees of freedom),
while even a count twice as noisy as Poisson makes 0 a 1-in-30-million event. "A channel went
silent" is the incident CX teams most need to hear about in its first hour, so for counts
below their expected value the detector also asks the count distribution.

>>> import numpy as np
>>> s = count_drop_score(np.array([0.0, 0.0, 20.0]), np.array([25.0, 25.0, 25.0]),
...                      np.array([5.0, 50.0 ** 0.5, 5.0]))
>>> (-np.log10(1 - s[:2])).round(1).tolist(), bool(s[2] < 0.8)
([10.6, 7.2], True)
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["count_drop_score"]


def count_drop_score(y: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """``1 - 2 P(X <= y)`` (a two-sided score, like the detector's) for counts ``y`` below
    ``mean``, X negative binomial with that mean and ``sd`` (Poisson if ``sd^2 <= mean``);
    NaN elsewhere (above the mean, non-positive mean, non-finite input)."""
    y = np.asarray(y, dtype=np.float64)
    mu = np.asarray(mean, dtype=np.float64)
    var = np.asarray(sd, dtype=np.float64) ** 2
    out = np.full(y.shape, np.nan)
    ok = np.isfinite(y) & np.isfinite(mu) & np.isfinite(var) & (mu > 0) & (y < mu) & (y >= 0)
    if not ok.any():
        return out
    k, m, v = np.floor(y[ok]), mu[ok], var[ok]
    over = v > m * (1.0 + 1e-9)
    cdf = np.empty(len(k))
    cdf[~over] = special.pdtr(k[~over], m[~over])
    r = m[over] ** 2 / (v[over] - m[over])  # NB size; success probability r / (r + mu)
    cdf[over] = special.betainc(r, k[over] + 1.0, r / (r + m[over]))
    out[ok] = np.clip(1.0 - 2.0 * cdf, 0.0, 1.0)
    return out
