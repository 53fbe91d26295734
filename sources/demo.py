"""``type: demo`` — a simulated omnichannel retailer with known, scripted incidents.

Why it exists: ``cxmon demo``, the end-to-end tests and anyone evaluating detectors need data
that looks like real CX telemetry (daily and weekly seasonality, a holiday, trend, noise that
scales with volume) *and* a ground truth to score against (:data:`SCRIPTED_INCIDENTS`). No
network, no database, no fixture files.

Design constraints and how they are met:

* **Pure function of (seed, anchor, time).** Every random number belongs to one UTC day of one
  table: it is drawn from a generator seeded with ``[seed, table index, day number]``. A
  request for any range generates the whole days that cover it and slices, so polling
  ``[a, c)`` returns exactly the rows of ``[a, b)`` + ``[b, c)``; re-polls and restarts agree.
* **Vectorized.** Expected values are computed with NumPy for the whole range at once; the
  draws are one NumPy call per (table, day, column). Four weeks of all four tables take tens of
  milliseconds.
* **Incidents do not disturb anything else.** The baseline uses one random stream and the
  incidents a second one (``[..., day, 1]``), and the incidents are *added* to the baseline
  with exact identities (Poisson(a) + Poisson(b) = Poisson(a + b); binomial thinning of the
  not-yet-abandoned sessions for a higher drop-off rate). So with ``incidents: false`` every
  row is identical except inside the incident windows: a clean control for false-alarm tests.

Tables (``query:`` of a metric is the table name; the timestamp column is ``ts``, the start of
an hour bucket, ``datetime64[ns, UTC]``; counts are ``int64``). Each table has one row per hour
per dimension combination, every hour, so every series is regular:

``checkout``   ts, channel, region, started, abandoned — the checkout journey's funnel.
               Channels web, app, store (the contact centre does not run a checkout funnel in
               this retailer). Drop-off ``abandoned / started`` is ~0.40 web, ~0.30 app,
               ~0.26 store, a little higher at night.
``complaints`` ts, journey, channel, region, complaints — Poisson counts.
``csat``       ts, journey, channel, region, rating_sum, responses — ``rating_sum`` is the sum
               of individual 1-5 ratings, so ``rating_sum / responses`` (~4.1-4.5) carries
               real sampling noise.
``contacts``   ts, journey, channel, region, contacts — negative-binomial contact volume.

Dimensions: channel in web/app/store/contact-centre, region in uk/de/fr/us (stores only in
uk, de and fr), journey in checkout/returns/delivery/support. Daily profiles follow local time
(uk UTC+0, de/fr UTC+1, us UTC-5; no daylight saving, "local-ish"): web and app are low at
night and peak in the evening, stores open 09-21 (a click-and-collect trickle outside), the
contact centre works 08-20 with a small night shift. Denominators (``started``,
``responses``) are at least 1 in every row so no leaf bucket is ever dropped as a zero
denominator. Volumes grow ~0.2 %/day from the anchor.

Day :data:`HOLIDAY_DAYS` (day 14 after the anchor, in each region's local calendar) is a public
holiday: online volume -40 %, stores nearly closed, contact centre halved. It is *not* an
incident; a good detector should not page for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from sources.base import (
    FatalSourceError,
    NoParams,
    PollRequest,
    Source,
    SourceConfig,
    parse_params,
)
from sources.registry import register

__all__ = [
    "CHANNELS",
    "HOLIDAY_DAYS",
    "JOURNEYS",
    "REGIONS",
    "SCRIPTED_INCIDENTS",
    "TABLES",
    "DemoSource",
    "DemoSourceConfig",
    "ResolvedIncident",
    "ScriptedIncident",
    "default_anchor",
    "generate",
    "holidays_at",
    "incidents_at",
]

# The order of these tuples is part of the random seeding: never reorder, only append.
TABLES: tuple[str, ...] = ("checkout", "complaints", "csat", "contacts")
CHANNELS: tuple[str, ...] = ("web", "app", "store", "contact-centre")
REGIONS: tuple[str, ...] = ("uk", "de", "fr", "us")
JOURNEYS: tuple[str, ...] = ("checkout", "returns", "delivery", "support")

COLUMNS: dict[str, tuple[str, ...]] = {
    "checkout": ("ts", "channel", "region", "started", "abandoned"),
    "complaints": ("ts", "journey", "channel", "region", "complaints"),
    "csat": ("ts", "journey", "channel", "region", "rating_sum", "responses"),
    "contacts": ("ts", "journey", "channel", "region", "contacts"),
}

HOLIDAY_DAYS: tuple[int, ...] = (14,)
"""Days after the anchor (local calendar of each region) that are public holidays."""

DEFAULT_HISTORY_DAYS = 28

_HOUR_NS = 3_600 * 10**9
_DAY_OFFSET = 1_000_000  # keeps seed entropy non-negative for any datetime (year >= 1)

# --- the retailer's shape -------------------------------------------------------------------

_WEB, _APP, _STORE, _CC = range(4)
_REGION_WEIGHT = np.array([1.0, 0.9, 0.5, 0.6])  # uk (home market), de, fr, us
_REGION_UTC_OFFSET = np.array([0, 1, 1, -5])  # hours, fixed ("local-ish", no DST)

# Share of the daily peak by local hour, per channel (rows: web, app, store, contact-centre).
_DAILY = np.array(
    [
        [0.20, 0.12, 0.08, 0.06, 0.06, 0.09, 0.18, 0.32, 0.48, 0.58, 0.64, 0.70,
         0.76, 0.74, 0.70, 0.68, 0.70, 0.76, 0.86, 0.96, 1.00, 0.94, 0.72, 0.42],
        [0.24, 0.14, 0.08, 0.06, 0.06, 0.10, 0.24, 0.42, 0.52, 0.55, 0.58, 0.64,
         0.72, 0.68, 0.62, 0.62, 0.66, 0.76, 0.88, 0.98, 1.00, 0.96, 0.78, 0.48],
        [0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.03, 0.45, 0.65, 0.80,
         0.95, 1.00, 0.90, 0.85, 0.90, 0.95, 0.85, 0.70, 0.50, 0.03, 0.02, 0.02],
        [0.06, 0.05, 0.05, 0.05, 0.05, 0.05, 0.06, 0.10, 0.60, 0.90, 1.00, 0.95,
         0.85, 0.85, 0.90, 0.85, 0.80, 0.70, 0.55, 0.40, 0.20, 0.10, 0.08, 0.07],
    ]
)  # fmt: skip
# Day-of-week multipliers (Mon..Sun) per channel: online peaks at the weekend, stores on
# Saturday, the contact centre on Monday and quiet at the weekend.
_WEEKLY = np.array(
    [
        [1.00, 0.97, 0.97, 1.00, 1.02, 1.10, 1.15],
        [0.98, 0.96, 0.96, 0.99, 1.03, 1.12, 1.18],
        [0.85, 0.85, 0.90, 0.95, 1.10, 1.35, 0.90],
        [1.20, 1.05, 1.00, 1.00, 0.95, 0.75, 0.55],
    ]
)
_HOLIDAY = np.array([0.60, 0.60, 0.08, 0.50])  # volume multiplier on a holiday, per channel
_TREND_PER_DAY = 0.002  # volume growth, log scale

# Expected per-hour volume at the daily peak for region weight 1, per (journey, channel).
_CHECKOUT_STARTED = np.array([1100.0, 1000.0, 300.0, 0.0])
_DROPOFF = np.array([0.40, 0.30, 0.26, 0.0])
_DROPOFF_REGION = np.array([0.0, -0.02, 0.02, 0.01])
_COMPLAINTS = np.array(
    [  # web, app, store, contact-centre
        [3.0, 2.5, 1.0, 1.0],  # checkout
        [2.0, 1.2, 9.0, 1.5],  # returns (store returns are the biggest source)
        [12.0, 8.0, 2.0, 8.0],  # delivery (late parcels: the top complaint driver)
        [1.5, 1.2, 0.6, 3.0],  # support
    ]
)
_RESPONSES = np.array(
    [
        [20.0, 18.0, 8.0, 3.0],
        [6.0, 4.0, 8.0, 4.0],
        [10.0, 8.0, 2.0, 6.0],
        [6.0, 5.0, 3.0, 60.0],  # post-call IVR survey after every support call
    ]
)
_CSAT_MEAN = np.array(
    [
        [4.40, 4.50, 4.40, 4.20],
        [4.10, 4.20, 4.20, 4.00],
        [4.20, 4.30, 4.30, 4.10],
        [4.30, 4.30, 4.40, 4.30],
    ]
)
_CSAT_REGION = np.array([0.0, 0.05, -0.05, 0.03])
_CONTACTS = np.array(
    [
        [15.0, 10.0, 5.0, 25.0],
        [12.0, 8.0, 20.0, 30.0],
        [30.0, 25.0, 5.0, 80.0],  # "where is my order" is the biggest contact driver
        [18.0, 12.0, 6.0, 40.0],
    ]
)
_CONTACTS_SHAPE = 100.0  # gamma mixing: ~10 % extra-Poisson variation per cell-hour
_STARTED_SHAPE = 400.0  # ~5 % extra-Poisson variation in checkout sessions
_DROPOFF_WOBBLE = 0.04  # sd on the logit scale, per cell-hour
_CSAT_WOBBLE = 0.04  # sd of the cell-hour mean rating


# --- ground truth ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScriptedIncident:
    """One injected change, relative to the anchor: the ground truth detectors are scored on.

    ``filters`` are the column values of the rows that change (for tables with a ``journey``
    column it includes the journey); the roll-ups that contain those rows change too.
    ``kind``/``size`` are what the generator applies: ``scale`` multiplies a count,
    ``rate_add`` adds to the abandon probability, ``mean_shift`` moves the mean rating.
    Entries sharing a ``group`` are one real-world incident seen in several measures.
    """

    name: str
    journey: str
    table: str
    measure: str
    filters: dict[str, str]
    start_hour: int
    duration_hours: int
    effect: str
    kind: Literal["scale", "rate_add", "mean_shift"]
    size: float
    group: str = ""

    def resolve(self, anchor: datetime) -> ResolvedIncident:
        """The absolute window of this incident for a given anchor."""
        anchor = _check_anchor(anchor)
        start = anchor + timedelta(hours=self.start_hour)
        return ResolvedIncident(
            name=self.name,
            journey=self.journey,
            table=self.table,
            measure=self.measure,
            filters=dict(self.filters),
            effect=self.effect,
            kind=self.kind,
            size=self.size,
            group=self.group or self.name,
            start=start,
            end=start + timedelta(hours=self.duration_hours),
        )


@dataclass(frozen=True, slots=True)
class ResolvedIncident:
    """A scripted incident placed in time: rows with ``start <= ts < end`` are affected."""

    name: str
    journey: str
    table: str
    measure: str
    filters: dict[str, str]
    effect: str
    kind: Literal["scale", "rate_add", "mean_shift"]
    size: float
    group: str  # the name of the incident when it is alone in its group
    start: datetime
    end: datetime

    def covers(self, ts: datetime) -> bool:
        """Whether the hour bucket starting at ``ts`` is inside the incident."""
        return self.start <= ts < self.end


def _h(day: int, hour: int) -> int:
    return day * 24 + hour


SCRIPTED_INCIDENTS: list[ScriptedIncident] = [
    ScriptedIncident(
        name="app-checkout-dropoff-uk",
        journey="checkout",
        table="checkout",
        measure="abandoned",
        filters={"channel": "app", "region": "uk"},
        start_hour=_h(22, 11),
        duration_hours=6,
        effect="app drop-off in uk 0.30 -> 0.55 (started unchanged), e.g. a broken payment SDK",
        kind="rate_add",
        size=0.25,
    ),
    ScriptedIncident(
        name="store-returns-complaints-surge",
        journey="returns",
        table="complaints",
        measure="complaints",
        filters={"journey": "returns", "channel": "store"},
        start_hour=_h(23, 9),
        duration_hours=48,
        effect="store returns complaints x3.5 after a returns-policy change (all regions)",
        kind="scale",
        size=3.5,
    ),
    ScriptedIncident(
        name="contact-centre-csat-dip",
        journey="support",
        table="csat",
        measure="rating_sum",
        filters={"journey": "support", "channel": "contact-centre"},
        start_hour=_h(25, 11),
        duration_hours=8,
        effect="support CSAT in the contact centre 4.3 -> 3.6 (responses unchanged)",
        kind="mean_shift",
        size=-0.7,
    ),
    ScriptedIncident(
        name="delivery-contacts-spike-de",
        journey="delivery",
        table="contacts",
        measure="contacts",
        filters={"journey": "delivery", "region": "de"},
        start_hour=_h(26, 12),
        duration_hours=5,
        effect="delivery contacts in de x2.5 on every channel (a carrier outage)",
        kind="scale",
        size=2.5,
        group="delivery-outage-de",
    ),
    ScriptedIncident(
        name="delivery-complaints-spike-de",
        journey="delivery",
        table="complaints",
        measure="complaints",
        filters={"journey": "delivery", "region": "de"},
        start_hour=_h(26, 12),
        duration_hours=5,
        effect="delivery complaints in de x2 (related measure of the same carrier outage)",
        kind="scale",
        size=2.0,
        group="delivery-outage-de",
    ),
]
"""Ground truth, days 22-26 after the anchor (three clean weeks of history first; day 27 is
quiet). Different groups never overlap in time; the two ``delivery-outage-de`` entries are
one incident seen in two measures of the same journey, in the same window."""


def incidents_at(anchor: datetime) -> list[ResolvedIncident]:
    """:data:`SCRIPTED_INCIDENTS` with absolute ``start``/``end`` for ``anchor``."""
    return [inc.resolve(anchor) for inc in SCRIPTED_INCIDENTS]


def holidays_at(anchor: datetime) -> list[date]:
    """The demo's public holidays as calendar dates (for holiday-aware detectors)."""
    anchor = _check_anchor(anchor)
    return [(anchor + timedelta(days=d)).date() for d in HOLIDAY_DAYS]


