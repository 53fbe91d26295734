"""Reading a config: ``parse_config`` for text and ``load_config`` for a file.

This is where the stages meet (YAML positions, interpolation, validation, problem wording)
and where a command that needs only some sections is spared unset variables elsewhere."""

from __future__ import annotations

import copy
import os
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from monitor.config.includes import Included, expand_includes, shown_in_message
from monitor.config.interpolation import UNSET_PREFIX, _Interpolator, _scrub
from monitor.config.problems import _child, _problems_from, format_path
from monitor.config.root import MonitorConfig
from monitor.config.validator_errors import Loc
from monitor.config.yaml_positions import _load_yaml, _Positions
from monitor.errors import ConfigError, Problem


def parse_config(
    text: str,
    env: Mapping[str, str] | None = None,
    source: str = "<string>",
    *,
    needs: Collection[str] | None = None,
) -> MonitorConfig:
    """Parse and validate a config document; ``ConfigError`` lists every problem found.

    ``needs``: the top-level sections the caller uses (None: all, as ``cxmon validate``). An
    unset ``${VAR}`` elsewhere is not an error: its key is left out (its default applies) or,
    if the model requires it, left empty; so ``cxmon alerts status`` runs without the
    ``GRAFANA_TOKEN`` only ``dashboards push`` needs. If the config still does not validate,
    every unset variable is reported."""
    data, positions, yaml_problems = _load_yaml(text, source)
    return _validate_document(_mapping(data, source), positions, yaml_problems, env, source,
                              needs, None)


