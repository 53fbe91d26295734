"""YAML loading that keeps the position of every path and finds duplicate keys.

One pass over the node tree gives the line of each path, so problems are listed in document
order, and reports duplicate keys that PyYAML would silently collapse."""

from __future__ import annotations

from typing import Any

import yaml

from monitor.config.validator_errors import Loc
from monitor.errors import ConfigError, Problem


class _Positions:
    """Start/end (line, column) of every path in the document, to sort problems by."""

    def __init__(self) -> None:
        self.spans: dict[Loc, tuple[tuple[int, int], tuple[int, int]]] = {}

    def add(self, loc: Loc, start: yaml.Mark, end: yaml.Mark) -> None:
        # Last one wins, like the value YAML keeps for a duplicate key.
        self.spans[loc] = ((start.line, start.column), (end.line, end.column))

    def of(self, loc: Loc) -> tuple[int, int]:
        """Where a path starts; for a missing key, the end of its closest existing parent."""
        if loc in self.spans:
            return self.spans[loc][0]
        for n in range(len(loc) - 1, -1, -1):
            if loc[:n] in self.spans:
                return self.spans[loc[:n]][1]
        return (1 << 30, 0)


def _walk_nodes(
    node: yaml.Node, loc: Loc, pos: _Positions, problems: list[tuple[Loc, str, tuple[int, int]]]
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = key_node.value
            where = (key_node.start_mark.line, key_node.start_mark.column)
            if key in seen:
                msg = f"duplicate key {key!r} (first defined at line {seen[key] + 1})"
                problems.append(((*loc, key), msg, where))
            else:
                seen[key] = key_node.start_mark.line
            pos.add((*loc, key), key_node.start_mark, value_node.end_mark)
            _walk_nodes(value_node, (*loc, key), pos, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            pos.add((*loc, i), item.start_mark, item.end_mark)
            _walk_nodes(item, (*loc, i), pos, problems)


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps an impossible date (``2026-13-01``, which YAML's timestamp
    pattern matches) as text, so validation reports it at its path instead of the loader
    failing with a traceback."""

    def construct_yaml_timestamp(self, node: yaml.Node) -> Any:  # type: ignore[override]
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _load_yaml(text: str, source: str) -> tuple[Any, _Positions, list[tuple[Loc, str, Any]]]:
    pos = _Positions()
    problems: list[tuple[Loc, str, Any]] = []
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, pos, problems
        pos.add((), node.start_mark, node.end_mark)
        _walk_nodes(node, (), pos, problems)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = "; ".join(p for p in (exc.context, exc.problem) if p)
        if "'\\t'" in what:  # PyYAML's words for a tab; an editor often hides which line has it
            what += " (YAML indents with spaces only: replace the tab)"
        raise ConfigError([Problem("", f"invalid YAML{where}: {what}")], source) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem("", f"invalid YAML: {exc}")], source) from None
    finally:
        loader.dispose()
    return data, pos, problems
