"""``cxmon import lookout``: a cxmon config from Amazon Lookout for Metrics definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from monitor.lookout import LookoutInputError, convert, incidents_csv, load_json, render_yaml

import_app = typer.Typer(help="Convert another tool's definitions into a cxmon config.",
                         no_args_is_help=True)

_KIND_STYLE = {"unsupported": "red", "manual": "yellow", "mapped": "dim"}


def _read(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LookoutInputError(f"{what}: file not found: {path}") from None
    except UnicodeDecodeError:
        raise LookoutInputError(f"{what}: {path} is not UTF-8 text") from None
    except OSError as exc:
        raise LookoutInputError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    return load_json(text, f"{what} ({path.name})")


def lookout(
    metric_sets: Annotated[list[Path], typer.Argument(
        metavar="METRIC_SET.json",
        help="Output of `aws lookoutmetrics describe-metric-set`: one file per metric set of "
             "the detector (or a JSON list of them); they become one config.")],
    alerts: Annotated[Path | None, typer.Option(
        "--alerts", metavar="ALERTS.json",
        help="Output of `describe-alert`, or a JSON list of them.")] = None,
    detector: Annotated[Path | None, typer.Option(
        "--detector", metavar="DETECTOR.json",
        help="Output of `describe-anomaly-detector`.")] = None,
    anomaly_groups: Annotated[Path | None, typer.Option(
        "--anomaly-groups", metavar="GROUPS.json",
        help="Output of `list-anomaly-group-summaries` (or `get-anomaly-group`; a JSON list "
             "of pages is fine): written as an incidents CSV for `cxmon backtest "
             "--incidents`, to compare cxmon with what Lookout flagged.")] = None,
    incidents_out: Annotated[Path, typer.Option(
        "--incidents-out", metavar="INCIDENTS.csv",
        help="Where --anomaly-groups writes the incidents CSV.")] = Path(
            "lookout-incidents.csv"),
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="cxmon.yaml",
        help="Write the config here (default: standard output).")] = None,
) -> None:
    """Convert a Lookout for Metrics detector's metric sets (and alerts) into a cxmon config.

    The report on stderr lists every Lookout setting that has no cxmon equivalent or needs a \
manual step. Exit 0: converted; 1: nothing could be converted (e.g. a CloudWatch source); \
2: the input is not what the AWS CLI prints.
    """
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        sets: list[Any] = []
        for path in metric_sets:
            doc = _read(path, "metric set")
            sets.extend(doc if isinstance(doc, list) else [doc])
        conv = convert(
            sets,
            _read(alerts, "alerts") if alerts else None,
            _read(detector, "detector") if detector else None,
        )
        incidents = None
        if anomaly_groups is not None and conv.config is not None:
            incidents, extra = incidents_csv(_read(anomaly_groups, "anomaly groups"), conv)
            conv.notes.extend(extra)
    except LookoutInputError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    except RuntimeError as exc:  # the converted config failed validation: a converter bug
        err.print(f"[red]error:[/] {escape(str(exc))}; please report it with the input")
        raise typer.Exit(1) from None
    for note in conv.notes:
        style = _KIND_STYLE.get(note.kind, "")
        err.print(f"[{style}]{note.kind}[/]: {escape(note.setting)}: {escape(note.message)}")
    if conv.config is None:
        err.print("[red]error:[/] nothing could be converted (see above)")
        raise typer.Exit(1)
    text = render_yaml(conv)
    if incidents is not None:
        _write_or_exit(incidents_out, incidents, err)
        err.print(f"wrote {escape(str(incidents_out))}: Lookout's anomaly groups, for "
                  "cxmon backtest --incidents")
    if output is None:
        typer.echo(text, nl=False)
    else:
        _write_or_exit(output, text, err)
        err.print(f"wrote {escape(str(output))}: {len(conv.config['metrics'])} metric(s)")
    if conv.env:
        # an optional variable (a local copy of a bucket) is not a step to take
        needed = [v for v, why in conv.env.items() if not why.startswith("optional:")]
        names = " ".join(f"{v}=..." for v in needed)
        check = f"cxmon validate --poll -c {output or 'cxmon.yaml'}"
        err.print(escape(f"next: set {names} and run {check}" if needed else
                         f"next: run {check} (it reads the data where the config says)"))


def _write_or_exit(path: Path, text: str, err: Console) -> None:
    """Write ``text`` to ``path``; a path that cannot be written is one line and exit 1."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        err.print(f"[red]error:[/] cannot write {escape(str(path))}: "
                  f"{escape(exc.strerror or str(exc))}")
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    import_app.command("lookout")(lookout)
    app.add_typer(import_app, name="import")
