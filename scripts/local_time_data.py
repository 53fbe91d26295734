"""Synthetic CX exports of a business that runs on local clocks, for trying ``timezone``.

Writes, under the folder given (default ``exports``), beside ``examples/local_time.yaml``:

* ``tickets_de.csv`` / ``tickets_us.csv``: hourly support tickets of a Berlin and a New York
  desk (UTC timestamps), peaking late morning and mid-afternoon *local* time, lower at
  weekends, 85 % down on German (Bavarian) or US public holidays, up on Black Friday and
  Cyber Monday;
* ``checkout.csv``: 5-minute checkout sessions and orders of the Berlin shop, converting
  better in the evening.

From 2025-12-01 to the last whole hour (the 5-minute file: to the last whole 5 minutes, so a
``cxmon run --once`` right after finds its newest bucket and alerts no "has no data"), so
2026's changes of summer time (Europe: 29 March, 25 October; US: 8 March, 1 November) are
inside. There is no incident in the data: every
anomaly ``cxmon backtest`` reports is a false alarm (``--incident`` triples the Berlin desk's
last three hours, for ``cxmon run --once``). Usage::

    python scripts/local_time_data.py examples/exports [--incident]
    cxmon backtest -c examples/local_time.yaml --start 2026-03-22 --end 2026-04-12
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

START = "2025-12-01"
DE_OFF = {date(2025, 12, 25), date(2025, 12, 26), date(2026, 1, 1), date(2026, 1, 6),
          date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 1), date(2026, 5, 14),
          date(2026, 5, 25), date(2026, 6, 4), date(2026, 10, 3), date(2026, 11, 1)}
US_OFF = {date(2025, 12, 25), date(2026, 1, 1), date(2026, 5, 25), date(2026, 7, 3),
          date(2026, 9, 7), date(2026, 11, 26)}
BOOST = {date(2026, 11, 27): 3.0, date(2026, 11, 28): 2.0, date(2026, 11, 30): 2.5}


def _profile(local: pd.DatetimeIndex, off: set[date]) -> np.ndarray:
    """Expected volume (relative) at each local time."""
    h = np.asarray(local.hour + local.minute / 60, dtype=float)
    day = np.exp(-((h - 11) ** 2) / 8) + 0.8 * np.exp(-((h - 16) ** 2) / 6) + 0.03
    week = np.where(np.asarray(local.day_of_week) >= 5, 0.45, 1.0)
    dates = local.date
    holiday = np.array([0.15 if d in off else 1.0 for d in dates])
    boost = np.array([BOOST.get(d, 1.0) for d in dates])
    return day * week * holiday * boost


def write(out: Path, end: pd.Timestamp, incident: bool = False, seed: int = 57) -> None:
    """The three CSV files under ``out``, up to ``end`` (UTC, exclusive; the hourly files to
    its whole hour, the 5-minute file to its whole 5 minutes)."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    hours = pd.date_range(START, end.floor("h"), freq="1h", tz="UTC", inclusive="left")
    for region, zone, scale, off in (("de", "Europe/Berlin", 120, DE_OFF),
                                     ("us", "America/New_York", 80, US_OFF)):
        lam = scale * _profile(hours.tz_convert(zone), off)
        if incident and region == "de":
            lam[-3:] *= 3
        pd.DataFrame({"hour": hours.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
                      "tickets": rng.poisson(lam)}).to_csv(out / f"tickets_{region}.csv",
                                                           index=False)
    fives = pd.date_range("2026-02-15", end.floor("5min"), freq="5min", tz="UTC", inclusive="left")
    local = fives.tz_convert("Europe/Berlin")
    started = rng.poisson(40 * _profile(local, DE_OFF))
    rate = 0.30 + 0.08 * np.cos((np.asarray(local.hour) - 20) / 24 * 2 * np.pi)
    pd.DataFrame({"ts": fives.strftime("%Y-%m-%dT%H:%M:%SZ"), "started": started,
                  "completed": rng.binomial(started, rate)}).to_csv(out / "checkout.csv",
                                                                     index=False)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    write(Path(args[0] if args else "exports"),
          pd.Timestamp.now("UTC").tz_localize(None), "--incident" in sys.argv)
