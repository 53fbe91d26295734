"""Checks across sections that no single model can make.

A metric names its source and detectors, the exporter and calendar name metrics and labels,
and some settings only conflict in combination (jitter vs. interval, a refractory detector
vs. ``consecutive``). Each check works on raw YAML or built models, so every problem is
reported together with the structural ones."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from detectors.registry import config_class as detector_config_class
from monitor.config.plugins import _default_detector
from monitor.config.problems import _message
from monitor.config.validator_errors import Loc, _did_you_mean, _get, _has
from monitor.durations import format_duration, parse_duration
from sources.registry import config_class as source_config_class
from sources.registry import params_class as source_params_class


def _check_metrics(data: Any) -> list[tuple[Loc, str, str]]:
    """Metric names unique; metric sources and detectors defined. Raw YAML or models."""
    out: list[tuple[Loc, str, str]] = []
    sources = _get(data, "sources")
    detectors = _get(data, "detectors") if _has(data, "detectors") else {}
    metrics = _get(data, "metrics")
    if not isinstance(metrics, list):
        return out
    # Only string keys name anything (a non-string key is reported by validation).
    src_names = [k for k in sources if isinstance(k, str)] if isinstance(sources, Mapping) else None
    det_names = (
        [k for k in detectors if isinstance(k, str)] if isinstance(detectors, Mapping) else None
    )
    if det_names is not None and "default" not in det_names and _default_detector() is not None:
        det_names.append("default")
    seen: dict[str, int] = {}
    for i, metric in enumerate(metrics):
        name = _get(metric, "name")
        if isinstance(name, str):
            if name in seen:
                msg = f"duplicate metric name {name!r} (first at metrics[{seen[name]}])"
                out.append((("metrics", i, "name"), "duplicate", msg))
            else:
                seen[name] = i
        src = _get(metric, "source")
        if isinstance(src, str) and src_names is not None and src not in src_names:
            defined = ", ".join(src_names) or "none"
            msg = f"source {src!r} is not defined{_did_you_mean(src, src_names)}; "
            out.append((("metrics", i, "source"), "reference", msg + f"defined sources: {defined}"))
        if isinstance(src, str) and isinstance(sources, Mapping) and src in sources:
            out += _check_grain(i, metric, src, _get(sources[src], "type"))
            out += _check_params(i, metric, _get(sources[src], "type"))
        if det_names is None or not isinstance(metric, Mapping | BaseModel):
            continue
        defined = ", ".join(det_names) or "none"
        if not _has(metric, "detectors") and "default" not in det_names:
            msg = (
                "no detectors listed and no detector named 'default' is defined; "
                f"list detectors or define detectors.default (defined detectors: {defined})"
            )
            out.append((("metrics", i, "detectors"), "reference", msg))
            continue
        listed = _get(metric, "detectors")
        for j, det in enumerate(listed if isinstance(listed, list) else ()):
            if isinstance(det, str) and det not in det_names:
                msg = f"detector {det!r} is not defined{_did_you_mean(det, det_names)}; "
                loc: Loc = ("metrics", i, "detectors", j)
                out.append((loc, "reference", msg + f"defined detectors: {defined}"))
        out += _check_streaks(i, metric, listed if isinstance(listed, list) else ["default"],
                              detectors)
    return out


def _check_exported(data: Any) -> list[tuple[Loc, str, str]]:
    """``exporter.metrics`` names defined metrics: a typo would export nothing for that metric
    (empty dashboards) without a word."""
    exporter = _get(data, "exporter") if _has(data, "exporter") else None
    listed = _get(exporter, "metrics") if _has(exporter, "metrics") else None
    metrics = _get(data, "metrics")
    if not isinstance(listed, list) or not isinstance(metrics, list):
        return []
    names = [n for m in metrics if isinstance(n := _get(m, "name"), str)]
    out: list[tuple[Loc, str, str]] = []
    for i, name in enumerate(listed):
        if isinstance(name, str) and name not in names:
            msg = (f"metric {name!r} is not defined{_did_you_mean(name, names)}; "
                   f"defined metrics: {', '.join(names) or 'none'}")
            out.append((("exporter", "metrics", i), "reference", msg))
    return out


def _check_calendar_label(data: Any) -> list[tuple[Loc, str, str]]:
    """``calendar.by.label`` is a label the series of some metric that follows the calendar
    carry (a dimension, a split_by label or a fixed label): a typo would give no series its
    own calendar without a word."""
    cal = _get(data, "calendar") if _has(data, "calendar") else None
    by = _get(cal, "by") if _has(cal, "by") else None
    label = _get(by, "label") if _has(by, "label") else None
    metrics = _get(data, "metrics")
    if not isinstance(label, str) or not isinstance(metrics, list):
        return []
    known: list[str] = []
    for m in metrics:
        if _has(m, "calendar") and _get(m, "calendar") is False:
            continue  # the calendar does not apply to it
        for key in ("dimensions", "split_by", "labels"):
            found = _get(m, key) if _has(m, key) else None
            known += [str(k) for k in found or () if str(k) not in known] \
                if isinstance(found, list | dict) else []
    if label in known:
        return []
    msg = (f"no metric that follows the calendar has a label {label!r}"
           f"{_did_you_mean(label, known)}; their labels: {', '.join(sorted(known)) or 'none'}")
    return [(("calendar", "by", "label"), "reference", msg)]


def _duration_of(raw: Any) -> timedelta | None:
    """A raw duration value (``5m`` or a timedelta) or None when it is not one (validation
    reports that)."""
    if isinstance(raw, str):
        try:
            return parse_duration(raw)
        except ValueError:
            return None
    return raw if isinstance(raw, timedelta) else None


def _check_connections(data: Any) -> list[tuple[Loc, str, str]]:
    """Each ``connection:`` of a files source names a defined ``connections:`` entry."""
    sources = _get(data, "sources")
    connections = _get(data, "connections") if _has(data, "connections") else {}
    if not isinstance(sources, Mapping) or not isinstance(connections, Mapping):
        return []
    names = [k for k in connections if isinstance(k, str)]
    out: list[tuple[Loc, str, str]] = []
    for key, src in sources.items():
        name = _get(src, "connection")
        if _get(src, "type") == "files" and isinstance(name, str) and name not in names:
            msg = (f"connection {name!r} is not defined{_did_you_mean(name, names)}; defined "
                   f"connections (top-level connections:): {', '.join(names) or 'none'}")
            out.append((("sources", key, "connection"), "reference", msg))
    return out


def _check_jitter(data: Any) -> list[tuple[Loc, str, str]]:
    """``scheduler.jitter`` shorter than every metric's interval: a tick delayed by more than
    its interval runs after the next bucket is due, and the two overlap."""
    scheduler = _get(data, "scheduler")
    jitter = _duration_of(_get(scheduler, "jitter")) if _has(scheduler, "jitter") else None
    metrics = _get(data, "metrics")
    if jitter is None or not isinstance(metrics, list):
        return []
    intervals = [d for m in metrics if _has(m, "interval")
                 and (d := _duration_of(_get(m, "interval"))) is not None and d > timedelta(0)]
    if not intervals or jitter < min(intervals):
        return []
    msg = (f"jitter {format_duration(jitter)} is not shorter than the shortest metric "
           f"interval ({format_duration(min(intervals))}): ticks would run after the next "
           "bucket is due")
    return [(("scheduler", "jitter"), "value", msg)]


def _check_params(i: int, metric: Any, kind: Any) -> list[tuple[Loc, str, str]]:
    """A metric's ``params`` checked against its source type's model (``Source.Params``)
    with the rest of the config: a misspelt key used to surface only at the first poll."""
    model = source_params_class(kind) if isinstance(kind, str) else None
    # no params is {} (what a poll gets): ServiceNow's default Table API mode still needs
    # the metric's dimensions among params.fields
    params = _get(metric, "params") if _has(metric, "params") else {}
    if model is None or not isinstance(params, Mapping):
        return []
    try:
        parsed = model.model_validate(dict(params))
    except ValidationError as exc:
        out: list[tuple[Loc, str, str]] = []
        for err in exc.errors(include_url=False, include_input=False, include_context=False):
            loc: Loc = ("metrics", i, "params", *err["loc"])
            if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
                key = str(err["loc"][0])
                msg = (f"unknown key {key!r}{_did_you_mean(key, list(model.model_fields))}"
                       if model.model_fields else
                       f"unknown key {key!r}: {kind} sources take no params (remove it)")
            else:
                msg = _message(err, loc, None)
            out.append((loc, "params", msg))
        return out
    out = []
    # templates that use what the params do not define (http_json: an unknown {placeholder}
    # in the URL was fatal at the first poll)
    templates = getattr(parsed, "query_problems", None)
    if callable(templates):
        query = _get(metric, "query") if _has(metric, "query") else None
        out += [(("metrics", i, *where), "params", msg)
                for where, msg in templates(query).items()]
    # params that are fine alone but cannot serve the metric (ServiceNow's Table API returns
    # only params.fields: a dimension not among them failed at the first poll)
    check = getattr(parsed, "metric_problems", None)
    if not callable(check):
        return out
    columns = [c for key in ("split_by", "dimensions")
               if isinstance(cols := _get(metric, key), list) for c in cols if isinstance(c, str)]
    return out + [(("metrics", i, "params", key), "params", msg)
                  for key, msg in check(columns).items()]


def _check_grain(i: int, metric: Any, source: str, kind: Any) -> list[tuple[Loc, str, str]]:
    """A metric finer than its source's data (15-minute buckets of hourly GA4 reports) would
    stamp each hour's counts on its first quarter and leave the rest empty: say so."""
    try:
        finest = source_config_class(kind).finest_interval if isinstance(kind, str) else None
    except KeyError:
        return []
    interval = _get(metric, "interval") if _has(metric, "interval") else None
    if isinstance(interval, str):
        try:
            interval = parse_duration(interval)
        except ValueError:
            return []  # reported by validation
    if not finest or not isinstance(interval, timedelta) or interval % finest == timedelta(0):
        return []
    msg = (f"interval {format_duration(interval)} is finer than, or not a multiple of, the "
           f"{format_duration(finest)} grain of source {source!r} ({kind} data); use a "
           f"multiple of {format_duration(finest)}")
    return [(("metrics", i, "interval"), "value", msg)]


