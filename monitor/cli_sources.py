"""``cxmon backfill``: load a metric's history from its source into the store."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from monitor.cli_options import ConfigOpt
from monitor.clock import SystemClock
from monitor.errors import StoreError
from sources.base import RetriableSourceError, SourceError


def register(app: typer.Typer) -> None:
    """Add the source commands to the main CLI."""

    @app.command("backfill")
    def backfill_cmd(
        config: ConfigOpt,
        metric: Annotated[str, typer.Option(metavar="<name>", help="The metric to backfill.")],
        start: Annotated[str, typer.Option(metavar="<time>",
                                           help="First bucket (ISO 8601, UTC).")],
        end: Annotated[str, typer.Option(metavar="<time>",
                                         help="End, exclusive (ISO 8601, UTC); an end after "
                                         "now stops at the last complete bucket.")],
        chunk: Annotated[
            str | None, typer.Option(metavar="<duration>",
                                     help="Range fetched per request, e.g. 1d (default: "
                                     "288 buckets, at most a day).")
        ] = None,
    ) -> None:
        """Poll [start, end) from the metric's source and store the points.

        No detection, no alerts; the live cursor is not moved. Safe to re-run."""
        import monitor.backfill as backfill_module
        from monitor.backfill import align_chunk, backfill, chunks, default_chunk
        from monitor.cli import _load, _open_store, _parse_time, console, err_console
        from monitor.durations import format_duration, parse_duration
        from monitor.frames import FrameError, floor_time

        cfg = _load(config)
        names = [m.name for m in cfg.metrics]
        if metric not in names:
            from monitor.cli import unknown_metric_message

            raise typer.BadParameter(unknown_metric_message([metric], names),
                                     param_hint="'--metric'")
        t0, t1 = _parse_time(start, "'--start'"), _parse_time(end, "'--end'")
        if t1 <= t0:
            raise typer.BadParameter(f"must be after --start ({start})", param_hint="'--end'")
        m = cfg.metric(metric)
        # a source has no rows after now (the demo's would be made up), and a bucket still
        # filling would be stored half-counted: stop at the last complete bucket, as backtest
        now = floor_time(SystemClock().now(), m.interval)
        if t0 >= now:
            raise typer.BadParameter(f"{start} is after the last complete bucket "
                                     f"({now:%Y-%m-%d %H:%M} UTC): there is no data to load yet",
                                     param_hint="'--start'")
        if t1 > now:
            err_console.print(f"warning: --end {end} is after now: the backfill stops at the "
                              f"last complete bucket ({now:%Y-%m-%d %H:%M} UTC)",
                              highlight=False, soft_wrap=True, markup=False)
            t1 = now
        try:
            step = parse_duration(chunk) if chunk else default_chunk(m)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--chunk'") from None
        if step <= timedelta(0):
            raise typer.BadParameter(f"must be positive (got {chunk}); leave it out for the "
                                     "default", param_hint="'--chunk'")
        step = align_chunk(step, m.interval)  # whole buckets: a bucket is never split
        total = len(chunks(floor_time(t0, m.interval), floor_time(t1, m.interval), step))
        if not total:  # both ends floor to one bucket: a "✓ 0 rows" would look like no data
            raise typer.BadParameter(
                f"--start {start} to --end {end} holds no complete {format_duration(m.interval)}"
                f" bucket of {metric} (buckets start at {floor_time(t0, m.interval):%H:%M})",
                param_hint=["--start", "--end"])
        try:
            store = _open_store(cfg)
        except StoreError as exc:  # pragma: no cover - _open_store exits already
            err_console.print(f"store: {exc}")
            raise typer.Exit(1) from None
        stored: list[datetime] = []  # end of the last committed chunk
        # the source is ours, so the records it drops itself (a malformed line, an
        # unreadable time or ticket) are reported with the rows the frame rejected, as
        # `validate --poll` and a tick count them: the summary said "0 rejected" for them
        src = backfill_module.create_source(m.source, cfg.sources[m.source])
        skipped_before = Counter(getattr(src, "skipped", None) or {})
        try:
            with Progress(
                TextColumn("[progress.description]{task.description}"), BarColumn(),
                TextColumn("{task.completed}/{task.total} chunks"), TimeRemainingColumn(),
                console=console, transient=True,
            ) as progress:
                task = progress.add_task(f"backfill {metric}", total=total)

                def chunk_done(lo: datetime, hi: datetime, _r: object) -> None:
                    stored[:] = [hi]
                    progress.update(task, advance=1, description=f"{metric} {lo:%Y-%m-%d %H:%M}")

                result = backfill(cfg, store, metric, t0, t1, source=src, chunk=step,
                                  on_chunk=chunk_done)
        except KeyboardInterrupt:  # Ctrl-C: say what is kept and how to finish
            done = f"up to {stored[0]:%Y-%m-%d %H:%M} UTC" if stored else "nothing yet"
            err_console.print(f"backfill of {metric} interrupted: points stored {done}; "
                              "re-run the same command to complete (it is idempotent)",
                              highlight=False)
            raise typer.Exit(130) from None
        except RetriableSourceError as exc:
            if exc.retry_after is None:  # out of retries: as any other source error
                err_console.print(f"[bold red]backfill failed:[/] {escape(str(exc))}",
                                  highlight=False)
                raise typer.Exit(1) from None
            # a rate limit longer than the source's retry.max_wait (fetch_retrying does not
            # retry it within seconds): say when the same command can load the rest
            done = (f"points are stored up to {stored[0]:%Y-%m-%d %H:%M} UTC" if stored
                    else "nothing was stored yet")
            after = SystemClock().now() + timedelta(seconds=exc.retry_after)
            err_console.print(
                f"[bold red]backfill stopped:[/] {escape(str(exc))}, so it is not retried "
                f"sooner; {done}. Re-run the same command after {after:%Y-%m-%d %H:%M} UTC "
                "(it is idempotent and loads the rest)", highlight=False)
            raise typer.Exit(1) from None
        except (SourceError, FrameError) as exc:
            err_console.print(f"[bold red]backfill failed:[/] {escape(str(exc))}",
                              highlight=False)
            raise typer.Exit(1) from None
        finally:
            store.close()
            src.close()
        why = Counter(result.rejected) + (
            Counter(getattr(src, "skipped", None) or {}) - skipped_before)
        rejected = sum(why.values())
        console.print(
            f"[green]✓[/] {metric}: {result.start:%Y-%m-%d %H:%M} – {result.end:%Y-%m-%d %H:%M}"
            f" UTC, {result.chunks} chunk(s), {result.rows_in} rows, {result.points} points in "
            f"{result.series} series, {rejected} rejected"
            + (f" ({', '.join(f'{k} {n}' for k, n in sorted(why.items()))})"
               if rejected else ""),
            highlight=False,
        )
