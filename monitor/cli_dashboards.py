"""``cxmon dashboards build`` / ``cxmon dashboards push`` (registered in :mod:`monitor.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from monitor.cli_options import ConfigOpt

dashboards_app = typer.Typer(help="Grafana dashboards generated from the config.",
                             no_args_is_help=True)

JourneyOpt = Annotated[
    list[str] | None,
    typer.Option("--journey", metavar="<journey>",
                 help="Also build a dashboard for this journey (repeatable); needed for "
                 "values of a split_by: \\[journey] label that the source cannot list."),
]


@dashboards_app.command("build")
def build(
    config: ConfigOpt,
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("grafana"),
    journey: JourneyOpt = None,
    prometheus_url: Annotated[
        str, typer.Option(metavar="<url>",
                          help="URL written into the provisioned Prometheus data source.")
    ] = "http://localhost:9090",
) -> None:
    """Write the dashboards' JSON and Grafana provisioning YAML under --out."""
    from dashboards import provisioning
    from dashboards.grafana import build_all
    from monitor.cli import _load, console, err_console

    cfg = _load(config, needs={"metrics"})
    built = build_all(cfg, journey or ())
    files = provisioning.write(built, out, prometheus_url=prometheus_url)
    for d in built:
        console.print(f"[green]✓[/] {d.uid}: {d.title}")
    console.print(f"wrote {len(files)} files under {out}")
    if left := [m.name for m in cfg.metrics
                if "journey" not in m.labels and "journey" not in m.split_by]:
        # a journey dashboard is what shows a metric's value and band: without one it is
        # on no panel, and its alerts' Grafana links lead nowhere
        err_console.print(
            f"[yellow]warning[/] {len(left)} metric(s) have no journey and are on no "
            "journey dashboard: " + escape(f"{', '.join(left)} (give each labels: "
                                           "{journey: ...}, or split_by: [journey])"),
            soft_wrap=True)


@dashboards_app.command("push")
def push(
    config: ConfigOpt,
    journey: JourneyOpt = None,
    annotations: Annotated[
        bool, typer.Option(help="Also post the stored anomalies, and the calendar's holidays "
                                "and events, as annotations.")
    ] = True,
) -> None:
    """Upload the dashboards into the 'cxmon' folder of the config's grafana: server and post
    the anomalies (and the calendar days of the last 35 and next 90 days) as annotations."""
    from dashboards.grafana import build_all, journeys
    from dashboards.push import GrafanaPushError
    from dashboards.push import push as do_push
    from monitor.cli import _load, _open_store, console, err_console

    cfg = _load(config, needs={"metrics", "grafana", "store"} if annotations
                else {"metrics", "grafana"})
    if cfg.grafana is None:
        err_console.print("[bold red]no grafana: block in the config[/] "
                          "(grafana: {url: ..., token: ${GRAFANA_TOKEN}})")
        raise typer.Exit(2)
    store = _open_store(cfg, must_exist=True) if annotations else None
    try:
        report = do_push(cfg, build_all(cfg, journey or ()), store=store,
                         journeys=journeys(cfg, journey or ()))
    except GrafanaPushError as exc:
        err_console.print(f"[bold red]grafana:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        if store is not None:
            store.close()
    folder = "created" if report.folder_created else "exists"
    console.print(f"folder {report.folder_uid} ({folder}); {len(report.dashboards)} dashboards "
                  f"saved; annotations: {report.annotations_posted} posted, "
                  f"{report.annotations_skipped} already there")


def register(app: typer.Typer) -> None:
    app.add_typer(dashboards_app, name="dashboards")


__all__ = ["register"]
