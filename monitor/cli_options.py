"""Options shared by commands in several CLI modules, defined once so they validate alike."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

#: The standard :mod:`logging` level names, lower case (any case is accepted).
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

LogLevel = Annotated[
    Literal["debug", "info", "warning", "error", "critical"],
    typer.Option("--log-level", help="Log level.", case_sensitive=False),
]
