"""Prophet refits off the tick path: the ``executor:`` config, the pipeline's wiring, failed
fits, and a real Dask cluster (``LocalCluster``: a worker process over TCP, so the fit and the
model cross a process boundary as on a cluster; in-process for the failure test). No sleeps:
tests decide when a fit finishes (an injected executor) or wait on the real futures."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import detectors  # noqa: F401
from detectors.base import TickBatch
from detectors.prophet_detector import Forecast, InlineExecutor, ProphetConfig, ProphetDetector
from monitor.cli import app
from monitor.clock import FakeClock
from monitor.config import DaskExecutorConfig, LocalExecutorConfig, parse_config
from monitor.errors import ConfigError
from monitor.executor import WaitingExecutor, open_executor
from monitor.pipeline import Pipeline, TickResult
from monitor.scheduler import replay
from monitor.store import Store

H = 3_600 * 10**9
HOUR = timedelta(hours=1)
ANCHOR = datetime(2026, 1, 5, tzinfo=UTC)


class ManualExecutor(Executor):
    """Holds submitted calls; the test decides when (and how) each one finishes."""

    def __init__(self) -> None:
        self.calls: list[Future] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        fut: Future = Future()
        self.calls.append(fut)
        return fut


class RefusingExecutor(Executor):
    """An executor that cannot take work (a Dask scheduler that went away)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        raise OSError("scheduler unreachable")


def flat_forecast(start_ns: int, level: float) -> Forecast:
    return Forecast(start_ns, np.full(96, level), np.full(96, level - 1.0),
                    np.full(96, level + 1.0), 0.0, 0.25)


def feed(det: ProphetDetector, hours: range, value: float = 10.25) -> None:
    for t in hours:
        det.learn(TickBatch.of(["s"], [t * H], [value]), np.zeros(1, bool))


def probe(det: ProphetDetector, t: int) -> float:
    return float(det.score(TickBatch.of(["s"], [t * H], [10.25])).expected[0])


# -- the detector: in flight, swapped in, failed, retried ---------------------------------------


def test_previous_model_scores_while_a_refit_is_in_flight_then_is_swapped() -> None:
    ex = ManualExecutor()
    det = ProphetDetector(ProphetConfig(refit="1d", min_history="2d"), interval=HOUR,
                          executor=ex)
    feed(det, range(49))
    ex.calls[0].set_result(flat_forecast(49 * H, 10.0))
    feed(det, range(49, 73))  # installs fit 1, then submits fit 2 (a day after fit 1)
    assert len(ex.calls) == 2 and det.pending() == 1
    assert det.drain_fit_report().seconds == [0.25]
    feed(det, range(73, 80))  # fit 2 still running: the ticks go on with fit 1
    assert probe(det, 80) == 10.0
    ex.calls[1].set_result(flat_forecast(73 * H, 12.0))
    assert probe(det, 80) == 10.0  # scoring never installs (it must not change state)
    feed(det, range(80, 81))  # the next learn swaps the new model in
    assert probe(det, 81) == 12.0 and det.pending() == 0


def test_failed_fit_is_logged_counted_and_retried_later(caplog: pytest.LogCaptureFixture) -> None:
    ex = ManualExecutor()
    det = ProphetDetector(ProphetConfig(refit="1d", min_history="2d", retry_after="2h"),
                          interval=HOUR, executor=ex)
    feed(det, range(49))
    ex.calls[0].set_result(flat_forecast(49 * H, 10.0))
    feed(det, range(49, 73))  # fit 2 submitted with the point of hour 72
    assert det.drain_fit_report().seconds == [0.25]
    ex.calls[1].set_exception(RuntimeError("Stan optimizer failed"))
    with caplog.at_level(logging.WARNING, logger="detectors.prophet_detector"):
        feed(det, range(73, 74))  # the failure is collected: no exception reaches the tick
    assert "prophet fit of s failed (1 in a row)" in caplog.text
    assert "Stan optimizer failed" in caplog.text
    report = det.drain_fit_report()
    assert (report.failures, report.seconds, det.failures_total) == (1, [], 1)
    assert probe(det, 74) == 10.0  # the previous forecast keeps scoring
    assert len(ex.calls) == 2  # not retried at once ...
    feed(det, range(74, 75))
    assert len(ex.calls) == 3  # ... but retry_after (2 h of data) after the failed attempt
    ex.calls[2].set_exception(ValueError("again"))
    feed(det, range(75, 78))
    assert len(ex.calls) == 3  # a second failure in a row waits twice as long (4 h)
    feed(det, range(78, 79))
    assert len(ex.calls) == 4
    ex.calls[3].set_result(flat_forecast(79 * H, 11.0))
    feed(det, range(79, 80))
    assert probe(det, 80) == 11.0
    assert det.drain_fit_report().failures == 1 and det.failures_total == 2


