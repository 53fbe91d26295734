"""The ``cxmon`` command line."""

from __future__ import annotations

import inspect
import json
import logging
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer
import typer.core
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from monitor.cli_options import GlobalLogFormat, GlobalLogLevel, set_global_logging
from monitor.config import MonitorConfig, load_config
from monitor.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from collections.abc import Collection

    from monitor.store import Store

def _is_tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Group(typer.core.TyperGroup):
    """The ``cxmon`` group. When stderr is not a terminal, usage errors are printed as plain
    lines (``Error: ...``), never boxed or hard-wrapped at 80 columns, so logs can be grepped."""

    def main(self, args=None, prog_name=None, complete_var=None,  # type: ignore[override]
             standalone_mode=True, **extra):
        if not standalone_mode or _is_tty(sys.stderr):
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # click's usage and file errors
            if type(exc).__name__ != "NoArgsIsHelpError":  # its help is already printed
                exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        """``cxmon validate --log-level debug``: the global log options go before the
        command, which "No such option" alone did not say."""
        try:
            return super().invoke(ctx)
        except typer.TyperException as exc:
            name = getattr(exc, "option_name", None)
            where = getattr(getattr(exc, "ctx", None), "command_path", "").partition(" ")[2]
            if name in ("--log-level", "--log-format") and where:
                value = "<level>" if name == "--log-level" else "<format>"
                said = getattr(exc, "message", "")
                exc.message = (  # type: ignore[attr-defined]
                    f"{said}: {where} has none of its own; put it before the command: "
                    f"cxmon {name} {value} {where} ...")
            raise

    def resolve_command(self, ctx, args):  # type: ignore[no-untyped-def]
        """An unknown command that a subgroup has (``cxmon status``) names where it lives."""
        from monitor.cli_hints import nested_hint

        try:
            return super().resolve_command(ctx, args)
        except typer.TyperException as exc:  # a usage error: "No such command 'status'."
            said = exc.format_message()  # type: ignore[attr-defined]
            hint = nested_hint(self, ctx, args[0]) if args else None
            if (hint is None or not said.startswith("No such command")
                    or "Did you mean" in said):
                raise
            exc.message = f"{said.rstrip('.')}. {hint}"  # type: ignore[attr-defined]
            raise


def _hide_flag_types() -> None:
    """Typer's rich help shows a ``<bool>`` type beside every flag (``--help`` included),
    as if it took a value; flags take none, so show no type for them. A repeatable option
    or argument showed ``<list[str]>``, Python's spelling: each occurrence takes one value,
    so show that value's type; an argument with a metavar already says what to type."""
    option, argument = typer.core.TyperOption, typer.core.TyperArgument
    shown_option, shown_argument = option.display_type_rich, argument.display_type_rich

    def one_value(shown: str | None) -> str | None:
        return re.sub(r"<list\[(\w+)\]>", r"<\1>", shown) if shown else shown

    def option_type(self, ctx):  # type: ignore[no-untyped-def]
        return None if getattr(self, "is_flag", False) else one_value(shown_option(self, ctx))

    def argument_type(self, ctx):  # type: ignore[no-untyped-def]
        return None if self.metavar else one_value(shown_argument(self, ctx))

    option.display_type_rich = option_type  # type: ignore[method-assign]
    argument.display_type_rich = argument_type  # type: ignore[method-assign]


_hide_flag_types()


def _unwrap_command_summaries() -> None:
    """A group's command list shows each command's first help paragraph; in rich mode Typer
    keeps the docstring's line breaks there, so a two-line summary was broken mid-sentence
    (``notifications not sent: pending`` / ``(with the worker ...``). Join its lines."""
    import typer.rich_utils as rich_utils

    make = rich_utils._make_command_help

    def make_command_help(*, help_text: str, markup_mode):  # type: ignore[no-untyped-def]
        first, sep, rest = inspect.cleandoc(help_text).partition("\n\n")
        if not first.startswith("\b"):
            first = " ".join(first.split("\n"))
        return make(help_text=first + sep + rest, markup_mode=markup_mode)

    rich_utils._make_command_help = make_command_help  # type: ignore[assignment]


_unwrap_command_summaries()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"cxmon {version('cxmon')}")
        except PackageNotFoundError:  # pragma: no cover - a source tree that is not installed
            typer.echo("cxmon (not installed)")
        raise typer.Exit()


