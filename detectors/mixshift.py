"""Mix shift: a rate's total moved because its volume moved between parts, not because any
part's rate changed (Simpson's paradox in an alert).

A checkout drop-off rate of 0.30 overall can rise to 0.36 with every channel's own rate
unchanged, when traffic moves to the mobile web, whose drop-off is always higher. The
dimensional root cause (:mod:`detectors.rootcause`) compares each part with its expected
*rate* and rightly finds no culprit; this module says what did move. With ``w`` the parts'
volume shares and ``r`` their rates, the change of the total from its usual value splits
exactly (shift-share analysis) into::

    R_now - R_usual = sum w_now (r_now - r_usual)    rate effect (the root cause's)
                    + sum (w_now - w_usual) r_usual  mix effect (this module's)

and the mix effect of a dimension value ``v`` is ``(W_now(v) - W_usual(v)) (r_usual(v) -
R_usual)``: a value that gained volume and usually has a higher rate than the whole pushes
the total up. The change is called a mix shift when the mix effect is at least half of it,
and the value with the largest effect is named, unless a value lost all its volume (then it
is: the others only took its share). When that value carries less than ``NAMED_PORTION`` of its
dimension's mix effect (traffic moved to web *and* to the app), the next values of the same
dimension are named too (``also``, at most ``MAX_ALSO``) until they do.

>>> import pandas as pd
>>> parts = pd.DataFrame({"channel": ["app", "web"], "region": ["uk", "uk"]})
>>> found = mix_shift(parts, ["channel", "region"], numerator=[90.0, 300.0],
...                   denominator=[300.0, 600.0], expected_rate=[0.3, 0.5],
...                   usual_volume=[600.0, 300.0])
>>> found.dimension, found.value, round(found.share_usual, 2), round(found.share_now, 2)
('channel', 'web', 0.33, 0.67)
>>> round(found.portion, 2), round(found.rate_now, 3), round(found.rate_overall, 3)
(1.0, 0.433, 0.367)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MAX_ALSO", "MIN_PORTION", "NAMED_PORTION", "MixShift", "mix_shift"]

#: The mix effect must be at least this part of the total's change to be reported.
MIN_PORTION = 0.5
#: The values named must carry at least this part of their dimension's mix effect ...
NAMED_PORTION = 0.7
#: ... naming at most this many besides the first.
MAX_ALSO = 2


@dataclass(frozen=True, slots=True)
class MixShift:
    """The dimension value whose change of volume share moved the total most."""

    dimension: str
    value: str
    share_usual: float  # of the total volume, usually (same time on previous days)
    share_now: float
    rate_usual: float  # the value's usual rate
    rate_overall: float  # the total's usual rate, at the usual mix
    rate_now: float  # the total's rate now
    portion: float  # of the total's change that the whole mix shift explains
    #: more values of the same dimension that moved the total the same way, strongest first:
    #: ``{"value", "share_usual", "share_now", "rate_usual"}`` each
    also: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()
               if k != "also"}
        if self.also:
            out["also"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in a.items()}
                           for a in self.also]
        return out


def mix_shift(
    parts: pd.DataFrame,
    dimensions: Sequence[str],
    *,
    numerator: Sequence[float] | np.ndarray,
    denominator: Sequence[float] | np.ndarray,
    expected_rate: Sequence[float] | np.ndarray,
    usual_volume: Sequence[float] | np.ndarray,
) -> MixShift | None:
    """The mix shift behind a rate's change, or None when the parts' own rates explain most
    of it (or there is no usual volume to compare with). ``parts`` holds each part's
    dimension values; a part without an expected rate counts at its actual rate."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.nan_to_num(np.asarray(denominator, dtype=np.float64), nan=0.0)
    usual = np.nan_to_num(np.asarray(usual_volume, dtype=np.float64), nan=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        actual_rate = np.where(den > 0, num / den, np.nan)
    rate = np.asarray(expected_rate, dtype=np.float64)
    rate = np.where(np.isfinite(rate), rate, actual_rate)
    ok = np.isfinite(rate) & np.isfinite(num)
    if not ok.any() or den[ok].sum() <= 0 or usual[ok].sum() <= 0:
        return None
    num, den, usual, rate = num[ok], den[ok], usual[ok], rate[ok]
    w_now, w_usual = den / den.sum(), usual / usual.sum()
    overall = float(w_usual @ rate)
    now = float(num.sum() / den.sum())
    change = now - overall
    mix = float((w_now - w_usual) @ rate)
    if change == 0.0 or mix / change < MIN_PORTION:
        return None
    sign = np.sign(change)
    best: tuple[float, MixShift] | None = None
    if len(parts) != len(ok):
        raise ValueError(f"parts has {len(parts)} rows for {len(ok)} values")
    labels = parts.loc[ok]
    for dim in dimensions:
        codes, values = pd.factorize(labels[dim].astype(str))
        k = len(values)
        share_now = np.bincount(codes, w_now, k)
        share_usual = np.bincount(codes, w_usual, k)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate_usual = np.where(share_usual > 0, np.bincount(codes, w_usual * rate, k)
                                  / share_usual,
                                  np.bincount(codes, w_now * rate, k) / share_now)
        effect = sign * (share_now - share_usual) * (rate_usual - overall)
        # a value that lost all its volume is the news (its tracking broke, it went down),
        # though the values that took its share show the larger effect
        vanished = (share_now == 0) & (share_usual > 0) & (effect > 0)
        i = int(np.nanargmax(np.where(vanished, np.inf, effect)))
        if not effect[i] > 0:
            continue
        also = tuple({"value": str(values[j]), "share_usual": float(share_usual[j]),
                      "share_now": float(share_now[j]), "rate_usual": float(rate_usual[j])}
                     for j in ([] if vanished[i] else _also(effect, i)))
        found = MixShift(dim, str(values[i]), float(share_usual[i]), float(share_now[i]),
                         float(rate_usual[i]), overall, now, mix / change, also)
        if best is None or effect[i] > best[0]:
            best = (float(effect[i]), found)
    return best[1] if best is not None else None


def _also(effect: np.ndarray, first: int) -> list[int]:
    """Indices of the values to name after ``first``: the strongest others with a positive
    effect, until the named ones carry ``NAMED_PORTION`` of the dimension's positive effect.

    >>> _also(np.array([0.5, 0.3, 0.2, -0.1]), 0), _also(np.array([0.9, 0.1]), 0)
    ([1], [])
    """
    pos = np.where(np.isfinite(effect) & (effect > 0), effect, 0.0)
    total = float(pos.sum())
    named = float(pos[first])
    out: list[int] = []
    for j in np.argsort(-pos, kind="stable").tolist():
        if named >= NAMED_PORTION * total or len(out) >= MAX_ALSO or pos[j] <= 0:
            break
        if j != first:
            out.append(j)
            named += float(pos[j])
    return out