def test_an_executor_that_refuses_work_does_not_break_learning() -> None:
    det = ProphetDetector(ProphetConfig(min_history="2d", retry_after="3h"), interval=HOUR,
                          executor=RefusingExecutor())
    feed(det, range(60))
    # refused at 48 h, then every 3, 6, 12 h of data after (doubling, at most refit = 1 d)
    assert det.drain_fit_report().failures == 3 and det.pending() == 0
    assert "s" in det.get_state()


def test_run_once_hands_fits_out_together_and_settles_them() -> None:
    """``--once`` must install a tick's fits before its checkpoint, but waiting in ``submit``
    ran them one at a time on a cluster of many workers: all are handed out first, then
    ``settle`` waits for them all (their results, or failures, are the detector's)."""
    inner = ManualExecutor()
    ex = WaitingExecutor(inner, timeout=5)
    a, b = ex.submit(pow, 2, 10), ex.submit(pow, 3, 2)
    assert len(inner.calls) == 2 and not a.done()  # both out before either finished
    inner.calls[0].set_result(1024)
    inner.calls[1].set_exception(ValueError("bad fit"))
    ex.settle()
    assert a.result() == 1024 and isinstance(b.exception(), ValueError) and ex.stalled is None


def test_run_once_gives_up_on_a_cluster_that_never_runs_the_fit(
        caplog: pytest.LogCaptureFixture) -> None:
    """A Dask cluster without workers accepts fits and never runs them: ``--once`` must not
    wait for ever. With no progress for ``timeout`` the fits are cancelled and fail, every
    later fit of the run is refused at once, and all are counted and retried later."""
    inner = ManualExecutor()
    ex = WaitingExecutor(inner, timeout=0)
    det = ProphetDetector(ProphetConfig(min_history="2d", retry_after="3h"), interval=HOUR,
                          executor=ex)
    with caplog.at_level(logging.WARNING):
        for t in range(49):
            det.learn(TickBatch.of(["a", "b"], [t * H, t * H], [10.0, 11.0]),
                      np.zeros(2, bool))
        assert len(inner.calls) == 2 and det.pending() == 2  # handed out together
        ex.settle()
        det.collect_fits()
        det.learn(TickBatch.of(["c"], [49 * H], [1.0]), np.zeros(1, bool))
    assert all(f.cancelled() for f in inner.calls)
    assert det.drain_fit_report().failures == 2 and det.pending() == 0
    assert "2 model fit(s) made no progress within 0 s" in caplog.text
    with pytest.raises(RuntimeError, match="this run hands out no more fits"):
        ex.submit(pow, 2, 2)
    det.set_executor(InlineExecutor())  # the next run, with workers back
    ok = flat_forecast(52 * H, 10.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("detectors.prophet_detector.fit_forecast", lambda *a, **k: ok)
        for t in range(49, 53):
            det.learn(TickBatch.of(["a", "b"], [t * H, t * H], [10.0, 11.0]),
                      np.zeros(2, bool))
    assert det.drain_fit_report().seconds == [0.25, 0.25] and det.failures_total == 2


def test_settle_waits_while_fits_keep_finishing() -> None:
    """The bound is on progress, not on the whole batch: thousands of fits on a small
    cluster take longer than ``timeout`` in all, and must not be cancelled for it."""
    gate = threading.Semaphore(0)
    with ThreadPoolExecutor(2) as pool:
        ex = WaitingExecutor(pool, timeout=30)
        futures = [ex.submit(gate.acquire) for _ in range(6)]
        for _ in range(6):
            gate.release()
        ex.settle()
    assert all(f.result() is True for f in futures) and ex.stalled is None


# -- config ------------------------------------------------------------------------------------


def config_text(executor: str = "", source: str = "{type: demo}") -> str:
    query = "query: checkout, " if "demo" in source else ""
    return (
        f"store: sqlite://\nsources:\n  src: {source}\n"
        f"metrics:\n  - {{name: kpi, source: src, {query}interval: 1h,\n"
        "     timestamp: ts, value: value, detectors: [seasonal]}\n"
        "detectors:\n  seasonal: {type: prophet, refit: 1d, min_history: 1d, "
        f"uncertainty_samples: 20}}\n{executor}"
    )


def one_series_csv(tmp_path: Path, start: datetime = ANCHOR) -> str:
    """Four days of one hourly KPI (a daily cycle and noise), as a ``files`` source."""
    rng = np.random.default_rng(0)
    t = np.arange(24 * 4)
    ts = [(start + int(k) * HOUR).strftime("%Y-%m-%dT%H:%M:%SZ") for k in t]
    v = 0.3 + 0.05 * np.sin(t / 24 * 2 * np.pi) + rng.normal(0, 0.005, len(t))
    path = tmp_path / "kpi.csv"
    path.write_text("ts,value\n" + "".join(f"{a},{b:.5f}\n" for a, b in zip(ts, v, strict=True)))
    return f"{{type: files, path: '{path}'}}"


def test_executor_config_is_strict_and_defaults_to_a_thread_pool() -> None:
    assert parse_config(config_text()).executor == LocalExecutorConfig(workers=1)
    cfg = parse_config(config_text("executor: {type: dask, address: 'tcp://h:8786'}\n"))
    assert isinstance(cfg.executor, DaskExecutorConfig) and cfg.executor.address == "tcp://h:8786"
    with pytest.raises(ConfigError) as err:
        parse_config(config_text("executor: {workers: 0, threads: 2}\n"))
    assert {(p.path, p.message.split(";")[0]) for p in err.value.problems} == {
        ("executor.workers", "Input should be greater than or equal to 1"),
        ("executor.threads", "unknown key 'threads'"),
    }
    with pytest.raises(ConfigError) as err:
        parse_config(config_text("executor: {type: spark}\n"))
    assert [p.path for p in err.value.problems] == ["executor"]
    assert "valid types: inline, local, dask" in err.value.problems[0].message
    with pytest.raises(ConfigError) as err:
        parse_config(config_text("executor: {type: dask}\n"))
    assert [(p.path, p.message) for p in err.value.problems] == [
        ("executor.address", "missing required key 'address'")]


def test_once_stall_limits_are_settable_and_checked() -> None:
    """``--once`` waited 60 s / 5 min for stalled fits whatever the pool: a slow Prophet pool
    needs longer, a CI smoke run wants to fail sooner."""
    from monitor.cli_run import _stall_limits

    cfg = parse_config(config_text("executor: {type: dask, address: 'tcp://h:8786', "
                                   "stall_warning: 30s, stall_timeout: 2m}\n"))
    assert _stall_limits(cfg.executor) == {"warn_after": 30.0, "timeout": 120.0}
    assert _stall_limits(parse_config(config_text()).executor) == {"warn_after": 60.0,
                                                                   "timeout": 300.0}
    assert _stall_limits(parse_config(config_text("executor: {type: inline}\n")).executor) == {}
    with pytest.raises(ConfigError) as err:
        parse_config(config_text("executor: {workers: 2, stall_warning: 10m, "
                                 "stall_timeout: 0s}\n"))
    assert [p.path for p in err.value.problems] == ["executor.stall_timeout"]
    with pytest.raises(ConfigError) as err:
        parse_config(config_text("executor: {workers: 2, stall_warning: 10m}\n"))
    assert [(p.path, p.message) for p in err.value.problems] == [
        ("executor", "stall_warning (10m) is after stall_timeout (5m): the warning would never "
                     "be logged")]


def test_open_executor_builds_each_local_kind() -> None:
    with open_executor(LocalExecutorConfig(workers=2)) as fits:
        assert isinstance(fits.executor, ThreadPoolExecutor)
        assert fits.executor.submit(sum, [1, 2]).result() == 3
    with open_executor(LocalExecutorConfig(processes=True)) as fits:
        assert isinstance(fits.executor, ProcessPoolExecutor)
    with open_executor(parse_config(config_text("executor: {type: inline}\n")).executor) as fits:
        assert isinstance(fits.executor, InlineExecutor)


def test_cli_run_stops_before_ticking_when_the_dask_scheduler_is_unreachable(
        tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config_text("executor: {type: dask, address: 'tcp://127.0.0.1:9', "
                               "timeout: 1s}\n"))
    res = CliRunner().invoke(app, ["run", "--once", "-c", str(cfg)])
    assert res.exit_code == 1
    assert "cannot reach the Dask scheduler" in res.output


# -- the pipeline ------------------------------------------------------------------------------


def pipeline(executor: Executor, store: Store, source: str) -> tuple[Pipeline, FakeClock]:
    cfg = parse_config(config_text(source=source))
    clock = FakeClock(ANCHOR + HOUR)
    return Pipeline(cfg, store, clock=clock, fit_executor=executor), clock


def ticks(results: list[TickResult]) -> list[TickResult]:
    return [r for r in results if not r.skipped]


def test_pipeline_hands_fits_to_its_executor_and_reports_them(tmp_path: Path) -> None:
    """The tick submits and moves on; the fit is installed on a later tick and reported
    (refit seconds, failures) on the tick result the exporter reads."""
    store = Store.open(f"sqlite:///{tmp_path / 'p.db'}")
    store.migrate()
    ex = ManualExecutor()
    pipe, clock = pipeline(ex, store, one_series_csv(tmp_path))
    done = ticks(replay(pipe, clock, ANCHOR + timedelta(hours=27), deliver=False))
    assert len(ex.calls) == 1 and len(pipe.pending_fits()) == 1
    assert done[-1].fits_in_flight == {"seasonal": 1}  # the exporter's gauge: still out
    assert all(r.error is None for r in done)
    assert all(np.isnan(r.scores["score"]).all() for r in done)  # no model yet, no waiting
    ex.calls[0].set_result(flat_forecast(int((ANCHOR + timedelta(hours=25)).timestamp()) * 10**9,
                                         0.35))
    nxt = ticks(replay(pipe, clock, ANCHOR + timedelta(hours=28), deliver=False))
    assert nxt[-1].refits == {"seasonal": [0.25]} and nxt[-1].error is None
    assert nxt[-1].fits_in_flight == {"seasonal": 0}
    assert np.isfinite(nxt[-1].scores["score"]).all()  # the new model scores this tick
    # a day later the next refit is submitted; it fails: counted on the tick, no error
    later = ticks(replay(pipe, clock, ANCHOR + timedelta(hours=51), deliver=False))
    assert len(ex.calls) == 2 and all(r.error is None for r in later)
    ex.calls[1].set_exception(MemoryError("worker ran out of memory"))
    failed = ticks(replay(pipe, clock, ANCHOR + timedelta(hours=52), deliver=False))
    assert failed[-1].refit_failures == {"seasonal": 1} and failed[-1].error is None
    assert np.isfinite(failed[-1].scores["score"]).all()  # the previous model still scores
    pipe.close()
    store.close()


def test_pipeline_refits_on_a_real_dask_cluster(tmp_path: Path) -> None:
    """``executor: {type: dask, address: ...}`` against a LocalCluster whose worker is another
    process: the tick submits the fit, the test waits on the real future, the next tick
    installs the Prophet model that came back over TCP."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  protocol="tcp", dashboard_address=None) as cluster:
        cfg = parse_config(config_text(f"executor: {{type: dask, address: "
                                       f"'{cluster.scheduler_address}'}}\n",
                                       one_series_csv(tmp_path)))
        store = Store.open(f"sqlite:///{tmp_path / 'd.db'}")
        store.migrate()
        with open_executor(cfg.executor) as fits:
            assert fits.description.startswith("dask at tcp://")
            clock = FakeClock(ANCHOR + HOUR)
            pipe = Pipeline(cfg, store, clock=clock, fit_executor=fits.executor)
            replay(pipe, clock, ANCHOR + timedelta(hours=26), deliver=False)
            futures = pipe.pending_fits()
            assert len(futures) == 1
            finished, _ = wait(futures, timeout=120)
            assert finished and futures[0].exception() is None
            last = ticks(replay(pipe, clock, ANCHOR + timedelta(hours=27), deliver=False))[-1]
            assert last.error is None and len(last.refits["seasonal"]) == 1
            assert last.refits["seasonal"][0] > 0
            assert np.isfinite(last.scores["score"]).all()
            assert np.isfinite(last.scores["expected"]).all()
            pipe.close()
        store.close()


def test_a_fit_that_fails_on_dask_is_counted_not_raised() -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp", dashboard_address=None) as cluster:
        config = DaskExecutorConfig(type="dask", address=cluster.scheduler_address)
        with open_executor(config) as fits:
            det = ProphetDetector(ProphetConfig(min_history="2d", retry_after="6h"),
                                  interval=HOUR, executor=fits.executor)
            det._settings = {"type": "prophet", "holidays": "no such country"}  # fit raises
            feed(det, range(49))
            wait(det.pending_futures(), timeout=60)
            feed(det, range(49, 50))
            assert det.drain_fit_report().failures == 1 and det.pending() == 0


def test_cli_run_once_keeps_its_fits_with_a_thread_pool(tmp_path: Path) -> None:
    """``cxmon run --once`` (cron) exits after one tick: a fit handed to the pool must still
    be installed and checkpointed by that tick, or Prophet would never get a model."""
    from detectors.prophet_detector import _Series

    db = tmp_path / "once.db"
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # run uses real time
    text = config_text("executor: {type: local, workers: 2}\n",
                       one_series_csv(tmp_path, now - timedelta(days=3)))
    text = text.replace("store: sqlite://", f"store: sqlite:///{db}")
    text = text.replace("interval: 1h,", "interval: 1h, history: 3d,")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    res = CliRunner().invoke(app, ["run", "--once", "-c", str(cfg), "--log-level", "error"])
    assert res.exit_code == 0, res.output
    store = Store.open(f"sqlite:///{db}")
    states = store.load_checkpoints("kpi/seasonal")
    store.close()
    assert len(states) == 1
    st = _Series.unpack(next(iter(states.values())))
    assert st.fitted_at is not None and len(st.yhat) == 48 and st.sigma_obs > 0


@pytest.mark.parametrize(("address", "says"), [
    ("not a url", "expected tcp://host:port"),
    ("http://127.0.0.1:8786", "unknown scheme 'http'"),
    ("tls://127.0.0.1:8786", "tls:// needs TLS settings"),
    ("tcp://127.0.0.1:99999", "port from 1 to 65535"),
])
def test_a_malformed_dask_address_is_a_config_error(address: str, says: str) -> None:
    """Dask's own errors for these are tracebacks (missing port number, unknown address
    scheme, TLS expects a ssl_context) that ``cxmon run`` did not catch."""
    with pytest.raises(ConfigError) as err:
        parse_config(config_text(f"executor: {{type: dask, address: '{address}'}}\n"))
    [problem] = err.value.problems
    assert problem.path == "executor.address" and says in problem.message


def test_cli_run_says_so_when_what_answers_is_not_a_dask_scheduler(tmp_path: Path) -> None:
    """A web server at the address made the client fail deep in its protocol (a MemoryError
    from a garbage frame length, or a wait for a handshake): one clear error, no traceback."""
    import socketserver
    import threading

    class NotDask(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(b"HTTP/1.0 400 Bad Request\r\nServer: nginx\r\n\r\n" * 50)

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), NotDask) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        cfg = tmp_path / "c.yaml"
        cfg.write_text(config_text("executor: {type: dask, address: "
                                   f"'tcp://127.0.0.1:{server.server_address[1]}', "
                                   "timeout: 1s}\n"))
        res = CliRunner().invoke(app, ["run", "--once", "-c", str(cfg)])
        server.shutdown()
    assert res.exit_code == 1
    assert "cannot reach the Dask scheduler" in res.output and "Traceback" not in res.output
    assert f"127.0.0.1:{server.server_address[1]}" in res.output


@pytest.mark.parametrize(("address", "says"), [
    ("tcp://127.0.0.1:1", "tcp://127.0.0.1:1: connection refused"),
    ("tcp://no-such-host.invalid:8786", "'no-such-host.invalid' does not resolve"),
])
def test_cli_run_fails_at_once_on_a_refused_port_or_an_unknown_host(
        tmp_path: Path, address: str, says: str) -> None:
    """Dask's client retries a refused port or an unresolvable host until its timeout (30 s,
    then one vague 'Timed out' line): the probe says what is wrong at once, default timeout."""
    import time

    cfg = tmp_path / "c.yaml"
    cfg.write_text(config_text(f"executor: {{type: dask, address: '{address}'}}\n"))
    assert parse_config(cfg.read_text()).executor.timeout == timedelta(seconds=10)
    t0 = time.monotonic()
    res = CliRunner().invoke(app, ["run", "--once", "-c", str(cfg)])
    assert time.monotonic() - t0 < 5
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert says in " ".join(res.output.split())


def test_settle_warns_once_per_stall_then_gives_up_naming_the_executor(
        caplog: pytest.LogCaptureFixture) -> None:
    """Fits in flight and none finishing: a WARNING after ``warn_after`` (how many wait, on
    what), once per stall (progress re-arms it), and the give-up names the executor too. The
    wait is a fake that moves a FakeClock: no sleeping."""
    clock = FakeClock(ANCHOR)
    inner = ManualExecutor()
    script: list[Any] = [None, lambda: inner.calls[0].set_result(1)]  # per wait call

    def fake_wait(fs: Any, timeout: float, return_when: str) -> tuple[set, set]:
        step = script.pop(0) if script else None
        if step is not None:
            step()
            return {f for f in fs if f.done()}, set()
        clock.advance(timedelta(seconds=timeout))
        return set(), set(fs)

    ex = WaitingExecutor(inner, timeout=300, warn_after=60, where="dask at tcp://sched:8786",
                         clock=clock, wait=fake_wait)
    a, b = ex.submit(pow, 2, 2), ex.submit(pow, 3, 3)
    with caplog.at_level(logging.WARNING, logger="monitor.executor"):
        ex.settle()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "2 model fit(s) waiting on dask at tcp://sched:8786, none finished for 60 s; they "
        "are cancelled after 300 s without progress",  # stall 1, then a fit finished
        "1 model fit(s) waiting on dask at tcp://sched:8786, none finished for 60 s; they "
        "are cancelled after 300 s without progress",  # stall 2: warned again, once
        "1 model fit(s) made no progress within 300 s on dask at tcp://sched:8786: cancelled, "
        "and no more fits this run (they are retried on the next); does the executor have "
        "workers?",
    ]
    assert a.result() == 1 and b.exception() is not None and ex.stalled is not None
    assert clock.now() == ANCHOR + timedelta(seconds=360)  # progress at 60 s, then 300 more