def default_anchor(now: datetime) -> datetime:
    """Day 0 of the demo when no anchor is configured: 28 days before today's 00:00 UTC.

    So the scripted incidents always lie in the last week and there are three weeks before
    them, whenever the demo is started.
    """
    if now.tzinfo is None:
        raise ValueError("default_anchor needs a tz-aware time")
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=DEFAULT_HISTORY_DAYS)


def _check_anchor(anchor: datetime) -> datetime:
    if anchor.tzinfo is None:
        raise ValueError("anchor must be tz-aware, e.g. 2024-03-04T00:00:00Z")
    anchor = anchor.astimezone(UTC)
    if (anchor.hour, anchor.minute, anchor.second, anchor.microsecond) != (0, 0, 0, 0):
        raise ValueError(f"anchor must be 00:00 UTC, got {anchor.isoformat()}")
    return anchor


# --- config and source ----------------------------------------------------------------------


class DemoSourceConfig(SourceConfig):
    """The simulated retailer. Same seed and anchor, same data, on any machine."""

    type: Literal["demo"]
    seed: int = Field(7, ge=0, description="random seed; change it for another realisation")
    anchor: datetime | None = Field(
        None,
        description="day 0 of the demo, 00:00 UTC; default: 28 days before today (UTC)",
    )
    incidents: bool = Field(True, description="inject SCRIPTED_INCIDENTS (false: clean data)")

    def label_values(self, query: str | None, label: str) -> tuple[str, ...]:
        """The fixed values of a demo table's column (the journeys of ``complaints``...)."""
        known = {"journey": JOURNEYS, "channel": CHANNELS, "region": REGIONS}
        return known.get(label, ()) if label in COLUMNS.get(query or "", ()) else ()

    @field_validator("anchor")
    @classmethod
    def _anchor_midnight_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _check_anchor(value)


