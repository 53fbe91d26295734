"""Options shared by commands in several CLI modules, defined once so they validate alike."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

#: The standard :mod:`logging` level names, lower case (any case is accepted).
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

LogLevel = Annotated[
    Literal["debug", "info", "warning", "error", "critical"],
    typer.Option("--log-level", help="Log level.", case_sensitive=False),
]


#: The config file of every command that reads one; ``CXMON_CONFIG`` saves typing ``-c`` in a
#: shell session (an explicit ``-c`` wins).
ConfigOpt = Annotated[Path, typer.Option(
    "--config", "-c", envvar="CXMON_CONFIG", show_envvar=True,
    help="cxmon YAML config file.")]
