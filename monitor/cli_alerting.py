"""``cxmon routes test`` and ``cxmon silence add|query|expire`` (amtool-like)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from alerts.matchers import MatcherError, parse_matcher, parse_matchers
from monitor.cli_options import ConfigOpt

if TYPE_CHECKING:
    from alerts.routing import Router
    from monitor.config import MonitorConfig
    from monitor.store import Store

routes_app = typer.Typer(help="Inspect the alert route tree.", no_args_is_help=True)


def _labels(args: list[str]) -> dict[str, str]:
    """``key=value`` arguments (quotes optional), parsed like amtool parses them."""
    out: dict[str, str] = {}
    for arg in args:
        try:
            m = parse_matcher(arg)
        except MatcherError as exc:
            raise typer.BadParameter(f"Failed to parse labels: {exc}",
                                     param_hint="LABELS") from None
        if m.op != "=":
            raise typer.BadParameter("labels must be specified as key=value pairs",
                                     param_hint="LABELS")
        out[m.name] = m.value
    return out


@routes_app.command("test")
def routes_test(
    config: ConfigOpt,
    labels: Annotated[list[str] | None, typer.Argument(help="label=value ...")] = None,
    tree: Annotated[bool, typer.Option("--tree", help="Print the routing tree.")] = False,
    verify: Annotated[
        str | None,
        typer.Option("--verify-receivers", help="Exit 1 unless the receivers are exactly these "
                     "(comma-separated)."),
    ] = None,
) -> None:
    """Print the receivers a label set reaches, comma-separated, in Alertmanager's order.

    Like 'amtool config routes test'."""
    from alerts.routing import Router, route_warnings
    from monitor.cli import _load

    cfg = _load(Path(config), needs={"alerting"})
    lset = _labels(labels or [])
    router = Router.from_config(cfg.alerting)
    for where, text in route_warnings(cfg.alerting, cfg.metrics):
        typer.echo(f"warning {cfg.shown_path(where)}: {text}", err=True)
    if tree:
        typer.echo(router.tree(lset))
        typer.echo("")
    slug = ",".join(router.receivers(lset))
    typer.echo(slug)
    for hint in _label_hints(cfg, lset, router):  # stderr: stdout stays amtool's
        typer.echo(hint, err=True)
    if verify is not None and verify != slug:
        typer.echo("WARNING: Expected receivers did not match resolved receivers.")
        raise typer.Exit(1)


def _label_hints(cfg: MonitorConfig, lset: dict[str, str], router: Router) -> list[str]:
    """What the label set probably meant: a label no alert carries (``tem=support``), and
    the labels a named metric's alerts carry that were left out (``metric=tickets`` alone
    misses its ``team: support``, so it seemed to reach the default receiver)."""
    import difflib

    from alerts.routing import label_values

    known = label_values(cfg.metrics)
    out = []
    for name in lset:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            out.append(f"warning: label {name} is on no alert of this config"
                       + (f" (did you mean {close[0]}?)" if close else ""))
    metric = next((m for m in cfg.metrics
                   if m.name in (lset.get("metric"), lset.get("alertname"))), None)
    if metric is not None:
        missing = {k: str(v) for k, v in metric.labels.items() if k not in lset}
        if missing:
            full = {**lset, **missing}
            shown = " ".join(f"{k}={v}" for k, v in missing.items())
            out.append(f"note: the alerts of {metric.name} also carry {shown}; with them "
                       f"they reach {','.join(router.receivers(full))}")
    return out


silence_app = typer.Typer(help="Add, list and expire silences (amtool-like).",
                          no_args_is_help=True)


def _store(config: Path) -> Store:
    """The configured store; a missing SQLite file is an error (exit 1), never a new store:
    a silence written to a fresh, mistyped store would silence nothing."""
    from monitor.cli import _load, _open_store

    return _open_store(_load(Path(config), needs={"store"}), must_exist=True)


def _warn_dead_silence(config: Path, matchers: list[str]) -> None:
    """Say on stderr which matchers of a new silence no alert of the config can satisfy
    (``team="checkout"`` where the metrics say ``checkout-squad``): it is stored all the
    same (amtool's way; metrics may be added), but would silence nothing today."""
    from alerts.routing import dead_matchers, label_values
    from monitor.cli import _load

    parsed = [m for line in matchers for m in parse_matchers(line)]
    for text in dead_matchers(parsed, label_values(_load(Path(config), needs={"store"})
                                                   .metrics)):
        typer.echo(f"warning: {text}: this silence mutes nothing", err=True)


def _silence_matchers(args: list[str]) -> list[str]:
    """amtool style: a first argument without an operator means ``alertname=<it>``."""
    out = list(args)
    if out and not any(op in out[0] for op in ("=", "!=", "=~", "!~")):
        out[0] = f"alertname={out[0]}"
    return out


@silence_app.command("add")
def silence_add(
    config: ConfigOpt,
    matchers: Annotated[list[str], typer.Argument(help="Matchers, e.g. 'team=\"checkout\"'")],
    duration: Annotated[str, typer.Option("--duration", "-d", help="e.g. 2h (from --start; "
                                          "ignored with --end)")] = "1h",
    start: Annotated[str | None, typer.Option(
        "--start", help="When it begins, ISO 8601 UTC (e.g. 2026-01-10T22:00Z; a time without "
        "zone is UTC); default now. A silence that starts later is pending until then.")]
    = None,
    end: Annotated[str | None, typer.Option(
        "--end", help="When it ends, ISO 8601 UTC; instead of --duration.")] = None,
    comment: Annotated[str, typer.Option("--comment", help="Why.")] = "",
    author: Annotated[str, typer.Option("--author", "-a",
                                        help="Who (default: $USER).")] = "",
) -> None:
    """Silence matching notifications from --start (default now) for --duration or until
    --end; prints the silence id. A maintenance window ahead (Saturday night) is a silence
    with --start and --end: it is pending until it starts."""
    from alerts.silences import add_silence
    from monitor.cli import _parse_time
    from monitor.clock import SystemClock
    from monitor.durations import parse_duration

    try:
        length = parse_duration(duration)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--duration'") from None
    now = SystemClock().now()
    starts_at = _parse_time(start, "'--start'") if start is not None else None
    ends_at = _parse_time(end, "'--end'") if end is not None else None
    if ends_at is not None and ends_at <= max(starts_at or now, now):
        # amtool refuses a silence that is over before it is stored: it would silence nothing
        raise typer.BadParameter(f"{end} is not after --start and now ({_utc_time(now)})",
                                 param_hint="'--end'")
    st = _store(config)
    try:
        s = add_silence(st, _silence_matchers(matchers), now=now, starts_at=starts_at,
                        ends_at=ends_at, duration=length, comment=comment,
                        created_by=author or os.environ.get("USER", "cxmon"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        st.close()
    _warn_dead_silence(config, list(s.matchers))
    typer.echo(s.id)


@silence_app.command("query")
def silence_query(
    config: ConfigOpt,
    matchers: Annotated[list[str] | None, typer.Argument(help="Only silences with these "
                                                         "matchers (exact, amtool-like)")] = None,
    expired: Annotated[bool, typer.Option("--expired", help="Show expired ones instead.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only ids.")] = False,
) -> None:
    """List active and pending silences (or --expired ones)."""
    from alerts.silences import list_silences
    from monitor.clock import SystemClock

    try:
        wanted = {str(m) for line in _silence_matchers(matchers or [])
                  for m in parse_matchers(line)}
    except MatcherError as exc:  # was a traceback
        raise typer.BadParameter(str(exc)) from None
    now = SystemClock().now()
    st = _store(config)
    try:
        rows = [s for s in list_silences(st)
                if (s.state(now) == "expired") == expired and wanted <= set(s.matchers)]
    finally:
        st.close()
    if quiet:
        for s in rows:
            typer.echo(s.id)
        return
    typer.echo(f"{'ID':36}  {'Matchers':40}  {'Starts At':23}  {'Ends At':23}  "
               f"{'Created By':12}  Comment")
    for s in rows:
        typer.echo(f"{s.id:36}  {' '.join(s.matchers):40}  {_utc_time(s.starts_at):23}  "
                   f"{_utc_time(s.ends_at):23}  {s.created_by:12}  {s.comment}")


def _utc_time(ts: datetime) -> str:
    """``2026-01-05 14:00:00 UTC``, as amtool prints silence times (naive = UTC).

    >>> from datetime import timedelta, timezone
    >>> _utc_time(datetime(2026, 1, 5, 16, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))))
    '2026-01-05 14:00:00 UTC'
    """
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@silence_app.command("expire")
def silence_expire(
    config: ConfigOpt,
    ids: Annotated[list[str], typer.Argument(help="Silence ids, or their first characters "
                                             "(as silence query shows them).")],
) -> None:
    """End silences now; says which ones it ended."""
    from alerts.silences import expire_silence, unended_ids
    from monitor.clock import SystemClock

    st = _store(config)
    problems = []
    try:
        for sid in ids:
            now = SystemClock().now()
            found = unended_ids(st, sid, now)
            if len(found) > 1:
                problems.append(f"{sid} matches {len(found)} silences ({', '.join(found)}): "
                                "give more characters")
            elif found and expire_silence(st, found[0], now):
                typer.echo(f"expired silence {found[0]}")
            else:
                problems.append(f"no active or pending silence with id {sid}")
    finally:
        st.close()
    for text in problems:
        typer.echo(text, err=True)
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``routes`` and ``silence`` command groups to the ``cxmon`` app."""
    app.add_typer(routes_app, name="routes")
    app.add_typer(silence_app, name="silence")