app = typer.Typer(
    cls=_Group,
    help="cxmon: anomaly detection and alerting for customer-experience KPIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
alerts_app = typer.Typer(help="Inspect the alert outbox; run its delivery worker.",
                         no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    log_level: GlobalLogLevel = None,
    log_format: GlobalLogFormat = None,
) -> None:
    """cxmon: anomaly detection and alerting for customer-experience KPIs."""
    set_global_logging(log_level, log_format)
    err_console.as_json = False  # a command's _setup_logging sets it (one process, many runs)
    if log_level is not None or log_format is not None:  # else Python's default: warnings
        _setup_logging(log_level or "warning", log_format or "auto")


class _ErrConsole(Console):
    """stderr for the messages a command prints itself (a config's problems, ``store: ...``,
    ``another cxmon run holds the store``); with ``--log-format json`` each is one JSON
    object like a log record (level from its colour: red ERROR, else WARNING).

    Why: under systemd with ``CXMON_LOG_FORMAT=json``, the lines saying why ``cxmon run``
    would not start were the only ones a JSON log shipper could not parse."""

    as_json = False

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        if not self.as_json or not all(isinstance(o, str) for o in objects):
            super().print(*objects, **kwargs)
            return
        from rich.text import Text

        from monitor.redact import SecretFilter

        markup = " ".join(objects)
        level = logging.ERROR if "red" in markup or "✗" in markup else logging.WARNING
        record = logging.LogRecord("monitor.cli", level, __file__, 0,
                                   Text.from_markup(markup).plain.strip(), None, None)
        SecretFilter().filter(record)
        sys.stderr.write(JsonFormatter().format(record) + "\n")
        sys.stderr.flush()


console = Console()
# Not a terminal (a log file, a pipe): no hard wrap at 80 columns, one problem per line.
err_console = _ErrConsole(stderr=True, soft_wrap=not _is_tty(sys.stderr))



class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record and line, for log shippers that would otherwise parse the
    text with a regex: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and, for
    an exception, ``exception`` (the traceback, scrubbed of URL secrets like the message)."""

    def format(self, record: logging.LogRecord) -> str:
        from monitor.log_time import utc_stamp
        from monitor.redact import redact_text

        out: dict[str, Any] = {
            "time": utc_stamp(record.created),
            "level": record.levelname, "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def _setup_logging(level: str, log_format: str = "auto") -> None:
    """Rich log lines on a terminal; plain one-line records (never wrapped) in a file or pipe,
    or with ``text``; one JSON object per line with ``json``."""
    from monitor.log_time import UtcFormatter, rich_utc_time

    handler: logging.Handler
    formatter: logging.Formatter
    err_console.as_json = log_format == "json"
    if log_format == "json":
        handler, formatter = _StderrHandler(), JsonFormatter()
    elif log_format == "auto" and _is_tty(sys.stderr):
        handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=False,
                              log_time_format=rich_utc_time)
        formatter = logging.Formatter("%(message)s")
    else:
        handler = _StderrHandler()  # times in UTC, like every time in the messages
        formatter = UtcFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    from monitor.redact import SecretFilter

    handler.addFilter(SecretFilter())
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for noisy in ("apscheduler", "alembic", "cmdstanpy", "prophet"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # HTTP clients log every request URL at INFO; receivers' URLs may carry secrets. The
    # object-store clients log each request's headers at DEBUG: the access key id and an
    # S3 session token (X-Amz-Security-Token) of storage_options
    for client in ("httpx", "httpcore", "urllib3", "slack_sdk", "botocore", "aiobotocore",
                   "boto3", "s3fs", "fsspec", "gcsfs", "adlfs", "azure"):
        logging.getLogger(client).setLevel(logging.WARNING)


def _load(
    path: Path, env: dict[str, str] | None = None, *, needs: Collection[str] | None = None
) -> MonitorConfig:
    """Load a config or print every problem and exit 2. ``needs``: the top-level sections the
    command uses; an unset ``${VAR}`` elsewhere is no error (None: every section)."""
    try:
        return load_config(path, env=env, needs=needs)
    except ConfigError as exc:
        err_console.print(f"[bold red]{escape(exc.source)}: {len(exc.problems)} problem(s)[/]")
        for p in exc.problems:
            where = escape(f"{p.file}: {p.path or '<root>'}" if p.file else p.path or "<root>")
            err_console.print(f"  [red]✗[/] [bold]{where}[/]: {escape(p.message)}",
                              highlight=False)
        raise typer.Exit(2) from None


def _store_file(config: MonitorConfig) -> Path | None:
    """The store's SQLite file (None for a server database or an in-memory one); a URL that
    does not parse is a usage error."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(config.store.url)
    except Exception:
        err_console.print("[bold red]store:[/] the store URL is not a valid SQLAlchemy URL")
        raise typer.Exit(1) from None
    path = url.database or ""
    is_file = url.get_backend_name() == "sqlite" and path not in ("", ":memory:")
    return Path(path) if is_file else None


def _open_store(config: MonitorConfig, *, must_exist: bool = False) -> Store:
    """Open (and migrate) the store. ``must_exist``: for read-only commands, a mistyped
    SQLite path is an error rather than a fresh, empty store that reports all clear."""
    from monitor.store import Store

    file = _store_file(config)
    is_file = file is not None
    if must_exist and file is not None and not file.exists():
        where = file.resolve()
        err_console.print(f"[bold red]store:[/] no store at {escape(str(where))} (check "
                          "store: in the config; a relative sqlite path is taken from the "
                          "current directory; `cxmon run` creates the store)",
                          highlight=False)
        raise typer.Exit(1)
    try:  # a server database (PostgreSQL) that must exist: look, create nothing
        return Store.open(config.store.url, create=not (must_exist and not is_file))
    except StoreError as exc:
        err_console.print(f"[bold red]store:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


def _parse_time(text: str, option: str) -> datetime:
    """``text`` as a UTC time (naive = UTC), or a usage error naming ``option``."""
    # ISO only: pandas also reads 11/10/2026, as November 10 (month first), so a European
    # 10/11/2026 would replay the wrong month without a word
    try:
        if not re.match(r"\s*\d{4}-\d{2}-\d{2}", text):
            raise ValueError(text)
        ts = pd.Timestamp(text)
    except ValueError:
        raise typer.BadParameter(
            f"not a time: {text!r} (use ISO 8601, e.g. 2026-01-05T00:00Z)", param_hint=option
        ) from None
    if ts is pd.NaT:  # '' and 'nat' parse to NaT, which has no time zone to convert
        raise typer.BadParameter(f"not a time: {text!r} (use ISO 8601, e.g. "
                                 "2026-01-05T00:00Z)", param_hint=option)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC").to_pydatetime()



def _print_table(table: Table) -> None:
    """Print a table; not to a terminal (a pipe, a file): one row per line, however long."""
    if _is_tty(sys.stdout):
        console.print(table)
    else:
        Console(file=console.file, width=_table_width(table)).print(table)


def _table_width(table: Table) -> int:
    """The width a table needs to print every row on one line."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update(width=10_000), table).maximum


def _hm(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M") if ts else "-"


def _hms(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"


def _g(x: object) -> str:
    """A number in 4 significant digits (anything else as is)."""
    return f"{x:.4g}" if isinstance(x, int | float) else str(x)


def unknown_metric_message(unknown: list[str], defined: list[str]) -> str:
    """``unknown metric 'x' (did you mean 'y'?); defined: ...``: every ``--metric`` option
    says it the same way, with the close name for a typo, so the fix needs no trip to the
    config file.

    >>> unknown_metric_message(["contact_volum"], ["contact_volume", "csat"])
    "unknown metric 'contact_volum' (did you mean 'contact_volume'?); defined: contact_volume, csat"
    >>> unknown_metric_message(["a", "b"], ["kpi"])
    "unknown metric(s): 'a', 'b'; defined: kpi"
    """
    import difflib

    if len(unknown) == 1:
        close = difflib.get_close_matches(unknown[0], defined, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        head = f"unknown metric {unknown[0]!r}{hint}"
    else:
        head = f"unknown metric(s): {', '.join(map(repr, unknown))}"
    return f"{head}; defined: {', '.join(defined)}"


# --- command groups defined in other modules: one register line each, below this marker ---
from monitor.bench.cli import bench_app  # noqa: E402

app.add_typer(bench_app, name="bench")
__import__("monitor.cli_validate").cli_validate.register(app)  # validate, config-schema
__import__("monitor.cli_run").cli_run.register(app)  # run
__import__("monitor.cli_demo").cli_demo.register(app)  # demo
__import__("monitor.cli_backtest").cli_backtest.register(app)  # backtest
__import__("monitor.cli_status").cli_status.register(app, alerts_app)  # anomalies, alerts status
__import__("monitor.cli_alerting").cli_alerting.register(app)  # routes test, silence
__import__("monitor.cli_dashboards").cli_dashboards.register(app)  # dashboards build, push
__import__("monitor.cli_rca").cli_rca.register(app)  # rca
__import__("monitor.cli_sources").cli_sources.register(app)  # backfill
__import__("alerts.cli").cli.register(app, alerts_app)  # alerts deliver, serve-feedback
__import__("monitor.cli_score").cli_score.register(app)  # score, feedback
__import__("monitor.cli_import").cli_import.register(app)  # import lookout
__import__("monitor.cli_calendar").cli_calendar.register(app)  # calendar


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["app", "main"]
