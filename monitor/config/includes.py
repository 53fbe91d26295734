"""A config split over several files: ``include:`` in the main file.

Why: when each team owns the metrics of its journeys, one file of hundreds of metrics edited by
every team is a merge conflict a day and a review nobody can read. The main file keeps what is
shared (store, alerting, scheduler, calendar...); ``include: [teams/*.yaml]`` adds the
``sources``, ``metrics`` and ``detectors`` of each team's file. The merged document is
validated as one (a metric may use a source of another file), and every problem names the
file it is in and the path inside that file, so the owner finds it.

Rules: patterns are globs relative to the main file's folder, files are read in sorted order
(the metrics' order is the main file's, then each file's); a pattern that matches nothing is a
problem (a typo would otherwise drop a team's metrics silently); an included file holds only
``sources``, ``metrics`` and ``detectors`` and includes nothing; a source or detector name may
be defined once across all files.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config.validator_errors import Loc
from monitor.config.yaml_positions import _load_yaml, _Positions
from monitor.errors import ConfigError

#: Top-level sections an included file may add to.
INCLUDABLE = ("sources", "metrics", "detectors", "alerting")
_KEYED = ("sources", "detectors")
#: Lists an included file appends to (the path in the merged document and in the file):
#: metrics, and a team's receivers and routes (children of the main file's top route).
_LISTS: dict[Loc, Loc] = {("metrics",): ("metrics",),
                          ("alerting", "receivers"): ("alerting", "receivers"),
                          ("alerting", "route", "routes"): ("alerting", "routes")}
_ALERTING_KEYS = ("receivers", "routes")


@dataclass(slots=True)
class Part:
    """One included file: its name as shown (relative to the main file's folder), folder,
    data and positions."""

    name: str
    folder: Path
    data: dict[str, Any]
    positions: _Positions


@dataclass(frozen=True, slots=True)
class FileProblem:
    """A problem found while including: the file it is in (None: the main file), the path
    inside that file, and the position to sort by."""

    file: str | None
    loc: Loc
    message: str
    where: tuple[int, int]


@dataclass(slots=True)
class Included:
    """The merged document and where each part of it came from."""

    data: dict[str, Any]
    parts: list[Part] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    #: merged list path -> (first, end, part index) of the items that came from each part
    spans: dict[Loc, list[tuple[int, int, int]]] = field(default_factory=dict)
    #: (section, name) -> part index, for the sources and detectors of included files
    keyed: dict[tuple[str, str], int] = field(default_factory=dict)

    def locate(self, loc: Loc) -> tuple[int | None, Loc]:
        """The part a merged path is in (None: the main file) and the path inside it."""
        for merged, spans in self.spans.items():
            n = len(merged)
            if len(loc) > n and loc[:n] == merged and isinstance(loc[n], int):
                for first, end, part in spans:
                    if first <= loc[n] < end:
                        return part, (*_LISTS[merged], loc[n] - first, *loc[n + 1:])
        if len(loc) >= 2 and loc[0] in _KEYED and isinstance(loc[1], str):
            part = self.keyed.get((str(loc[0]), loc[1]))
            if part is not None:
                return part, loc
        return None, loc

    def folder_of_source(self, name: str, main_folder: Path) -> Path:
        """The folder a source's relative file paths are taken from: its own file's."""
        part = self.keyed.get(("sources", name))
        return main_folder if part is None else self.parts[part].folder


def _patterns(value: Any) -> tuple[list[tuple[Loc, str]], list[FileProblem]]:
    if isinstance(value, str):
        return [(("include",), value)], []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [(("include", i), v) for i, v in enumerate(value)], []
    msg = "expected a glob or a list of globs of config files (include: [teams/*.yaml])"
    return [], [FileProblem(None, ("include",), msg, (0, 0))]


def _matches(folder: Path, pattern: str, main: Path) -> list[Path]:
    full = pattern if os.path.isabs(pattern) else str(folder / pattern)
    found = (Path(p).resolve() for p in glob.glob(os.path.expanduser(full), recursive=True))
    return sorted(p for p in found if p.is_file() and p != main)


def _shown(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


def _read(path: Path, shown: str) -> tuple[Any, _Positions | None, list[FileProblem]]:
    """A file's data and positions, or the problems that kept it from being read."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, None, [FileProblem(shown, (), f"not UTF-8 text: {exc.reason}", (0, 0))]
    except OSError as exc:
        return None, None, [FileProblem(shown, (), f"cannot read: {exc.strerror or exc}",
                                        (0, 0))]
    try:
        data, positions, dup = _load_yaml(text, shown)
    except ConfigError as exc:
        return None, None, [FileProblem(shown, (), p.message, (0, 0)) for p in exc.problems]
    problems = [FileProblem(shown, loc, msg, where) for loc, msg, where in dup]
    return data, positions, problems


def expand_includes(data: dict[str, Any], main: Path) -> Included:
    """The main document ``data`` (of the file ``main``) with its ``include:`` files merged
    in; without ``include`` the document unchanged."""
    out = Included(data=data)
    if "include" not in data:
        return out
    merged = {k: v for k, v in data.items() if k != "include"}
    out.data = merged
    folder = main.resolve().parent
    patterns, out.problems = _patterns(data["include"])
    files: list[Path] = []
    for loc, pattern in patterns:
        found = _matches(folder, pattern, main.resolve())
        if not found:
            out.problems.append(FileProblem(None, loc, f"no config file matches {pattern!r} "
                                            f"(globs are relative to {folder})", (0, 0)))
        files += [f for f in found if f not in files]
    lists = _Lists(merged)
    for path in files:
        shown = _shown(path, folder)
        part_data, positions, problems = _read(path, shown)
        out.problems += problems
        if positions is None:
            continue
        if part_data is None:
            part_data = {}
        if not isinstance(part_data, dict):
            out.problems.append(FileProblem(shown, (), "expected a mapping of sources, "
                                            "metrics and detectors", (0, 0)))
            continue
        index = len(out.parts)
        out.parts.append(Part(shown, path.parent, part_data, positions))
        for key, value in part_data.items():
            where = positions.of((key,))
            if key not in INCLUDABLE:
                why = ("included files do not include others: list every file in the main "
                       "file's include" if key == "include" else
                       f"an included file holds only {', '.join(INCLUDABLE)}; {key} belongs "
                       "in the main config")
                out.problems.append(FileProblem(shown, (key,), why, where))
            elif key == "metrics":
                lists.add(out, ("metrics",), value, index)
            elif key == "alerting":
                _merge_alerting(out, lists, value, index)
            elif not isinstance(value, dict):
                out.problems.append(FileProblem(shown, (key,), f"expected a mapping of "
                                                f"{key} by name", where))
            else:
                _merge_keyed(out, merged, key, value, index)
    lists.write_back(out)
    return out


class _Lists:
    """The lists included files append to, starting from the main file's items."""

    def __init__(self, merged: dict[str, Any]) -> None:
        self.merged = merged
        self.items: dict[Loc, list[Any]] = {}
        for path in _LISTS:
            node: Any = merged
            for el in path:
                node = node.get(el) if isinstance(node, dict) else None
            self.items[path] = list(node) if isinstance(node, list) else []

    def add(self, out: Included, path: Loc, value: Any, index: int) -> None:
        part = out.parts[index]
        local = _LISTS[path]
        if not isinstance(value, list):
            out.problems.append(FileProblem(part.name, local, f"expected a list of "
                                            f"{local[-1]}", part.positions.of(local)))
            return
        items = self.items[path]
        out.spans.setdefault(path, []).append((len(items), len(items) + len(value), index))
        items += value

    def write_back(self, out: Included) -> None:
        """Put the grown lists into the merged document (copying the mappings on the way,
        so the main file's own data stays as read)."""
        for path, spans in out.spans.items():
            if not spans:
                continue
            node = self.merged
            for el in path[:-1]:
                child = node.get(el)
                node[el] = dict(child) if isinstance(child, dict) else {} if child is None \
                    else child
                node = node[el]
                if not isinstance(node, dict):
                    break  # the main file's section is not a mapping: validation says so
            else:
                node[path[-1]] = self.items[path]


def _merge_alerting(out: Included, lists: _Lists, value: Any, index: int) -> None:
    """A team's receivers and routes (children of the main file's top route)."""
    part = out.parts[index]
    if not isinstance(value, dict):
        out.problems.append(FileProblem(part.name, ("alerting",), "expected a mapping with "
                                        "receivers and routes", part.positions.of(("alerting",))))
        return
    for key, item in value.items():
        if key == "receivers":
            lists.add(out, ("alerting", "receivers"), item, index)
        elif key == "routes":
            lists.add(out, ("alerting", "route", "routes"), item, index)
        else:
            out.problems.append(FileProblem(
                part.name, ("alerting", key), f"an included file's alerting holds only "
                f"{' and '.join(_ALERTING_KEYS)} (its routes become children of the main "
                f"file's route); {key} belongs in the main config",
                part.positions.of(("alerting", key))))


def _merge_keyed(out: Included, merged: dict[str, Any], section: str, value: dict[str, Any],
                 index: int) -> None:
    """Add an included file's sources or detectors, each name defined once in all files."""
    target = merged.get(section)
    if target is None:
        target = {}
    elif not isinstance(target, dict):
        return  # the main file's section is not a mapping: validation reports it there
    target = merged[section] = dict(target)  # the main document's own mapping stays as read
    part = out.parts[index]
    for name, item in value.items():
        if name in target:
            first = out.keyed.get((section, name))
            where = "the main config" if first is None else out.parts[first].name
            out.problems.append(FileProblem(part.name, (section, name), f"{section[:-1]} "
                                            f"{name!r} is already defined in {where}",
                                            part.positions.of((section, name))))
            continue
        target[name] = item
        out.keyed[(section, name)] = index


_KEYED_PATH = re.compile(
    r'^(sources|detectors)(?:\.([A-Za-z0-9_][A-Za-z0-9_\-]*)|\[("(?:[^"\\]|\\.)*")\])(.*)$',
    re.S)


def shown_path(included: Included | None, path: str) -> str:
    """A formatted path of the merged document (``metrics[7].history``) as the user finds
    it: ``teams/support.yaml: metrics[1].history`` when it is in an included file."""
    if included is None or not included.parts:
        return path
    for merged, local_list in _LISTS.items():
        prefix = ".".join(map(str, merged))
        if m := re.match(rf"^{re.escape(prefix)}\[(\d+)\](.*)$", path, re.S):
            part, local = included.locate((*merged, int(m.group(1))))
            if part is None:
                return path
            shown = ".".join(map(str, local_list))
            return f"{included.parts[part].name}: {shown}[{local[len(local_list)]}]{m.group(2)}"
    if m := _KEYED_PATH.match(path):
        name = m.group(2) if m.group(2) is not None else json.loads(m.group(3))
        part, _ = included.locate((m.group(1), name))
        if part is not None:
            return f"{included.parts[part].name}: {path}"
    return path


_FIRST_AT = re.compile(r"\(first at ((?:metrics|alerting\.receivers|alerting\.route\.routes)"
                       r"\[\d+\])\)")


def shown_in_message(included: Included | None, message: str, file: str | None) -> str:
    """A message of a problem in ``file`` (None: the main file) whose ``(first at
    metrics[3])`` names a merged path: the path as the user finds it, with its file when
    that is another one (``(first at teams/checkout.yaml: metrics[0])``)."""
    if included is None or not included.parts:
        return message

    def one(m: re.Match[str]) -> str:
        shown = shown_path(included, m.group(1))
        if shown == m.group(1):  # the main file's
            return m.group(0) if file is None else f"(first at {shown} of the main config)"
        return f"(first at {shown.removeprefix(f'{file}: ')})"

    return _FIRST_AT.sub(one, message)
