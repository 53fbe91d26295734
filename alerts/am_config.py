"""Alertmanager's ``route``, ``inhibit_rules`` and ``time_intervals`` syntax as strict pydantic
models, so an existing Alertmanager routing tree pastes into cxmon's ``alerting:`` block
unchanged. Validation rejects what Alertmanager 0.25's ``config.Load`` rejects (bad matchers
and regexes, invalid label names, ``...`` mixed with labels, zero intervals, matchers or time
intervals on the root route), each problem at its path. References (receivers, time interval
names) are checked by :func:`check_references`, called from ``monitor/config/alerting.py``.

One cxmon extension: ``min_severity`` (0-100) on a route. A route with it matches only alerts at
least that severe, like an extra matcher on the numeric severity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from alerts.matchers import (
    LABEL_NAME_RE,
    Matcher,
    MatcherError,
    compile_regex,
    legacy_matchers,
    parse_matchers,
)
from monitor.durations import Duration

__all__ = [
    "InhibitRuleConfig",
    "RouteConfig",
    "check_references",
    "route_problems",
]

Loc = tuple[str | int, ...]
_STRICT = ConfigDict(extra="forbid", populate_by_name=True)


def _fail(title: str, errors: list[tuple[Loc, str]]) -> None:
    if errors:
        raise ValidationError.from_exception_data(title, [
            InitErrorDetails(type=PydanticCustomError("alertmanager", msg), loc=loc, input=None)
            for loc, msg in errors
        ])


def _matcher_strings(value: list[str]) -> list[str]:
    errors: list[tuple[Loc, str]] = []
    for i, line in enumerate(value):
        if not isinstance(line, str):
            continue
        try:
            parse_matchers(line)
        except MatcherError as exc:
            errors.append(((i,), str(exc)))
    _fail("matchers", errors)
    return value


def _label_map(value: dict[str, str] | None, regex: bool) -> dict[str, str] | None:
    errors: list[tuple[Loc, str]] = []
    for k, v in (value or {}).items():
        if not LABEL_NAME_RE.match(k):
            errors.append(((k,), f"invalid label name {k!r}"))
        elif regex:
            try:
                compile_regex(v)
            except MatcherError as exc:
                errors.append(((k,), str(exc)))
    _fail("match", errors)
    return value


class RouteConfig(BaseModel):
    """A node of the route tree (Alertmanager's ``route``). Unset options inherit."""

    model_config = _STRICT

    receiver: str | None = None
    group_by: list[str] | None = None
    continue_: bool = Field(default=False, alias="continue")
    match: dict[str, str] | None = None
    match_re: dict[str, str] | None = None
    matchers: list[str] = Field(default_factory=list)
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    min_severity: float | None = Field(default=None, ge=0, le=100)

    _matchers_ok = field_validator("matchers")(_matcher_strings)

    @field_validator("match")
    @classmethod
    def _match_ok(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return _label_map(v, regex=False)

    @field_validator("match_re")
    @classmethod
    def _match_re_ok(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return _label_map(v, regex=True)

    @field_validator("group_by")
    @classmethod
    def _group_by_ok(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        errors: list[tuple[Loc, str]] = []
        seen: set[str] = set()
        for i, name in enumerate(v):
            if name == "...":
                continue
            if not LABEL_NAME_RE.match(name):
                errors.append(((i,), f"invalid label name {name!r} in group_by list"))
            elif name in seen:
                errors.append(((i,), f"duplicated label {name!r} in group_by"))
            seen.add(name)
        if "..." in v and len(v) > 1:
            errors.append(((), "cannot have wildcard group_by (`...`) and other labels at the "
                               "same time"))
        _fail("group_by", errors)
        return v

    @field_validator("group_interval", "repeat_interval")
    @classmethod
    def _not_zero(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v <= timedelta(0):
            raise ValueError("cannot be zero")
        return v

    # -- helpers used by the router --------------------------------------------------------

    def all_matchers(self) -> list[Matcher]:
        """``match``, ``match_re`` and ``matchers`` together (all must match)."""
        out = legacy_matchers(self.match, self.match_re)
        for line in self.matchers:
            out += parse_matchers(line)
        return out

    @property
    def group_by_all(self) -> bool:
        return self.group_by == ["..."]


class InhibitRuleConfig(BaseModel):
    """Mute alerts matching the target matchers while an alert matching the source matchers
    fires with the same values of the ``equal`` labels."""

    model_config = _STRICT

    source_match: dict[str, str] | None = None
    source_match_re: dict[str, str] | None = None
    source_matchers: list[str] = Field(default_factory=list)
    target_match: dict[str, str] | None = None
    target_match_re: dict[str, str] | None = None
    target_matchers: list[str] = Field(default_factory=list)
    equal: list[str] = Field(default_factory=list)

    _matchers_ok = field_validator("source_matchers", "target_matchers")(_matcher_strings)

    @field_validator("source_match", "target_match")
    @classmethod
    def _match_ok(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return _label_map(v, regex=False)

    @field_validator("source_match_re", "target_match_re")
    @classmethod
    def _match_re_ok(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return _label_map(v, regex=True)

    @field_validator("equal")
    @classmethod
    def _equal_ok(cls, v: list[str]) -> list[str]:
        _fail("equal", [((i,), f"invalid label name {n!r}") for i, n in enumerate(v)
                        if not LABEL_NAME_RE.match(n)])
        return v

    def source(self) -> list[Matcher]:
        out = legacy_matchers(self.source_match, self.source_match_re)
        for line in self.source_matchers:
            out += parse_matchers(line)
        return out

    def target(self) -> list[Matcher]:
        out = legacy_matchers(self.target_match, self.target_match_re)
        for line in self.target_matchers:
            out += parse_matchers(line)
        return out


# -- cross-reference checks (work on raw YAML data or models) ---------------------------------


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    if isinstance(obj, BaseModel):
        name = "continue_" if key == "continue" else key
        return getattr(obj, name, None)
    return None


def _walk(route: Any, loc: Loc) -> Iterable[tuple[Any, Loc]]:
    yield route, loc
    children = _get(route, "routes")
    if isinstance(children, list):
        for i, child in enumerate(children):
            yield from _walk(child, (*loc, "routes", i))


def _has_any(route: Any, keys: Iterable[str]) -> list[str]:
    return [k for k in keys if _get(route, k)]


def route_problems(route: Any) -> list[tuple[Loc, str, str]]:
    """Root-route rules of Alertmanager (no matchers, no time intervals)."""
    out: list[tuple[Loc, str, str]] = []
    if route is None:
        return out
    for key in _has_any(route, ("match", "match_re", "matchers")):
        out.append((("route", key), "root_route", "root route must not have any matchers"))
    for key in _has_any(route, ("mute_time_intervals", "active_time_intervals")):
        kind = key.split("_")[0]
        out.append((("route", key), "root_route",
                    f"root route must not have any {kind} time intervals"))
    if _get(route, "min_severity") is not None:
        out.append((("route", "min_severity"), "root_route",
                    "root route must not have min_severity (it is the fallback for all alerts)"))
    return out


def interval_names(data: Any) -> tuple[dict[str, Loc], list[tuple[Loc, str, str]]]:
    """Names defined in ``time_intervals`` and the legacy ``mute_time_intervals``."""
    names: dict[str, Loc] = {}
    out: list[tuple[Loc, str, str]] = []
    for key in ("mute_time_intervals", "time_intervals"):
        items = _get(data, key)
        for i, item in enumerate(items if isinstance(items, list) else ()):
            name = _get(item, "name")
            if not isinstance(name, str):
                continue
            if name in names:
                out.append(((key, i, "name"), "duplicate", f"time interval {name!r} is not unique"))
            names.setdefault(name, (key, i))
    return names, out


def check_references(data: Any, receivers: Iterable[str],
                     suggest: Callable[[str, Iterable[str]], str]
                     ) -> list[tuple[Loc, str, str]]:
    """Every receiver and time interval the route tree names is defined; root-route rules."""
    receivers = list(receivers)
    route = _get(data, "route")
    out = route_problems(route)
    names, dups = interval_names(data)
    out += dups
    if route is None:
        return out
    defined = ", ".join(receivers) or "none"
    for node, loc in _walk(route, ("route",)):
        target = _get(node, "receiver")
        if isinstance(target, str) and target not in receivers:
            msg = (f"receiver {target!r} is not defined{suggest(target, receivers)}; "
                   f"defined receivers: {defined}")
            out.append(((*loc, "receiver"), "reference", msg))
        for key in ("mute_time_intervals", "active_time_intervals"):
            used = _get(node, key)
            for j, name in enumerate(used if isinstance(used, list) else ()):
                if isinstance(name, str) and name not in names:
                    msg = (f"time interval {name!r} is not defined{suggest(name, names)}; "
                           f"defined: {', '.join(names) or 'none'}")
                    out.append(((*loc, key, j), "reference", msg))
    return out

