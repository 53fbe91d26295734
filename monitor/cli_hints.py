"""Hints for a mistyped top-level command that is really a subcommand (``cxmon status`` for
``cxmon alerts status``): the command line only suggests names of the group itself, so a new
user who guesses the short form was told "No such command" and nothing about where it lives."""

from __future__ import annotations

from typing import Any


def nested_commands(group: Any, ctx: Any, name: str) -> list[str]:
    """``"<group> <name>"`` for every direct subgroup of ``group`` (a Typer/click group)
    that has a command ``name``, e.g. ``["alerts status"]`` for ``status``.

    >>> import typer, typer.main
    >>> cli, alerts = typer.Typer(), typer.Typer()
    >>> _ = alerts.command("status")(lambda: None)
    >>> _ = alerts.command("deliver")(lambda: None)
    >>> cli.add_typer(alerts, name="alerts")
    >>> _ = cli.command("run")(lambda: None)
    >>> group = typer.main.get_command(cli)
    >>> ctx = group.make_context("cxmon", ["run"])
    >>> nested_commands(group, ctx, "status"), nested_commands(group, ctx, "nothing")
    (['alerts status'], [])
    """
    found = []
    for group_name in group.list_commands(ctx):
        sub = group.get_command(ctx, group_name)
        if hasattr(sub, "list_commands") and name in sub.list_commands(ctx):
            found.append(f"{group_name} {name}")
    return found


def nested_hint(group: Any, ctx: Any, name: str) -> str | None:
    """The sentence added to the "No such command" error (``Did you mean 'cxmon alerts
    status'?``), or None when no subgroup has such a command."""
    found = nested_commands(group, ctx, name)
    if not found:
        return None
    prog = ctx.command_path or "cxmon"
    return "Did you mean " + " or ".join(f"'{prog} {f}'" for f in found) + "?"
