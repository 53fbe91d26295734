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


#: How the long-running commands write log records (``auto``: rich on a terminal, one plain
#: line per record otherwise); ``json`` is for log shippers (journald to Loki, Vector, ...).
LogFormat = Annotated[
    Literal["auto", "text", "json"],
    typer.Option("--log-format", envvar="CXMON_LOG_FORMAT", show_envvar=True,
                 case_sensitive=False,
                 help="auto: rich on a terminal, else one plain line per record; text: always "
                      "plain lines; json: one JSON object per line (time, level, logger, "
                      "message) for log shippers."),
]


#: The config file of every command that reads one; ``CXMON_CONFIG`` saves typing ``-c`` in a
#: shell session (an explicit ``-c`` wins).
ConfigOpt = Annotated[Path, typer.Option(
    "--config", "-c", envvar="CXMON_CONFIG", show_envvar=True,
    help="cxmon YAML config file.")]


def input_name(source: str) -> str:
    """How messages name an ``--input``: ``stdin`` for ``-``, else the path as given."""
    return "stdin" if source == "-" else source


def read_input_text(source: str, option: str = "--input") -> str:
    """The text of a CSV ``--input`` (``-`` = stdin; UTF-8, a byte-order mark dropped), or a
    one-line usage error (exit 2) naming ``option``: stdin is a terminal, no such file, a
    directory, not UTF-8. Shared so that every command reading a CSV takes ``-`` alike."""
    import sys

    if source == "-" and sys.stdin.isatty():
        raise typer.BadParameter("stdin is a terminal: pipe a CSV in or give --input FILE",
                                 param_hint=option)
    if source != "-":
        path = Path(source)
        if not path.exists() or path.is_dir():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise typer.BadParameter(f"{source} {what}", param_hint=option)
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise typer.BadParameter(f"{input_name(source)}: not a CSV ({exc})",
                                 param_hint=option) from None
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {source}: {exc.strerror or exc}",
                                 param_hint=option) from None
    return text.removeprefix("\ufeff")
