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
INCLUDABLE = ("sources", "metrics", "detectors")
_KEYED = ("sources", "detectors")


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
    #: (first, end, part index) of the merged ``metrics`` list that came from each part
    metric_spans: list[tuple[int, int, int]] = field(default_factory=list)
    #: (section, name) -> part index, for the sources and detectors of included files
    keyed: dict[tuple[str, str], int] = field(default_factory=dict)

    def locate(self, loc: Loc) -> tuple[int | None, Loc]:
        """The part a merged path is in (None: the main file) and the path inside it."""
        if len(loc) >= 2 and loc[0] == "metrics" and isinstance(loc[1], int):
            for first, end, part in self.metric_spans:
                if first <= loc[1] < end:
                    return part, ("metrics", loc[1] - first, *loc[2:])
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
    main_metrics = merged.get("metrics")
    metrics: list[Any] = list(main_metrics) if isinstance(main_metrics, list) else []
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
                if not isinstance(value, list):
                    out.problems.append(FileProblem(shown, (key,), "expected a list of "
                                                    "metrics", where))
                    continue
                out.metric_spans.append((len(metrics), len(metrics) + len(value), index))
                metrics += value
            elif not isinstance(value, dict):
                out.problems.append(FileProblem(shown, (key,), f"expected a mapping of "
                                                f"{key} by name", where))
            else:
                _merge_keyed(out, merged, key, value, index)
    if metrics or out.metric_spans:
        merged["metrics"] = metrics
    return out


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


_METRIC_PATH = re.compile(r"^metrics\[(\d+)\](.*)$", re.S)
_KEYED_PATH = re.compile(
    r'^(sources|detectors)(?:\.([A-Za-z0-9_][A-Za-z0-9_\-]*)|\[("(?:[^"\\]|\\.)*")\])(.*)$',
    re.S)


def shown_path(included: Included | None, path: str) -> str:
    """A formatted path of the merged document (``metrics[7].history``) as the user finds
    it: ``teams/support.yaml: metrics[1].history`` when it is in an included file."""
    if included is None or not included.parts:
        return path
    if m := _METRIC_PATH.match(path):
        part, local = included.locate(("metrics", int(m.group(1))))
        if part is not None:
            return f"{included.parts[part].name}: metrics[{local[1]}]{m.group(2)}"
    elif m := _KEYED_PATH.match(path):
        name = m.group(2) if m.group(2) is not None else json.loads(m.group(3))
        part, _ = included.locate((m.group(1), name))
        if part is not None:
            return f"{included.parts[part].name}: {path}"
    return path
