"""Errors a user can act on. Each subclasses a built-in so callers can catch broadly."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config, at a path such as ``metrics[0].detectors[1]``."""

    path: str
    message: str
    #: the file the path is in, when not the main config file (``include:``)
    file: str | None = None

    def __str__(self) -> str:
        where = self.path or "<root>"
        return f"{self.file}: {where}: {self.message}" if self.file else f"{where}: {self.message}"


class ConfigError(ValueError):
    """A config was rejected; ``problems`` lists every problem found, each with its path."""

    def __init__(self, problems: list[Problem], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


class StoreError(RuntimeError):
    """The store could not be opened or migrated."""
