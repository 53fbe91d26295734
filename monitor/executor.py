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

import contextlib
import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    InvalidStateError,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from types import TracebackType
from typing import Any

from detectors.prophet_detector import InlineExecutor
from monitor.clock import Clock, SystemClock
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
    """Hands each job to ``inner`` at once; :meth:`settle` waits for them all.

    For ``cxmon run --once``: the process exits after one tick, so a fit that finished after
    the tick would never be installed or checkpointed. The pipeline calls :meth:`settle`
    before it checkpoints a tick, so the fits run in parallel on the configured pool or
    cluster (waiting in ``submit`` ran them one at a time: 63 Prophet fits took 3 minutes on
    two Dask workers, against 30 s handed out together) and land in the tick that asked.

    The wait is bounded by *progress*: it gives up when no job has finished for ``timeout``
    seconds (default 300, 5 minutes), however many there are. A Dask cluster with no workers
    (all lost, or not started yet) accepts jobs and never runs them, which would hang
    ``--once`` for ever. Jobs still unfinished then are cancelled and fail with
    :class:`TimeoutError` (the detector counts them and retries them on a later run), and the
    executor refuses every later job of this run at once (:class:`RuntimeError`, also counted
    and retried), so a stalled cluster costs one timeout, not one per metric. After
    ``warn_after`` seconds (default 60) without progress a WARNING says how many fits wait
    and on what (``where``: the executor's description, e.g. the scheduler address), once per
    stall; ``clock`` and ``wait`` are injectable so tests drive the time by hand."""

    def __init__(self, inner: Executor, timeout: float = 300.0, *, warn_after: float = 60.0,
                 where: str = "the fit executor", clock: Clock | None = None,
                 wait: Callable[..., Any] = wait) -> None:
        self.inner = inner
        self.timeout = timeout
        self.warn_after = warn_after
        self.where = where  # e.g. "dask at tcp://host:8786", for the log lines
        self._clock: Clock = clock or SystemClock()
        self._wait = wait  # tests: a fake that advances a FakeClock instead of blocking
        self.stalled: str | None = None
        self._handed: list[tuple[Future, Future]] = []  # (ours, the inner executor's)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        if self.stalled is not None:
            raise RuntimeError(self.stalled)
        inner = self.inner.submit(fn, *args, **kwargs)
        ours: Future = Future()
        inner.add_done_callback(lambda f: _copy_outcome(f, ours))
        self._handed.append((ours, inner))
        return ours

    def settle(self) -> None:
        """Wait until every job handed out so far has finished, or until none has finished
        for ``timeout`` seconds (then fail the rest: see the class)."""
        waiting = {ours: inner for ours, inner in self._handed if not ours.done()}
        self._handed.clear()
        since = self._clock.now()  # the last progress
        warned = False
        while waiting:
            idle = (self._clock.now() - since).total_seconds()
            if idle >= self.timeout:
                break
            if not warned and idle >= self.warn_after:
                warned = True  # once per stall: progress re-arms it
                log.warning("%d model fit(s) waiting on %s, none finished for %g s; they are "
                            "cancelled after %g s without progress", len(waiting), self.where,
                            idle, self.timeout)
            until = self.timeout if warned else min(self.warn_after, self.timeout)
            done, _ = self._wait(list(waiting), timeout=max(until - idle, 0.0),
                                 return_when=FIRST_COMPLETED)
            if done:
                for f in done:
                    waiting.pop(f)
                since, warned = self._clock.now(), False
        if not waiting:
            return
        for ours, inner in waiting.items():
            inner.cancel()
            _fail(ours, TimeoutError(f"no fit finished within {self.timeout:g} s"))
        self.stalled = (f"{len(waiting)} fit(s) made no progress within {self.timeout:g} s "
                        "(does the cluster have workers?); this run hands out no more fits")
        log.warning("%d model fit(s) made no progress within %g s on %s: cancelled, and no "
                    "more fits this run (they are retried on the next); does the executor "
                    "have workers?", len(waiting), self.timeout, self.where)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait=wait, cancel_futures=cancel_futures)


def _copy_outcome(src: Future, dst: Future) -> None:
    """The inner job's result (or failure) as ours, unless ours already timed out."""
    if src.cancelled():
        _fail(dst, RuntimeError("the fit was cancelled"))
    elif (exc := src.exception()) is not None:
        _fail(dst, exc)
    else:
        with contextlib.suppress(InvalidStateError):  # ours timed out first
            dst.set_result(src.result())


def _fail(fut: Future, exc: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):  # already finished: a race with the job
        fut.set_exception(exc)


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


def _probe(address: str, timeout: float) -> None:
    """Fail at once when the address cannot be a scheduler: a host name that does not resolve,
    or a port that refuses the connection. Dask's client retries both until ``timeout`` runs
    out, then says only "Timed out", so ``cxmon run`` sat there before saying anything."""
    import socket

    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in ("tcp", "ws"):
        return  # inproc, ucx: nothing a TCP probe can say
    host, _, port = rest.rpartition(":")
    host = host.split("@")[-1].strip("[]")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except socket.gaierror as exc:
        raise SchedulerUnreachable(f"{address}: host {host!r} does not resolve "
                                   f"({exc.strerror or exc})") from None
    except ConnectionRefusedError:
        raise SchedulerUnreachable(f"{address}: connection refused (no scheduler listens "
                                   "on that port)") from None
    except OSError as exc:
        raise SchedulerUnreachable(f"{address}: {type(exc).__name__}: "
                                   f"{exc.strerror or exc or 'no answer'} within "
                                   f"{timeout:g} s") from None


def _connect(address: str, timeout: float) -> Any:
    """A Dask client of the scheduler at ``address``, or :class:`SchedulerUnreachable`.

    Why the guard: what answers at a wrong address is not always a refusal. Something that
    is not a Dask scheduler (a web server, another service) can make the client fail deep
    inside its protocol (a ``MemoryError`` from a garbage frame length) or wait for a
    handshake that never comes; so every failure becomes one error naming the address, and
    the connection gets ``timeout`` plus a few seconds of wall time, whatever happens.
    """
    _probe(address, timeout)
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
