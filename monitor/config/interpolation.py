"""``${VAR}`` interpolation in string values, and scrubbing the values it inserted.

Values that come from the environment are treated as secrets: the interpolator remembers
which paths hold them so no problem message ever quotes them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from monitor.config.validator_errors import Loc

UNSET_PREFIX = "environment variable "
_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


class _Interpolator:
    """Replaces ``${VAR}`` / ``${VAR:-default}`` in string values; ``$${`` is a literal ``${``."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[tuple[Loc, str]] = []
        self.unset: list[Loc] = []  # paths whose value is unknown: skip their other problems
        self.secrets: dict[Loc, list[str]] = {}  # environment values used at each path

    def walk(self, value: Any, loc: Loc) -> Any:
        if isinstance(value, str):
            return self._string(value, loc)
        if isinstance(value, dict):
            return {k: self.walk(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, (*loc, i)) for i, v in enumerate(value)]
        return value

    def _string(self, text: str, loc: Loc) -> str:
        if "${" not in text:
            return text
        used: list[str] = []
        failed = False

        def sub(m: re.Match[str]) -> str:
            nonlocal failed
            if m.group(0) == "$${":
                return "${"
            name, default = m.group(1), m.group(2)
            if name is None:
                failed = True
                self.problems.append(
                    (
                        loc,
                        "invalid variable reference: use ${NAME}, ${NAME:-default}, "
                        "or $${ for a literal ${",
                    )
                )
                return ""
            value = self.env.get(name)
            if value is None or (value == "" and default is not None):
                if default is not None:
                    return default
                failed = True
                self.problems.append((loc, f"{UNSET_PREFIX}{name} is not set"))
                return ""
            if value:
                used.append(value)
            return value

        result = _VAR.sub(sub, text)
        if failed:
            self.unset.append(loc)
        if used:
            self.secrets[loc] = [result, *used]
        return result


def _scrub(message: str, loc: Loc, secrets: Mapping[Loc, list[str]]) -> str:
    """Hide environment values: everywhere if long enough, and at their own path always."""
    local = [s for key, values in secrets.items() if loc[: len(key)] == key for s in values
             if s.strip()]  # a blank value hides nothing, and masking it garbles the message
    everywhere = [s for values in secrets.values() for s in values if len(s) >= 4]
    for secret in sorted({*local, *everywhere}, key=len, reverse=True):
        message = message.replace(secret, "***")
    return message