def _refractory(detector: Any) -> int:
    """Points a detector reports as 0 after an alarm (its ``refractory`` setting), else 0."""
    kind = _get(detector, "type")
    try:
        fields = detector_config_class(kind).model_fields if isinstance(kind, str) else {}
    except KeyError:
        return 0
    if "refractory" not in fields:
        return 0
    value = _get(detector, "refractory") if _has(detector, "refractory") else (
        fields["refractory"].default)
    return value if isinstance(value, int) else 0


def _check_streaks(i: int, metric: Any, listed: list[Any], detectors: Any
                   ) -> list[tuple[Loc, str, str]]:
    """A detector that reports one point per incident (a refractory period) can never
    satisfy ``consecutive > 1`` or a ``window`` needing more than one point: say so."""
    out: list[tuple[Loc, str, str]] = []
    needs = max(_get(metric, "consecutive", 1) if isinstance(_get(metric, "consecutive", 1),
                                                             int) else 1,
                _get(_get(metric, "window"), "k", 1) if _has(metric, "window") else 1)
    if not isinstance(needs, int) or needs <= 1 or not isinstance(detectors, Mapping):
        return out
    rule = "consecutive" if _get(metric, "consecutive", 1) == needs else "window"
    for det in listed:
        if isinstance(det, str) and det in detectors and _refractory(detectors[det]) > 0:
            msg = (f"detector {det!r} reports one point per incident (refractory "
                   f"{_refractory(detectors[det])} points), so {rule} needing {needs} unusual "
                   f"points would never alert; use "
                   f"{'consecutive: 1' if rule == 'consecutive' else 'a window with k: 1'} "
                   "with it, or set its refractory to 0")
            out.append((("metrics", i, rule), "incompatible", msg))
    return out
