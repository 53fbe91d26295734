"""Numbers in alert text as the metric means them: a unit, a scale, whole counts, the volume.

A metric's display settings (``unit``, ``scale_max``, ``decimals``, ``volume_unit`` in its
config) ride on each payload anomaly as ``"format"``; the anomaly's ``"volume"`` is the
denominator / count behind a ratio or mean. Every notifier renders through these functions,
so Slack, the console and the webhook's ``"text"`` say the same thing::

    CSAT 3.10 / 5 (from 14 responses) vs 4.30 / 5 expected

A payload without ``format`` (no settings, or written before they existed) reads as ever:
``3.53``, ratios ``58.7%`` (``"unit": "percent"``). Pure: no config, no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

__all__ = ["anomaly_format", "band", "clamp_band", "formats_from_config", "number",
           "ranges_from_config", "relative_change", "shown", "suffix", "text_fields",
           "volume_count", "volume_noun", "volume_text"]

#: units written against the number (``58%``); any other unit follows a space (``120 ms``)
_ATTACHED = ("%", "‰")


def formats_from_config(metrics: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Each metric's display settings from its config (duck-typed: ``alerts`` does not import
    ``monitor.config``), defaults filled in; ``counts`` marks a sum (whole counts print whole).

    >>> from types import SimpleNamespace as NS
    >>> csat = NS(name="csat", unit=None, scale_max=5.0, decimals=None, volume_unit=None,
    ...           value=NS(kind="mean", numerator="rating", denominator=None))
    >>> formats_from_config([csat])
    {'csat': {'scale_max': 5.0, 'volume_unit': 'responses'}}
    """
    out: dict[str, dict[str, Any]] = {}
    for m in metrics:
        kind = str(getattr(m.value.kind, "value", m.value.kind))
        fmt: dict[str, Any] = {}
        unit = getattr(m, "unit", None)
        if unit and not (kind == "ratio" and unit == "%"):  # a ratio's % is its default
            fmt["unit"] = unit
        if getattr(m, "scale_max", None) is not None:
            fmt["scale_max"] = float(m.scale_max)
        if getattr(m, "decimals", None) is not None:
            fmt["decimals"] = int(m.decimals)
        elif kind == "sum":
            fmt["counts"] = True
        if kind != "sum":
            den = m.value.denominator
            noun = getattr(m, "volume_unit", None) or (volume_noun(den) if den else "responses")
            if noun:
                fmt["volume_unit"] = noun
        interval = getattr(m, "interval", None)
        if interval is not None and interval >= timedelta(days=1):
            fmt["days"] = True  # whole-day buckets: a time names a date (alerts.display)
        out[m.name] = fmt
    return out


#: a metric's possible values, ``(lowest, highest)``; ``None``: open on that side
Range = tuple[float | None, float | None]


def ranges_from_config(metrics: Iterable[Any]) -> dict[str, Range]:
    """Each metric's possible values, where its config tells them: a sum counts (``>= 0``), a
    ratio read as a percentage is a share (``[0, 1]``), a value with a ``scale_max`` is a score
    on its scale (``[scale_min, scale_max]``, ``scale_min`` 0 unless set: an NPS runs from
    -100, and a band cut at 0 hid its negative side). Detectors model values as unbounded,
    so a band can leave this range (a CSAT band of ``3.47–5.03 / 5``); :func:`clamp_band`
    cuts it back. A ratio with a unit of its own (EUR per order) or a mean without a scale
    is open.

    >>> from types import SimpleNamespace as NS
    >>> def m(name, kind, unit=None, scale_max=None, scale_min=None):
    ...     return NS(name=name, unit=unit, scale_max=scale_max, scale_min=scale_min,
    ...               value=NS(kind=kind))
    >>> ranges_from_config([m("tickets", "sum"), m("dropoff", "ratio"),
    ...                     m("csat", "mean", scale_max=5.0), m("aov", "ratio", unit="EUR"),
    ...                     m("handle_time", "mean"), m("nps", "mean", None, 100.0, -100.0)])
    {'tickets': (0.0, None), 'dropoff': (0.0, 1.0), 'csat': (0.0, 5.0), 'nps': (-100.0, 100.0)}
    """
    out: dict[str, Range] = {}
    for m in metrics:
        kind = str(getattr(m.value.kind, "value", m.value.kind))
        top = getattr(m, "scale_max", None)
        if top is not None:
            bottom = getattr(m, "scale_min", None)
            out[m.name] = (0.0 if bottom is None else float(bottom), float(top))
        elif kind == "sum":
            out[m.name] = (0.0, None)
        elif kind == "ratio" and getattr(m, "unit", None) in (None, "%"):
            out[m.name] = (0.0, 1.0)
    return out