@register("demo")
class DemoSource(Source):
    """Serves :func:`generate` for the table named by the metric's ``query``.

    The anchor is fixed when the source is created (from the config, else from ``now()``
    through :func:`default_anchor`), so a running monitor sees one consistent history.
    """

    Config = DemoSourceConfig
    Params = NoParams  # the query names the table
    config: DemoSourceConfig

    def __init__(
        self,
        name: str,
        config: DemoSourceConfig,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(name, config)
        clock = now or (lambda: datetime.now(UTC))
        self.anchor: datetime = config.anchor or default_anchor(clock())

    @property
    def incidents(self) -> list[ResolvedIncident]:
        """The ground truth of this source (empty when ``incidents: false``)."""
        return incidents_at(self.anchor) if self.config.incidents else []

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        parse_params(NoParams, self.name, request)
        table = (request.query or "").strip()
        if table not in COLUMNS:
            raise FatalSourceError(
                f"source {self.name}: metric {request.metric}: unknown demo table "
                f"{request.query!r}; set query to one of: {', '.join(TABLES)}"
            )
        try:
            return generate(
                table,
                request.since,
                request.until,
                seed=self.config.seed,
                anchor=self.anchor,
                incidents=self.config.incidents,
            )
        except ValueError as exc:
            raise FatalSourceError(f"source {self.name}: metric {request.metric}: {exc}") from exc


# --- generation -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Cells:
    """The dimension combinations of one table, in a fixed order (part of the seeding)."""

    journey: np.ndarray
    channel: np.ndarray
    region: np.ndarray
    names: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.channel)


