"""Placeholders of a metric's query that nothing gives a value: one check for SQL bind
parameters (``:name``) and SOQL placeholders, so ``cxmon validate`` reports both alike.

Why: a ``:journy`` in the query with ``params: {journey: ...}`` passed ``cxmon validate``
and failed every poll; the check reports it at ``metrics[i].query`` with the rest of the
config, with the closest param name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: the polled range, bound by cxmon itself
RANGE = ("since", "until")

Problems = dict[tuple[str | int, ...], str]


def bind_problems(used: Iterable[str] | None, given: Iterable[object], *,
                  literal: str) -> Problems:
    """Placeholders in ``used`` (None: the query is not text) that neither ``given`` (the
    metric's param names) nor the polled range give a value, and params named like the
    range (the poll would overwrite them). ``literal`` says how the query language writes
    a colon that is not a placeholder (the hint when no param name is close).

    >>> bind_problems({"since", "journy"}, ["journey"], literal="")[("query",)][:44]
    'no value for :journy (did you mean :journey?'
    >>> bind_problems({"since"}, ["since"], literal="")[("params", "since")][:30]
    ':since is the polled range, bo'
    """
    names = sorted(map(str, given))
    out: Problems = {}
    for key in RANGE:
        if key in names:
            out[("params", key)] = (f":{key} is the polled range, bound by cxmon; give "
                                    "this value another name")
    if used is None:
        return out
    missing = sorted(set(used) - {*RANGE, *names})
    names = [n for n in names if n not in RANGE]
    if missing:
        name = missing[0]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean :{close[0]}?)" if close else f" ({literal})"
        out[("query",)] = (
            f"no value for :{name}{hint}: set it in params"
            + (f" (params: {', '.join(names)})" if names else "")
            + (f"; also without a value: {', '.join(':' + m for m in missing[1:])}"
               if len(missing) > 1 else "")
            + "; :since and :until are bound by cxmon")
    return out