def clamp_band(a: Mapping[str, Any], bounds: Range | None) -> dict[str, Any]:
    """The anomaly ``a`` with its ``expected``, ``lower`` and ``upper`` inside the metric's
    possible values ``bounds`` (:func:`ranges_from_config`): what every output shows, so no
    alert, ``cxmon anomalies`` line or annotation says ``-3–12 tickets``. An observed
    ``value`` outside ``bounds`` shows they do not hold (a sum of refunds can be negative, a
    ratio can pass 100%): that side is left as the detector gave it. Scores are untouched.
    A ``change`` (:func:`relative_change`) is taken again from a clamped ``expected``: a count
    forecast of -0.4 shown as 0 next to ``+2350%`` (from -0.4) read as a contradiction.

    >>> clamp_band({"value": 3.1, "expected": 4.25, "lower": 3.47, "upper": 5.03},
    ...            (0.0, 5.0))
    {'value': 3.1, 'expected': 4.25, 'lower': 3.47, 'upper': 5.0}
    >>> clamp_band({"value": 2.0, "expected": 0.4, "lower": -1.6, "upper": 2.4}, (0.0, None))
    {'value': 2.0, 'expected': 0.4, 'lower': 0.0, 'upper': 2.4}
    >>> clamp_band({"value": -5.0, "expected": 1.0, "lower": -2.0, "upper": 4.0}, (0.0, None))
    {'value': -5.0, 'expected': 1.0, 'lower': -2.0, 'upper': 4.0}
    >>> clamp_band({"value": 4.0, "expected": 5.5, "change": -0.27}, (0.0, 5.0))
    {'value': 4.0, 'expected': 5.0, 'change': -0.2}
    """
    out = dict(a)
    if not bounds:
        return out
    lo, hi = bounds
    value = a.get("value")
    if isinstance(value, int | float) and math.isfinite(value):
        lo = None if lo is not None and value < lo else lo
        hi = None if hi is not None and value > hi else hi
    for key in ("expected", "lower", "upper"):
        v = out.get(key)
        if not isinstance(v, int | float) or not math.isfinite(v):
            continue
        if lo is not None and v < lo:
            out[key] = lo
        elif hi is not None and v > hi:
            out[key] = hi
    if "change" in out and out.get("expected") != a.get("expected"):
        out["change"] = relative_change(value, out["expected"])
    return out


def relative_change(value: Any, expected: Any) -> float | None:
    """``value`` against ``expected`` as a fraction (0.25: +25%), as
    :attr:`monitor.model.Anomaly.change` takes it; ``None`` when unknown or infinite (an
    expected 0), as a payload's ``change`` carries it.

    >>> relative_change(5.0, 4.0), relative_change(-1.0, -2.0), relative_change(3.0, 0.0)
    (0.25, 0.5, None)
    >>> relative_change(0.0, 0.0), relative_change(None, 1.0)
    (0.0, None)
    """
    if not all(isinstance(x, int | float) and math.isfinite(x) for x in (value, expected)):
        return None
    if expected == 0:
        return 0.0 if value == 0 else None
    return (float(value) - float(expected)) / abs(float(expected))


#: words of a column name that say "a count of", not what is counted (``sessions_total``)
_COUNT_WORDS = frozenset({"n", "nb", "num", "number", "count", "cnt", "total", "sum", "qty"})


