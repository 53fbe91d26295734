"""Late data: buckets re-polled through ``late_window`` that differ from what was stored.

Re-polled buckets are stored but never scored again (a streaming detector has moved past
them). A corrected value is what ``late_window`` is for; a bucket that had *no* row when it
was scored is data the detectors never saw, and the owner should hear so and raise ``delay``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

__all__ = ["LateBuckets", "late_buckets"]


@dataclass(frozen=True, slots=True)
class LateBuckets:
    """Per (series, bucket): ``new`` had no stored row before this poll; ``corrected`` had
    a different one. ``oldest_new``: the earliest new bucket (None when there is none)."""

    new: int = 0
    corrected: int = 0
    oldest_new: datetime | None = None


def late_buckets(stored: pd.DataFrame, repolled: pd.DataFrame) -> LateBuckets:
    """Compare re-polled buckets (a measure frame) with the stored ones of the same range
(buckets before the first stored one predate monitoring and are left out).

    >>> ts = pd.to_datetime(["2026-01-05 10:00", "2026-01-05 10:05"], utc=True)
    >>> old = pd.DataFrame({"timestamp": ts[:1], "series": ["a"], "value": [1.0]})
    >>> new = pd.DataFrame({"timestamp": ts, "series": ["a", "a"], "value": [2.0, 5.0]})
    >>> late = late_buckets(old, new)
    >>> late.new, late.corrected, late.oldest_new.isoformat()
    (1, 1, '2026-01-05T10:05:00+00:00')
    """
    if repolled.empty or stored.empty:
        return LateBuckets()
    # before the first stored bucket the metric was not monitored yet: nothing was scored
    repolled = repolled[repolled["timestamp"] >= stored["timestamp"].min()]
    keys = ["series", "timestamp"]
    merged = repolled[[*keys, "value"]].merge(stored[[*keys, "value"]], on=keys, how="left",
                                              suffixes=("", "_stored"), indicator=True)
    is_new = (merged["_merge"] == "left_only").to_numpy()
    a = merged["value"].to_numpy(np.float64)
    b = merged["value_stored"].to_numpy(np.float64)
    same = np.isclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True)
    corrected = int((~is_new & ~same).sum())
    oldest = merged.loc[is_new, "timestamp"].min() if is_new.any() else None
    return LateBuckets(int(is_new.sum()), corrected,
                       None if oldest is None else pd.Timestamp(oldest).to_pydatetime())
