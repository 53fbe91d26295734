"""``cxmon run``: poll, detect and alert on schedule (or once, with ``--once``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from monitor.cli_options import ConfigOpt, LogFormat, LogLevel, log_settings
from monitor.cli_validate import _paused_note
from monitor.clock import Clock, SystemClock
from monitor.config import MonitorConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    from dashboards.telemetry import Telemetry
    from monitor.executor import FitExecutor
    from monitor.pipeline import Pipeline, TickResult
    from monitor.store import Store
    from monitor.store.instance_lock import InstanceLock


def run(
    config: ConfigOpt,
    once: Annotated[bool, typer.Option("--once",
                                       help="Tick every metric once, deliver, exit.")] = False,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
) -> None:
    """Run the monitor: poll, detect and alert on schedule until SIGINT/SIGTERM.

    Exit codes with --once: 0 when every metric ticked, even if some notifications failed \
to send with an error that may pass (timeout, 429, 5xx): they stay pending in the outbox, \
a warning says how many, and the next run retries them; 1 when a tick failed, a \
notification was dead-lettered (it will never be sent), the retention job failed, the store or \
executor could not be opened, or another cxmon run holds the store (one per store: it is \
named; also when it took the store's lost lock during this run); 2 for a bad option or \
config."""
    from alerts.cli import start_feedback
    from monitor.cli import _load, _setup_logging, console
    from monitor.executor import WaitingExecutor
    from monitor.pipeline import Pipeline
    from monitor.scheduler import Scheduler, run_retention
    from monitor.store.instance_lock import LockWatch

    _setup_logging(*log_settings(log_level, log_format, "info"))
    cfg = _load(config)
    _refuse_all_paused(cfg, config)
    clock = SystemClock()  # one clock: /readyz ages the ticks by the time the pipeline keeps
    store, lock = _open_locked_store(cfg, clock)
    from dashboards.telemetry import Telemetry  # exporter: /metrics, /healthz, /readyz

    try:
        fits = _open_fit_executor(cfg, store)
    except BaseException:
        lock.release()
        raise
    telemetry = Telemetry(cfg, store, clock=clock)
    on_tick = telemetry.chain(_log_tick)
    # --once exits after the tick: its fits must land in that tick's checkpoint.
    fit_executor = (WaitingExecutor(fits.executor, where=fits.description, clock=clock,
                                    **_stall_limits(cfg.executor))
                    if once else fits.executor)
    pipeline = Pipeline(cfg, store, clock=clock, console=console,
                        sources=telemetry.sources, fit_executor=fit_executor)
    try:
        if once:
            _run_once(cfg, pipeline, telemetry, on_tick, lock, run_retention)
            return
        logging.getLogger("monitor.cli").info(
            "cxmon running: %d metric(s)%s, store %s; Ctrl-C to stop",
            len(cfg.active_metrics), _paused_note(cfg), store.url_redacted,
        )
        telemetry.serve()
        # Slack buttons, if alerting.feedback is set
        feedback = start_feedback(cfg, store, registry=telemetry.exporter.registry)
        scheduler = Scheduler(pipeline, on_tick=on_tick, on_deliver=telemetry.on_deliver)
        watch = LockWatch(lock, on_taken=scheduler.stop)
        watch.start()
        try:
            scheduler.run_until_stopped()
        finally:
            watch.stop()
            if feedback is not None:
                feedback.stop()
        if watch.taken:  # exit 1: systemd restarts us, refused until the other one stops
            raise typer.Exit(1)
    finally:
        telemetry.stop()
        pipeline.close()
        fits.close()
        lock.release()
        store.close()


def _run_once(cfg: MonitorConfig, pipeline: Pipeline, telemetry: Telemetry,
              on_tick: Callable[[TickResult], None], lock: InstanceLock,
              run_retention: Callable[[Pipeline], object]) -> None:
    """``--once``: tick every metric, deliver, prune; the store lock watched as ``run``
    watches it. Why: a long ``--once`` (a first tick learning history, a catch-up) whose
    PostgreSQL lock was lost with its connection went on ticking and flushing alert groups
    while another ``cxmon run`` had taken the store; it now stops before the next tick (the
    running one finishes and commits, as a ``run`` stopped by the watch does) and exits 1."""
    from monitor.cli import err_console
    from monitor.store.instance_lock import LockWatch

    watch = LockWatch(lock, on_taken=lambda: None)  # read between the steps below
    watch.start()
    try:
        results: list[TickResult] = []
        for m in cfg.active_metrics:
            if watch.taken:
                break
            results.append(pipeline.tick(m.name))
        for r in results:
            on_tick(r)
            if r.skipped:
                logging.getLogger("cxmon.tick").info("%s: nothing to do (%s)",
                                                     r.metric, r.skipped)
        if watch.taken:  # no flush, no send, no retention: the store is the other one's now
            err_console.print(
                f"[bold red]store lock lost:[/] {escape(str(watch.taken))}; stopped after "
                f"{len(results)} of {len(cfg.active_metrics)} tick(s), nothing delivered here",
                highlight=False)
            raise typer.Exit(1)
        # Every metric has ticked: a new incident's first message has nothing more to
        # wait for (group_wait), and this process will not be here when it is due.
        report = pipeline.deliver(group_wait=True)
        telemetry.on_deliver(report)
        # Under cron every run is the service: without this the store grew for ever
        # (the 6-hourly retention job is the scheduler's, which --once never starts)
        pruned = _retention_once(pipeline, run_retention)
        failed = [r.metric for r in results if r.error]
        if failed or report.dead or not pruned:
            dead = f", {report.dead} notification(s) dead-lettered" if report.dead else ""
            kept = "" if pruned else ", retention failed"
            err_console.print(
                f"[bold red]{len(failed)} of {len(results)} tick(s) failed{dead}{kept}[/]"
            )
            raise typer.Exit(1)
        if report.retried:  # exit 0: the next run retries them (see --help)
            err_console.print(
                f"[yellow]{report.retried} notification(s) could not be sent and stay "
                "pending in the outbox; the next run retries them (cxmon alerts status)[/]"
            )
    finally:
        watch.stop()


def _open_locked_store(cfg: MonitorConfig, clock: Clock) -> tuple[Store, InstanceLock]:
    """Open the store, take the one-monitor-per-store lock, then migrate; exit 1 naming the
    holder when another ``cxmon run`` has it. The lock comes first so that a new version
    started next to a running old one does not change the schema under it."""
    from monitor.cli import err_console
    from monitor.errors import StoreError
    from monitor.store import Store
    from monitor.store.instance_lock import holder_name

    store: Store | None = None
    lock: InstanceLock | None = None
    try:
        store = Store(cfg.store.url, clock=clock)
        lock = store.instance_lock(holder_name(clock.now()))
        lock.acquire()
        store.migrate()
    except StoreError as exc:
        if lock is not None:
            lock.release()
        if store is not None:
            store.close()
        err_console.print(f"[bold red]store:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    return store, lock


def _retention_once(pipeline: Pipeline, run_retention: Callable[[Pipeline], object]) -> bool:
    """The retention job of a ``--once`` run; False (logged, one line) if it failed."""
    try:
        run_retention(pipeline)
    except Exception as exc:  # the store's trouble: the ticks said so too
        logging.getLogger("monitor.cli").error("retention failed: %s",
                                               str(exc).splitlines()[0] if str(exc) else
                                               type(exc).__name__)
        return False
    return True


def _refuse_all_paused(cfg: MonitorConfig, config: Path) -> None:
    """Exit 2 when every metric has ``enabled: false``: a monitor that polls nothing would
    look healthy while watching nothing."""
    from monitor.cli import err_console

    if not cfg.active_metrics:
        err_console.print(f"{escape(str(config))}: every metric has enabled: false; nothing to "
                          "run (set enabled: true on one, or remove the key)", soft_wrap=True)
        raise typer.Exit(2)


def _open_fit_executor(cfg: MonitorConfig, store: Store) -> FitExecutor:
    """The ``executor:`` for slow model fits; exit 1 if a Dask scheduler is unreachable."""
    from monitor.cli import err_console
    from monitor.executor import open_executor

    try:
        fits = open_executor(cfg.executor)
    except (OSError, TimeoutError) as exc:
        err_console.print(f"[bold red]executor:[/] cannot reach the Dask scheduler: "
                          f"{escape(str(exc) or type(exc).__name__)}")
        store.close()
        raise typer.Exit(1) from None
    logging.getLogger("monitor.cli").info("model fits run: %s", fits.description)
    return fits


def _stall_limits(executor: object) -> dict[str, float]:
    """``--once``'s wait for fits, from the executor's settings (inline has none: its fits
    run on the tick)."""
    limits = {}
    if (warn := getattr(executor, "stall_warning", None)) is not None:
        limits["warn_after"] = warn.total_seconds()
    if (timeout := getattr(executor, "stall_timeout", None)) is not None:
        limits["timeout"] = timeout.total_seconds()
    return limits


def _log_tick(result: TickResult) -> None:
    """One line per completed tick (failures are logged once, by the pipeline)."""
    from monitor.cli import _hm

    log = logging.getLogger("cxmon.tick")
    if not result.error and not result.skipped:
        # a first tick's history is stored but never alerted: say so, or "anomalies=2"
        # with no alert looks like a delivery problem to someone trying cxmon out
        history = (0 if result.silent_before is None else
                   sum(a.timestamp < result.silent_before for a in result.anomalies))
        log.info(
            "%s: %s..%s rows=%d stored=%d rejected=%d anomalies=%d%s",
            result.metric, _hm(result.since), _hm(result.until), result.rows_in,
            result.rows_stored, sum(result.rejected.values()), len(result.anomalies),
            f" ({history} in the learned history: stored, not alerted; "
            "cxmon anomalies lists them)" if history else "",
        )


def register(app: typer.Typer) -> None:
    """Add ``run`` to the ``cxmon`` app."""
    app.command("run")(run)
