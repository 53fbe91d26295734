"""Options shared by commands in several CLI modules, defined once so they validate alike."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

#: The standard :mod:`logging` level names, lower case (any case is accepted).
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_Level = Literal["debug", "info", "warning", "error", "critical"]
_Format = Literal["auto", "text", "json"]

_FORMAT_HELP = ("auto: rich on a terminal, else one plain line per record; text: always "
                "plain lines; json: one JSON object per line (time, level, logger, message) "
                "for log shippers.")

#: ``cxmon --log-level LEVEL COMMAND``: logging for every command (the root option).
GlobalLogLevel = Annotated[_Level | None, typer.Option(
    "--log-level", metavar="<level>", case_sensitive=False,
    help="Log level of any command: debug, info, warning, error, critical (default: "
         "warning; run and the workers: info). A command's own --log-level wins.")]

#: ``cxmon --log-format FORMAT COMMAND``; ``CXMON_LOG_FORMAT`` (systemd's EnvironmentFile)
#: sets it for every command. A command's own ``--log-format`` wins over both.
GlobalLogFormat = Annotated[_Format | None, typer.Option(
    "--log-format", metavar="<format>", envvar="CXMON_LOG_FORMAT", show_envvar=True,
    case_sensitive=False, help=_FORMAT_HELP)]


def log_level_option(default: str) -> Any:
    """A command's own ``--log-level`` (None: ``cxmon --log-level``, else ``default``, which
    the command passes to :func:`log_settings` too)."""
    return Annotated[_Level | None, typer.Option(
        "--log-level", metavar="<level>", case_sensitive=False,
        help=f"Log level: debug, info, warning, error, critical (default: cxmon --log-level, "
             f"else {default}).")]


#: ``--log-level`` of the long-running commands (run, alerts deliver, serve-feedback).
LogLevel = log_level_option("info")

#: How the long-running commands write log records (None: the global ``--log-format`` or
#: ``CXMON_LOG_FORMAT``, else ``auto``: rich on a terminal, one plain line per record
#: otherwise); ``json`` is for log shippers (journald to Loki, Vector, ...).
LogFormat = Annotated[_Format | None, typer.Option(
    "--log-format", metavar="<format>", case_sensitive=False,
    help=_FORMAT_HELP + " Default: cxmon --log-format, else CXMON_LOG_FORMAT, else auto.")]


#: ``cxmon --log-level/--log-format``, as the root callback last read them (it runs before
#: every command, so a command always sees the values of its own command line).
_global_logging: dict[str, str | None] = {"level": None, "format": None}


def set_global_logging(level: str | None, log_format: str | None) -> None:
    """Remember the root's options for :func:`log_settings` (called by the root callback)."""
    _global_logging.update(level=level, format=log_format)


def log_settings(level: str | None, log_format: str | None, default_level: str
                 ) -> tuple[str, str]:
    """The level and format a command logs with: its own option, else the root's
    (``cxmon --log-level debug run``; the format also from ``CXMON_LOG_FORMAT``), else its
    default.

    >>> set_global_logging("debug", None)
    >>> log_settings(None, None, "info"), log_settings("error", "json", "info")
    (('debug', 'auto'), ('error', 'json'))
    >>> set_global_logging(None, None)
    """
    return (level or _global_logging["level"] or default_level,
            log_format or _global_logging["format"] or "auto")


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
