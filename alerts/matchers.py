"""Alertmanager label matchers: ``team="checkout"``, ``severity=~"high|critical"``,
``journey!="support"``, ``region!~"us.*"``, and the legacy ``match`` / ``match_re`` maps.

The parser follows Alertmanager 0.25's ``pkg/labels/parse.go`` (the syntax ``amtool`` and the
``matchers:`` config key accept): a label name, an operator, and a value that may be
double-quoted, with OpenMetrics escapes (``\\"``, ``\\n``, ``\\\\``). A list such as
``{a="1", b=~"x|y"}`` is split on commas outside quotes. Regexes are anchored the way
Alertmanager anchors them, ``^(?:REGEX)$``: ``env=~"prod"`` does not match ``production``.

A missing label matches as the empty string (``team!="x"`` matches an alert without ``team``,
``team=""`` matches it too), as in Alertmanager.

Regexes are Go RE2 in Alertmanager; here they run on Python's ``re`` with ASCII classes
(``\\d``, ``\\w``, ``\\s`` are ASCII-only in Go too). Constructs RE2 rejects (look-around,
back-references, atomic groups, possessive quantifiers, inline flags other than ``i m s``) are
rejected, and POSIX classes such as ``[[:alpha:]]`` are translated, so a regex means the same
thing in both or is refused.

>>> m = parse_matcher('severity=~"high|critical"')
>>> m.matches({"severity": "critical"}), m.matches({"severity": "criticality"})
(True, False)
>>> [str(x) for x in parse_matchers('{team="checkout", journey!=support}')]
['team="checkout"', 'journey!="support"']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MatchType",
    "Matcher",
    "MatcherError",
    "compile_regex",
    "legacy_matchers",
    "matches_all",
    "parse_matcher",
    "parse_matchers",
]

LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# Alertmanager 0.25: label name (':' allowed), operator ('=~' before '='), raw value.
# Go's \s is [\t\n\f\r ]; (?s) lets the value span lines.
_GO_SPACE = "[\t\n\f\r ]"
_MATCHER_RE = re.compile(
    rf"^{_GO_SPACE}*([a-zA-Z_:][a-zA-Z0-9_:]*){_GO_SPACE}*(=~|=|!=|!~){_GO_SPACE}*"
    rf"((?s:.*?)){_GO_SPACE}*\Z"
)

MatchType = str  # one of "=", "!=", "=~", "!~"
_OPS = ("=", "!=", "=~", "!~")


class MatcherError(ValueError):
    """A matcher or regex that Alertmanager would reject."""


_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7F", "blank": "\\t ",
    "cntrl": "\\x00-\\x1F\\x7F", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}
_POSIX_RE = re.compile(r"\[:(\^?)([a-z]+):\]")
_BAD_OPCODES = {"ASSERT", "ASSERT_NOT", "GROUPREF", "GROUPREF_EXISTS", "ATOMIC_GROUP",
                "POSSESSIVE_REPEAT"}
_FLAGS_RE = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?[:)]")


def _scope_flags(pattern: str) -> str:
    """RE2's ``(?i)`` applies to the rest of the enclosing group, wherever it stands; Python
    only accepts global flags at the start. ``a(?i)b|c`` -> ``a(?i:b|c)``."""
    out: list[str] = []
    closers: list[int] = [0]  # per open group: how many scoped groups to close at its end
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if ch == "]" and not (pattern[i - 1] == "[" or pattern[i - 2:i] == "[^"):
                in_class = False
            out.append(ch)
        elif ch == "[":
            in_class = True
            out.append(ch)
        elif ch == "(":
            m = re.match(r"\(\?([a-zA-Z]*(?:-[a-zA-Z]*)?)\)", pattern[i:])
            if m and m.group(1):
                out.append(f"(?{m.group(1)}:")
                closers[-1] += 1
                i += m.end()
                continue
            closers.append(0)
            out.append(ch)
        elif ch == ")":
            out.append(")" * closers.pop() if len(closers) > 1 else "")
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    out.append(")" * closers[0])
    return "".join(out)


def _translate(pattern: str) -> str:
    def posix(m: re.Match[str]) -> str:
        neg, name = m.group(1), m.group(2)
        if name not in _POSIX:
            raise MatcherError(f"invalid character class range: [:{neg}{name}:]")
        if neg:
            raise MatcherError(f"negated POSIX class [:^{name}:] is not supported")
        return _POSIX[name]

    return _scope_flags(_POSIX_RE.sub(posix, pattern))


def _walk_opcodes(node: Any) -> Iterable[str]:
    """Every opcode name in an ``re._parser`` parse tree."""
    if hasattr(node, "data"):  # SubPattern
        for op, arg in node.data:
            yield str(op)
            yield from _walk_opcodes(arg)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _walk_opcodes(item)


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile ``pattern`` anchored as Alertmanager does; ``MatcherError`` if RE2 would
    reject it (or if it uses syntax whose meaning differs between RE2 and Python)."""
    for m in _FLAGS_RE.finditer(pattern):
        flags = (m.group(1) or "") + (m.group(2) or "")
        if any(f not in "ims" for f in flags) or m.group(0) == "(?)":
            raise MatcherError(f"error parsing regexp: invalid or unsupported Perl syntax: "
                               f"{m.group(0)!r}")
    text = _translate(pattern)
    if "{," in text and re.search(r"(?<!\\)\{,\d", text):
        raise MatcherError("error parsing regexp: '{,n}' is a literal in RE2; escape the '{'")
    try:
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(f"(?:{text})", re.ASCII)
        bad = {op for op in _walk_opcodes(parsed) if op in _BAD_OPCODES}
        compiled = re.compile(f"(?:{text})", re.ASCII)
    except re.error as exc:  # its position would count the (?: wrapper: name the pattern
        raise MatcherError(f"error parsing regexp {pattern!r}: {exc.msg}") from None
    except (RecursionError, OverflowError) as exc:
        raise MatcherError(f"error parsing regexp: {exc}") from None
    if bad:
        raise MatcherError(
            "error parsing regexp: invalid or unsupported Perl syntax "
            "(look-around, back-references, atomic groups and possessive quantifiers "
            "are not supported by Alertmanager)"
        )
    return compiled