def volume_noun(column: str) -> str:
    """What a denominator column counts, in words, for the default ``volume_unit``: a
    column name read as ``from 14 sessions_total`` in an alert. Count words go (``total``,
    ``count``, ``n``, ``num``, ...) and what is counted reads as a plural; ``""`` when the
    name says nothing but "count" (then the alert says ``from 14``). Set ``volume_unit``
    for anything else.

    >>> [volume_noun(c) for c in ("sessions_total", "order_count", "n_responses",
    ...                           "started", "survey_replies", "numVisits", "total", "cnt")]
    ['sessions', 'orders', 'responses', 'started', 'survey replies', 'visits', '', '']
    >>> volume_noun("number_of_calls"), volume_noun("total_inquiry"), volume_noun("box_cnt")
    ('calls', 'inquiries', 'boxes')
    """
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+",
                                           column.replace("-", "_"))]
    kept = [w for w in words if w not in _COUNT_WORDS]
    if kept and kept[0] == "of" and len(kept) < len(words):  # "number_of_calls"
        kept = kept[1:]
    if not kept:
        return ""
    if len(kept) < len(words) and not kept[-1].endswith("s"):  # "order_count": orders
        kept[-1] = _plural(kept[-1])
    return " ".join(kept)


def _plural(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return word[:-1] + "ies"
    if word.endswith(("x", "ch", "sh", "z")):
        return word + "es"
    return word + "s"


def anomaly_format(fmt: Mapping[str, Any] | None, value: float | None) -> dict[str, Any]:
    """The ``"format"`` of one payload anomaly: the metric's settings, with a sum's whole
    counts (an observed value without a fraction) printing expected values and bands whole.

    >>> anomaly_format({"counts": True}, 41.0), anomaly_format({"counts": True}, 41.5)
    ({'decimals': 0}, {})
    """
    out = {k: v for k, v in (fmt or {}).items() if k != "counts"}
    if (fmt or {}).get("counts") and value is not None and math.isfinite(value) \
            and float(value).is_integer():
        out["decimals"] = 0
    return out


def _format(a: Mapping[str, Any]) -> Mapping[str, Any]:
    fmt = a.get("format")
    return fmt if isinstance(fmt, Mapping) else {}


def _plain(v: float) -> str:
    """A KPI value for humans: thousands separated, whole from 100 up, else 3 significant
    digits (a forecast of 18.221 complaints reads as 18.2), tiny values to 3 decimals (the
    digits of every notifier, :func:`alerts.notifiers.console.format_number` included)."""
    if abs(v) >= 100 or v == int(v):
        return f"{v:,.0f}"
    if abs(v) < 0.01:
        return f"{v:.3f}"
    text = f"{v:#.3g}".rstrip(".")
    return f"{v:,.0f}" if "e" in text or abs(float(text)) >= 100 else text


def number(a: Mapping[str, Any], value: Any) -> str:
    """``value`` as the anomaly ``a``'s metric reads, without its unit: ``58.7%`` for a rate,
    ``42`` for a count, ``3.10`` with ``decimals: 2``; ``–`` when unknown.

    >>> number({"unit": "percent"}, 0.587), number({"format": {"decimals": 0}}, 41.7)
    ('58.7%', '42')
    >>> number({}, 3.533), number({"format": {"decimals": 0}}, -0.2), number({}, None)
    ('3.53', '0', '–')
    """
    if value is None or not isinstance(value, int | float) or math.isnan(value):
        return "–"
    v = float(value)
    if a.get("unit") == "percent":
        text = f"{_plain(v * 100)}%"
    elif isinstance(d := _format(a).get("decimals"), int):
        text = f"{v:,.{d}f}"
    else:
        text = _plain(v)
    return text[1:] if text.startswith("-") and not text.strip("-0.,%") else text


def suffix(a: Mapping[str, Any]) -> str:
    """What follows each of ``a``'s numbers: its scale and unit (``" / 5"``, ``" ms"``, ``"%"``).

    >>> suffix({"format": {"scale_max": 5.0}}), suffix({"format": {"unit": "ms"}})
    (' / 5', ' ms')
    >>> suffix({"format": {"unit": "%"}}), suffix({"format": {"scale_max": 10, "unit": "pts"}})
    ('%', ' / 10 pts')
    """
    fmt = _format(a)
    out = ""
    if isinstance(top := fmt.get("scale_max"), int | float):
        out += f" / {_plain(float(top))}"
    if unit := fmt.get("unit"):
        out += str(unit) if str(unit) in _ATTACHED else f" {unit}"
    return out


def shown(a: Mapping[str, Any], key: str) -> str:
    """``a[key]`` (value, expected, lower, upper) with its scale and unit: ``3.10 / 5``.

    >>> shown({"value": 3.1, "format": {"scale_max": 5.0, "decimals": 2}}, "value")
    '3.10 / 5'
    >>> shown({"value": None, "format": {"unit": "ms"}}, "value")
    '–'
    """
    value = a.get(key)
    text = _faithful(a, value) if key == "expected" else number(a, value)
    return text if text == "–" else text + suffix(a)


#: how far a shown expected value may be from the one the change (``+4627%``) is taken from
_EXPECTED_SLACK = 0.02


def _faithful(a: Mapping[str, Any], value: Any) -> str:
    """The expected value with as many decimals as it takes to be within 2% of itself: a
    count's forecast of 0.55 rounded whole read "1" next to a change of +4627% taken from
    0.55, and a reader's 26 vs 1 is +2500%. Whole when that is close enough (``42``).

    >>> [_faithful({"format": {"decimals": 0}}, v) for v in (41.7, 0.55, 4.3, 0.0004, 0.0)]
    ['42', '0.55', '4.3', '0.0004', '0']
    """
    d = _format(a).get("decimals")
    if not isinstance(d, int) or a.get("unit") == "percent" or not isinstance(
            value, int | float) or not math.isfinite(value) or value == 0:
        return number(a, value)
    v = float(value)
    most = max(d, 2 - math.floor(math.log10(abs(v))))  # 3 significant digits: within 0.5%
    places = next(p for p in range(d, most + 1)
                  if p == most or abs(round(v, p) - v) <= _EXPECTED_SLACK * abs(v))
    return number({**a, "format": {**_format(a), "decimals": places}}, v)


def band(a: Mapping[str, Any]) -> str:
    """The expected band, its unit once: ``3.90–4.60 / 5``.

    >>> band({"lower": 38.2, "upper": 45.6, "format": {"decimals": 0, "unit": "tickets"}})
    '38–46 tickets'
    """
    return f"{number(a, a.get('lower'))}–{number(a, a.get('upper'))}{suffix(a)}"


def volume_text(a: Mapping[str, Any]) -> str:
    """``from 14 responses``: how many observations the value came from; ``""`` without a
    volume (a sum, or a payload from before volumes).

    >>> volume_text({"volume": 1204.0, "format": {"volume_unit": "sessions"}})
    'from 1,204 sessions'
    >>> volume_text({"volume": 14.0}), volume_text({"volume": None})
    ('from 14', '')
    >>> volume_text({"volume": 1.0, "format": {"volume_unit": "responses"}})
    'from 1 response'
    """
    if not (count := volume_count(a)):
        return ""
    noun = _format(a).get("volume_unit")
    if noun and count == "1" and noun.endswith("s") and not noun.endswith("ss"):
        noun = noun[:-1]  # "from 1 responses" read as a typo in the alert
    return f"from {count} {noun}" if noun else f"from {count}"


def volume_count(a: Mapping[str, Any]) -> str:
    """The volume alone, ``1,204`` (``""`` without one), for a column headed by its noun.

    >>> volume_count({"volume": 1204.0}), volume_count({"volume": 2.5}), volume_count({})
    ('1,204', '2.50', '')
    """
    v = a.get("volume")
    if not isinstance(v, int | float) or not math.isfinite(v):
        return ""
    return f"{float(v):,.0f}" if float(v).is_integer() or abs(v) >= 100 else _plain(float(v))


def text_fields(a: Mapping[str, Any]) -> dict[str, str]:
    """The anomaly's numbers as the messages print them, for consumers that show them
    without re-implementing units (a webhook's ``"text"``): value, expected, band, volume.

    >>> text_fields({"value": 14.0, "expected": 41.7, "lower": 30.2, "upper": 52.9,
    ...              "format": {"decimals": 0, "unit": "tickets"}})
    {'value': '14 tickets', 'expected': '42 tickets', 'band': '30–53 tickets'}
    """
    out = {"value": shown(a, "value"), "expected": shown(a, "expected"), "band": band(a)}
    if vol := volume_text(a):
        out["volume"] = vol
    return out