def _mapping(data: Any, source: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        msg = "expected a mapping of top-level keys (store, sources, metrics, detectors, ...)"
        raise ConfigError([Problem("", msg)], source)
    return data


def _validate_document(
    data: dict[str, Any],
    positions: _Positions,
    yaml_problems: list[tuple[Loc, str, Any]],
    env: Mapping[str, str] | None,
    source: str,
    needs: Collection[str] | None,
    included: Included | None,
) -> MonitorConfig:
    """:func:`parse_config` on a loaded document (``included``: its ``include:`` files were
    merged in, and problems are reported in the file they are in)."""
    env = os.environ if env is None else env
    if included is None and "include" in data:
        msg = "include needs a config file (its globs are relative to the file's folder)"
        raise ConfigError([Problem("include", msg)], source)
    where = _Where(positions, included)
    found: list[tuple[Loc, str, tuple[int, ...]]] = [
        (loc, msg, where.main(pos)) for loc, msg, pos in yaml_problems]

    interp = _Interpolator(env)
    data = interp.walk(data, ())
    skipped = [] if needs is None else [u for u in interp.unset if not u or u[0] not in needs]

    def tolerated(loc: Loc, msg: str) -> bool:
        return loc in skipped and msg.startswith(UNSET_PREFIX)

    config: MonitorConfig | None = None
    errors: list[tuple[Loc, str]] = []
    left_out = list(skipped)  # first leave every skipped key out, then only optional ones
    # required keys whose empty value is refused (a token, a URL): index of their stand-in
    stood_in: dict[Loc, int] = {}
    while True:
        try:
            config = MonitorConfig.model_validate(
                _with_stand_ins(_without(data, left_out), stood_in))
            break
        except ValidationError as exc:
            errors = _problems_from(exc, data)
        failing = {loc for loc, _ in errors}
        refused = (failing & set(skipped)) - set(left_out)
        if required := failing & set(left_out):
            left_out = [loc for loc in left_out if loc not in required]
        elif refused and all(stood_in.get(loc, -1) + 1 < len(_STAND_INS) for loc in refused):
            stood_in.update({loc: stood_in.get(loc, -1) + 1 for loc in refused})
        else:
            break
    found += [(loc, msg, where.of(loc)) for loc, msg in interp.problems
              if config is None or not tolerated(loc, msg)]
    own = len(found)
    if config is None:
        found += [(loc, msg, where.of(loc)) for loc, msg in errors]

    # A path whose variable is unset has no value to judge: report only the unset variable,
    # and no problem elsewhere that goes away once it has a value ("api_token needs email").
    unset = interp.unset
    kept = [p for p in found[own:] if not any(p[0][: len(u)] == u for u in unset)]
    if unset and kept:
        persist = _problems_with_stand_ins(data, unset)
        kept = [p for p in kept if (p[0], p[1]) in persist]
    kept = found[:own] + kept
    if included is not None and included.problems:
        # a typo in include (or an unreadable team file) explains a main file without
        # sources or metrics: that problem alone says what to fix
        kept = [p for p in kept if not (p[0] in (("sources",), ("metrics",))
                                        and p[1].startswith("missing required key"))]
    if config is not None:  # pydantic's lax mode reads true as 1: a slip, not a number
        kept += [(loc, "expected a number, not a boolean", where.of(loc))
                 for loc in _booleans_taken_as_numbers(data, config, ())]
    ordered = [(pos, where.problem(loc, _scrub(msg, loc, interp.secrets)))
               for loc, msg, pos in kept]
    if included is not None:
        ordered += [(where.of_file(p.file, p.loc, p.where),
                     Problem(format_path(p.loc), p.message, p.file)) for p in included.problems]
    ordered.sort(key=lambda p: p[0])  # stable: file and document order, then discovery order
    problems: list[Problem] = []
    for _, problem in ordered:
        if problem not in problems:
            problems.append(problem)
    if problems or config is None:
        raise ConfigError(problems or [Problem("", "invalid config")], source)
    return config


class _Where:
    """Where a path of the (merged) document is: the position problems are sorted by (the
    main file first, then included files in order) and the file a problem names."""

    def __init__(self, positions: _Positions, included: Included | None) -> None:
        self.positions = positions
        self.included = included

    @staticmethod
    def main(pos: tuple[int, int]) -> tuple[int, ...]:
        return (0, *pos)

    def of(self, loc: Loc) -> tuple[int, ...]:
        if self.included is None:
            return self.main(self.positions.of(loc))
        part, local = self.included.locate(loc)
        if part is None:
            return self.main(self.positions.of(loc))
        return (part + 1, *self.included.parts[part].positions.of(local))

    def of_file(self, file: str | None, loc: Loc, pos: tuple[int, int]) -> tuple[int, ...]:
        """Sort position of an include problem found in ``file`` (None: the main file)."""
        if file is None:
            return self.main(self.positions.of(loc))
        parts = [] if self.included is None else [p.name for p in self.included.parts]
        return (parts.index(file) + 1 if file in parts else len(parts) + 1, *pos)

    def problem(self, loc: Loc, message: str) -> Problem:
        if self.included is None:
            return Problem(format_path(loc), message)
        part, local = self.included.locate(loc)
        file = None if part is None else self.included.parts[part].name
        return Problem(format_path(local), shown_in_message(self.included, message, file),
                       file)


def _booleans_taken_as_numbers(raw: Any, value: Any, loc: Loc) -> Iterator[Loc]:
    """Paths where the file has ``true``/``false`` and the validated config a number
    (``min_severity: true`` passed as 1), found by walking both side by side."""
    if isinstance(raw, bool):
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield loc
        return
    if isinstance(raw, Mapping):
        for key, item in raw.items():
            child = _validated_child(value, key)
            if child is not _MISSING:
                yield from _booleans_taken_as_numbers(item, child, (*loc, key))
    elif isinstance(raw, list) and isinstance(value, list | tuple) and len(raw) == len(value):
        for i, (item, child) in enumerate(zip(raw, value, strict=True)):
            yield from _booleans_taken_as_numbers(item, child, (*loc, i))


_MISSING = object()


def _validated_child(value: Any, key: Any) -> Any:
    """The validated value under a raw mapping key (a model field by alias or name, or a
    dict entry); ``_MISSING`` when it cannot be told."""
    if isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            if key in (name, field.alias):
                return getattr(value, name, _MISSING)
        return _MISSING
    if isinstance(value, Mapping):
        return value.get(key, _MISSING)
    return _MISSING


_STAND_IN = "unset-variable"
#: Stand-ins tried in turn for a required key of a section the command does not use: plain
#: text, then a database URL, then an HTTP URL (a source's ``url`` or ``base_url``).
_STAND_INS = (_STAND_IN, "sqlite://", "http://unset-variable.invalid")


def _with_stand_ins(data: Any, locs: Iterable[Loc] | Mapping[Loc, int]) -> Any:
    """A copy of ``data`` with a stand-in value at ``locs`` (a mapping: the index into
    ``_STAND_INS`` per path): a required key of a section the command does not use (a Slack
    ``token`` for ``alerts status``) that refuses an empty value must not stop the command."""
    filled = copy.deepcopy(data)
    for loc in locs:
        node = filled
        for el in loc[:-1]:
            node = _child(node, el)
        if isinstance(node, dict | list) and loc:
            which = locs[loc] if isinstance(locs, Mapping) else 0
            node[loc[-1]] = _STAND_INS[which]  # type: ignore[index]
    return filled


def _problems_with_stand_ins(data: Any, unset: list[Loc]) -> set[tuple[Loc, str]]:
    """The problems left when every path with an unset variable holds a stand-in value."""
    filled = _with_stand_ins(data, unset)
    try:
        MonitorConfig.model_validate(filled)
    except ValidationError as exc:
        return set(_problems_from(exc, filled))
    return set()


def _without(data: Any, locs: Iterable[Loc]) -> Any:
    """A copy of ``data`` without the mapping keys at ``locs`` (list items stay)."""
    out = copy.deepcopy(data)
    for loc in locs:
        node = out
        for el in loc[:-1]:
            node = _child(node, el)
        if isinstance(node, dict) and loc:
            node.pop(loc[-1], None)
    return out


def load_config(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    needs: Collection[str] | None = None,
) -> MonitorConfig:
    """Read and validate the config file at ``path`` (``env`` defaults to ``os.environ``;
    ``needs``: the sections whose unset variables are errors, see :func:`parse_config`).

    Relative file paths in sources (a ``files`` source's ``path``/``base_dir``, a
    ``credentials_file``) are taken from the config file's folder, not the working directory,
    so ``cxmon run`` from cron finds the same files. (The ``store`` URL is not changed: a
    relative SQLite path is taken from the working directory.)"""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem("", f"config file not found: {name}")], name) from None
    except UnicodeDecodeError as exc:
        msg = f"config file is not UTF-8 text: {exc.reason}"
        raise ConfigError([Problem("", msg)], name) from None
    except OSError as exc:
        msg = f"cannot read config file: {exc.strerror or exc}"
        raise ConfigError([Problem("", msg)], name) from None
    data, positions, yaml_problems = _load_yaml(text, name)
    included = expand_includes(_mapping(data, name), Path(name))
    config = _validate_document(included.data, positions, yaml_problems, env, name, needs,
                                included)
    folder = Path(name).resolve().parent
    config.sources = {k: src.resolve_paths(included.folder_of_source(k, folder))
                      for k, src in config.sources.items()}
    config._included = included if included.parts else None
    return config