@dataclass(frozen=True)
class Matcher:
    """One label matcher; ``matches`` treats a missing label as the empty string."""

    name: str
    op: MatchType
    value: str
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def create(cls, name: str, op: MatchType, value: str) -> Matcher:
        if op not in _OPS:
            raise MatcherError(f"unknown match operator {op!r}")
        regex = compile_regex(value) if op in ("=~", "!~") else None
        return cls(name, op, value, regex)

    def matches_value(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self.regex is not None
        hit = self.regex.fullmatch(value) is not None
        return hit if self.op == "=~" else not hit

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.matches_value(labels.get(self.name, ""))

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def parse_matcher(text: str) -> Matcher:
    """One matcher such as ``team="checkout"`` (quotes optional)."""
    m = _MATCHER_RE.match(text)
    if not m:
        raise MatcherError(f"bad matcher format: {text}")
    name, op, raw = m.group(1), m.group(2), m.group(3)
    expect_quote = raw.startswith('"')
    if expect_quote:
        raw = raw[1:]
    out: list[str] = []
    escaped = False
    last = len(raw) - 1
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            if ch == "n":
                out.append("\n")
            elif ch in '"\\':
                out.append(ch)
            else:
                out.append("\\" + ch)  # a spurious escape is a literal backslash
            continue
        if ch == "\\":
            if i < last:
                escaped = True
                continue
            out.append("\\")
        elif ch == '"':
            if not expect_quote or i < last:
                raise MatcherError(f"matcher value contains unescaped double quote: {m.group(3)}")
            expect_quote = False
        else:
            out.append(ch)
    if expect_quote:
        raise MatcherError(f"matcher value contains unescaped double quote: {m.group(3)}")
    return Matcher.create(name, op, "".join(out))


def parse_matchers(text: str) -> list[Matcher]:
    """A comma-separated list, optionally in braces: ``{a="1", b!~"x.*"}``."""
    text = text.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    token: list[str] = []
    inside = escaped = False
    for ch in text:
        if ch == "," and not inside:
            tokens.append("".join(token))
            token = []
            continue
        if ch == '"':
            if not escaped:
                inside = not inside
            else:
                escaped = False
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(ch)
    tail = "".join(token).strip()
    if tail:
        tokens.append(tail)
    return [parse_matcher(t) for t in tokens]


def legacy_matchers(match: Mapping[str, str] | None, match_re: Mapping[str, str] | None
                    ) -> list[Matcher]:
    """The deprecated ``match`` (equality) and ``match_re`` (anchored regex) maps."""
    out = [Matcher.create(k, "=", v) for k, v in (match or {}).items()]
    out += [Matcher.create(k, "=~", v) for k, v in (match_re or {}).items()]
    return out
