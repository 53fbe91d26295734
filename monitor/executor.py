"""Where slow model fits run: the ``executor:`` block of the config.

Why a separate executor: a Prophet refit takes a tenth of a second to seconds per series, and
a metric can have hundreds of series, so fitting on the tick would hold up polling, alerting
and every other metric. Detectors with a slow fit (``set_executor``) submit it here and keep
scoring with the previous model until it is done (see :mod:`detectors.prophet_detector`).

* ``inline``: on the tick (reproducible; backtests and the demo replay always fit inline);
* ``local`` (default): a thread pool of ``workers`` threads, or processes with
  ``processes: true``;
* ``dask``: the Dask cluster at ``address`` (``dask.distributed``); its workers need cxmon
  installed, since a fit is ``detectors.prophet_detector.fit_forecast`` shipped by reference.

Every kind is a plain :class:`concurrent.futures.Executor` to the detectors, so tests inject
their own.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any

from detectors.prophet_detector import InlineExecutor
from monitor.config import (
    DaskExecutorConfig,
    ExecutorConfig,
    InlineExecutorConfig,
    LocalExecutorConfig,
)

__all__ = ["FitExecutor", "WaitingExecutor", "open_executor"]

log = logging.getLogger(__name__)


class FitExecutor:
    """A configured executor and how to shut it down (a context manager)."""

    def __init__(self, executor: Executor, description: str, *, client: Any = None) -> None:
        self.executor = executor
        self.description = description
        self._client = client

    def close(self) -> None:
        """Stop the pool (queued fits are cancelled; running ones finish on their own) or
        disconnect from the Dask scheduler."""
        try:
            self.executor.shutdown(wait=False, cancel_futures=True)
        except TypeError:  # Dask's ClientExecutor has no cancel_futures
            self.executor.shutdown(wait=False)
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> FitExecutor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class WaitingExecutor(Executor):
    """Runs each job on ``inner`` and waits for it before ``submit`` returns.

    For ``cxmon run --once``: the process exits after one tick, so a fit that finished after
    the tick would never be installed or checkpointed; waiting keeps the work on the
    configured pool or cluster and the result in the tick that asked for it.

    A wait is bounded by ``timeout`` seconds (default 300, 5 minutes): a Dask
    cluster with no workers (all lost, or not started yet) accepts a job and never runs it,
    which would hang ``--once`` for ever. A job that times out is cancelled and fails with
    :class:`TimeoutError` (the detector counts it and retries it on a later run), and the
    executor then refuses every later job of this run at once (:class:`RuntimeError`, also
    counted and retried), so a stalled cluster costs one timeout, not one per series."""

    def __init__(self, inner: Executor, timeout: float = 300.0) -> None:
        self.inner = inner
        self.timeout = timeout
        self.stalled: str | None = None

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        if self.stalled is not None:
            raise RuntimeError(self.stalled)
        fut = self.inner.submit(fn, *args, **kwargs)
        done, _ = wait([fut], timeout=self.timeout)
        if done:
            return fut
        fut.cancel()
        self.stalled = (f"an earlier fit did not finish within {self.timeout:g} s (does the "
                        "cluster have workers?); this run hands out no more fits")
        log.warning("a model fit did not finish within %g s: cancelled, and no more fits "
                    "this run (they are retried on the next); does the executor have "
                    "workers?", self.timeout)
        failed: Future = Future()
        failed.set_exception(TimeoutError(f"the fit did not finish within {self.timeout:g} s"))
        return failed

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait=wait, cancel_futures=cancel_futures)


def open_executor(config: ExecutorConfig) -> FitExecutor:
    """The executor the config asks for; a Dask scheduler that cannot be reached is an
    ``OSError`` (raised here, before the monitor starts, not on a tick)."""
    if isinstance(config, InlineExecutorConfig):
        return FitExecutor(InlineExecutor(), "inline (on the tick)")
    if isinstance(config, LocalExecutorConfig):
        if config.processes:
            pool: Executor = ProcessPoolExecutor(
                config.workers, mp_context=multiprocessing.get_context("spawn"))
            kind = "process"
        else:
            pool = ThreadPoolExecutor(config.workers, thread_name_prefix="cxmon-fit")
            kind = "thread"
        return FitExecutor(pool, f"local {kind} pool, {config.workers} worker(s)")
    if isinstance(config, DaskExecutorConfig):
        client = _connect(config.address, config.timeout.total_seconds())
        # pure=False: a retried fit with the same inputs must run again, not return the
        # cached (failed) result of the first attempt.
        return FitExecutor(client.get_executor(pure=False), f"dask at {config.address}",
                           client=client)
    raise TypeError(f"unknown executor config {type(config).__name__}")  # pragma: no cover


class SchedulerUnreachable(OSError):
    """No Dask scheduler could be used at the configured address."""


def _connect(address: str, timeout: float) -> Any:
    """A Dask client of the scheduler at ``address``, or :class:`SchedulerUnreachable`.

    Why the guard: what answers at a wrong address is not always a refusal. Something that
    is not a Dask scheduler (a web server, another service) can make the client fail deep
    inside its protocol (a ``MemoryError`` from a garbage frame length) or wait for a
    handshake that never comes; so every failure becomes one error naming the address, and
    the connection gets ``timeout`` plus a few seconds of wall time, whatever happens.
    """
    from distributed import Client

    class QuietClient(Client):  # type: ignore[misc]
        def __del__(self) -> None:  # one that never connected has nothing to close
            return None

    outcome: dict[str, Any] = {}

    def attempt() -> None:
        try:
            outcome["client"] = QuietClient(address, timeout=timeout, set_as_default=False)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=attempt, name="cxmon-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)
    if thread.is_alive():
        raise SchedulerUnreachable(f"nothing that speaks Dask answered at {address} within "
                                   f"{timeout + 5.0:.0f} s (is it the scheduler's port?)")
    error = outcome.get("error")
    if error is not None:
        reason = str(error).splitlines()[0] if str(error) else ""
        raise SchedulerUnreachable(f"{address}: {type(error).__name__}"
                                   + (f": {reason[:200]}" if reason else ""))
    return outcome["client"]