def _cells(table: str) -> _Cells:
    journeys = [0] if table == "checkout" else list(range(len(JOURNEYS)))
    channels = [_WEB, _APP, _STORE] if table == "checkout" else list(range(len(CHANNELS)))
    combos = [
        (j, c, r)
        for j in journeys
        for c in channels
        for r in range(len(REGIONS))
        if not (c == _STORE and REGIONS[r] == "us")
    ]
    j, c, r = (np.array(x, dtype=np.int64) for x in zip(*combos, strict=True))
    names = {
        "journey": np.array(JOURNEYS, dtype=object)[j],
        "channel": np.array(CHANNELS, dtype=object)[c],
        "region": np.array(REGIONS, dtype=object)[r],
    }
    return _Cells(journey=j, channel=c, region=r, names=names)


_CELLS: dict[str, _Cells] = {t: _cells(t) for t in TABLES}

_BETAS = np.linspace(-8.0, 8.0, 4001)
_STARS = np.arange(1, 6, dtype=np.float64)
_MEAN_OF_BETA = (np.exp(np.outer(_BETAS, _STARS - 3)) @ _STARS) / np.exp(
    np.outer(_BETAS, _STARS - 3)
).sum(axis=1)


def _rating_pvals(mean: np.ndarray) -> np.ndarray:
    """Probabilities of 1..5 stars with the given means (exponential tilt), shape (..., 5).

    A smooth one-parameter family: higher mean = more 5s and fewer 1s, like real CSAT.
    """
    beta = np.interp(np.clip(mean, 1.05, 4.95), _MEAN_OF_BETA, _BETAS)
    w = np.exp(beta[..., None] * (_STARS - 3))
    return w / w.sum(axis=-1, keepdims=True)


def _ns(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError(f"time must be tz-aware UTC, got naive {ts.isoformat()}")
    return pd.Timestamp(ts).as_unit("ns").value


def _ceil_hour(ns: int) -> int:
    return -(-ns // _HOUR_NS)


def generate(
    table: str,
    start: datetime,
    end: datetime,
    *,
    seed: int,
    anchor: datetime,
    incidents: bool = True,
) -> pd.DataFrame:
    """Rows of ``table`` for the hour buckets with ``start <= ts < end``.

    Pure: the result depends only on the arguments, and the rows of a range are the rows of
    any split of it. Whole UTC days are drawn (one generator per table, day and stream) and
    then sliced, so the cost of a one-hour poll is one day of one table.

    >>> from datetime import UTC, datetime
    >>> a = datetime(2024, 3, 4, tzinfo=UTC)
    >>> df = generate("checkout", a, datetime(2024, 3, 4, 2, tzinfo=UTC), seed=7, anchor=a)
    >>> list(df.columns), len(df)  # 2 hours x 11 (channel, region) combinations
    (['ts', 'channel', 'region', 'started', 'abandoned'], 22)
    """
    if table not in COLUMNS:
        raise ValueError(f"unknown demo table {table!r}; valid tables: {', '.join(TABLES)}")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    anchor = _check_anchor(anchor)
    h0 = _ceil_hour(_ns(start))
    h1 = max(_ceil_hour(_ns(end)), h0)
    cells = _CELLS[table]
    if h1 == h0:
        return _frame(table, cells, np.empty(0, np.int64), {}, np.empty(0, bool))

    d0, d1 = h0 // 24, (h1 - 1) // 24 + 1
    hours = np.arange(d0 * 24, d1 * 24, dtype=np.int64)
    anchor_h = _ns(anchor) // _HOUR_NS
    base = _expected(cells, hours, anchor_h)
    effects = _effects(table, cells, hours, anchor_h) if incidents else None
    drawn = _draw(table, cells, base, effects, seed=seed, d0=d0, d1=d1)

    keep = (hours >= h0) & (hours < h1)
    return _frame(table, cells, hours, drawn, keep)


def _expected(cells: _Cells, hours: np.ndarray, anchor_h: int) -> dict[str, np.ndarray]:
    """The deterministic part, shape (hours, cells): volume shape and local-time calendar."""
    local = hours[:, None] + _REGION_UTC_OFFSET[cells.region][None, :]
    hour_of_day = local % 24
    weekday = (local // 24 + 3) % 7  # 1970-01-01 was a Thursday
    local_day = (local - anchor_h) // 24
    ch = np.broadcast_to(cells.channel, local.shape)
    daily = _DAILY[ch, hour_of_day]
    volume = daily * _WEEKLY[ch, weekday]
    holiday = np.isin(local_day, HOLIDAY_DAYS)
    volume = np.where(holiday, volume * _HOLIDAY[ch], volume)
    trend = np.exp(_TREND_PER_DAY * (hours - anchor_h) / 24.0)[:, None]
    volume = volume * trend * _REGION_WEIGHT[cells.region][None, :]
    return {"volume": volume, "daily": daily, "weekend": (weekday >= 5).astype(np.float64)}


def _effects(table: str, cells: _Cells, hours: np.ndarray, anchor_h: int) -> dict[str, np.ndarray]:
    """Per (hour, cell) incident parameters: count multiplier, rate add, mean shift."""
    shape = (len(hours), cells.size)
    scale, rate_add, shift = np.ones(shape), np.zeros(shape), np.zeros(shape)
    for inc in SCRIPTED_INCIDENTS:
        if inc.table != table:
            continue
        cell_ok = np.ones(cells.size, dtype=bool)
        for col, val in inc.filters.items():
            cell_ok &= cells.names[col] == val
        start = anchor_h + inc.start_hour
        hour_ok = (hours >= start) & (hours < start + inc.duration_hours)
        mask = hour_ok[:, None] & cell_ok[None, :]
        if inc.kind == "scale":
            scale = np.where(mask, scale * inc.size, scale)
        elif inc.kind == "rate_add":
            rate_add = np.where(mask, rate_add + inc.size, rate_add)
        else:
            shift = np.where(mask, shift + inc.size, shift)
    return {"scale": scale, "rate_add": rate_add, "shift": shift}


def _rngs(seed: int, table: str, day: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The baseline and incident generators of one (table, UTC day)."""
    key = [seed, TABLES.index(table), day + _DAY_OFFSET]
    return np.random.default_rng([*key, 0]), np.random.default_rng([*key, 1])


def _draw(
    table: str,
    cells: _Cells,
    base: dict[str, np.ndarray],
    effects: dict[str, np.ndarray] | None,
    *,
    seed: int,
    d0: int,
    d1: int,
) -> dict[str, np.ndarray]:
    """Draw the measures day by day (each day from its own generators), vectorized inside."""
    out: dict[str, list[np.ndarray]] = {}
    j = cells.journey[None, :]
    c = cells.channel[None, :]
    r = cells.region[None, :]
    for i, day in enumerate(range(d0, d1)):
        sl = slice(i * 24, (i + 1) * 24)
        vol = base["volume"][sl]
        rng, rng_inc = _rngs(seed, table, day)
        eff = {k: v[sl] for k, v in effects.items()} if effects is not None else None
        if table == "checkout":
            shape = (base["daily"][sl], base["weekend"][sl])
            cols = _draw_checkout(rng, rng_inc, vol, shape, c, r, eff)
        elif table == "complaints":
            lam = vol * _COMPLAINTS[j, c]
            counts = rng.poisson(lam)
            if eff is not None:
                counts = counts + rng_inc.poisson(lam * (eff["scale"] - 1.0))
            cols = {"complaints": counts}
        elif table == "contacts":
            lam = vol * _CONTACTS[j, c]
            lam = lam * rng.gamma(_CONTACTS_SHAPE, 1.0 / _CONTACTS_SHAPE, size=lam.shape)
            counts = rng.poisson(lam)
            if eff is not None:
                counts = counts + rng_inc.poisson(lam * (eff["scale"] - 1.0))
            cols = {"contacts": counts}
        else:
            cols = _draw_csat(rng, rng_inc, vol, j, c, r, eff)
        for k, v in cols.items():
            out.setdefault(k, []).append(np.asarray(v, dtype=np.int64))
    return {k: np.concatenate(v).reshape(-1) for k, v in out.items()}


def _draw_checkout(
    rng: np.random.Generator,
    rng_inc: np.random.Generator,
    vol: np.ndarray,
    shape: tuple[np.ndarray, np.ndarray],
    c: np.ndarray,
    r: np.ndarray,
    eff: dict[str, np.ndarray] | None,
) -> dict[str, np.ndarray]:
    """Sessions, then abandons as Binomial(started, p); an incident abandons extra sessions
    among those that completed (thinning), which is exactly Binomial(started, p + add)."""
    daily, weekend = shape
    lam = vol * _CHECKOUT_STARTED[c]
    lam = lam * rng.gamma(_STARTED_SHAPE, 1.0 / _STARTED_SHAPE, size=lam.shape)
    started = np.maximum(rng.poisson(lam), 1)
    p = _DROPOFF[c] + _DROPOFF_REGION[r] + 0.06 * (1.0 - daily) + 0.01 * weekend
    logit = np.log(p / (1.0 - p)) + rng.normal(0.0, _DROPOFF_WOBBLE, size=p.shape)
    p = 1.0 / (1.0 + np.exp(-logit))
    abandoned = rng.binomial(started, p)
    if eff is not None:
        extra = np.clip(eff["rate_add"], 0.0, 0.95 - p)
        q = np.where(extra > 0, extra / (1.0 - p), 0.0)
        abandoned = abandoned + rng_inc.binomial(started - abandoned, q)
    return {"started": started, "abandoned": abandoned}


def _draw_csat(
    rng: np.random.Generator,
    rng_inc: np.random.Generator,
    vol: np.ndarray,
    j: np.ndarray,
    c: np.ndarray,
    r: np.ndarray,
    eff: dict[str, np.ndarray] | None,
) -> dict[str, np.ndarray]:
    """Responses, then each response's 1-5 rating (as multinomial counts per cell-hour).

    Inside an incident the ratings are redrawn from the incident stream with a lower mean,
    so everything outside it is untouched.
    """
    responses = np.maximum(rng.poisson(vol * _RESPONSES[j, c]), 1)
    mean = _CSAT_MEAN[j, c] + _CSAT_REGION[r] + rng.normal(0.0, _CSAT_WOBBLE, size=vol.shape)
    mean = mean - 0.1 * (c == _CC) * vol  # long queues at peak hours cost a little CSAT
    stars = rng.multinomial(responses, _rating_pvals(mean)) @ np.arange(1, 6)
    if eff is not None:
        hit = eff["shift"] != 0
        if hit.any():
            pvals = _rating_pvals(mean[hit] + eff["shift"][hit])
            redrawn = rng_inc.multinomial(responses[hit], pvals)
            stars = stars.copy()
            stars[hit] = redrawn @ np.arange(1, 6)
    return {"rating_sum": stars, "responses": responses}


def _frame(
    table: str,
    cells: _Cells,
    hours: np.ndarray,
    drawn: Mapping[str, np.ndarray],
    keep: np.ndarray,
) -> pd.DataFrame:
    """Assemble the rows (ordered by ts, then dimension combination) of the kept hours."""
    kept_hours = hours[keep]
    n = len(kept_hours) * cells.size
    ts = pd.DatetimeIndex(
        np.repeat(kept_hours * _HOUR_NS, cells.size).astype("datetime64[ns]")
    ).tz_localize("UTC")
    row_keep = np.repeat(keep, cells.size)
    data: dict[str, object] = {"ts": ts}
    for col in COLUMNS[table][1:]:
        if col in cells.names:
            data[col] = pd.array(np.tile(cells.names[col], len(kept_hours)), dtype="str")
        else:
            values = drawn[col][row_keep] if n else np.empty(0, np.int64)
            data[col] = values.astype(np.int64, copy=False)
    return pd.DataFrame(data, columns=list(COLUMNS[table]))
