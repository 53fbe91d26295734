"""``type: prometheus`` against the real Prometheus server (Debian package).

History is backfilled with ``promtool tsdb create-blocks-from openmetrics`` and the server is
started on it (127.0.0.1, a free port, a temp storage dir), so nothing waits on real time
except the server's startup (bounded). Under ``CI=true`` a missing binary fails the test.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from monitor.config import parse_config
from monitor.frames import build_measure_frame
from monitor.pipeline import measure_spec
from sources.base import FatalSourceError, PollRequest
from sources.prometheus import PrometheusSource, PrometheusSourceConfig
from tests.conftest import in_ci

STARTUP_TIMEOUT = 30.0
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
END = NOW - timedelta(hours=2)  # well inside retention, clear of the head block
START = END - timedelta(hours=6)
CHANNELS = {"app": 1, "web": 3}


def depth(channel: str, t: datetime) -> int:
    """The gauge's value at minute ``t`` (exact, so the test can recompute it)."""
    minutes = int((t - START).total_seconds() // 60)
    return CHANNELS[channel] * minutes % 97


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _need(binary: str) -> str:
    path = shutil.which(binary) or (f"/usr/bin/{binary}" if Path(f"/usr/bin/{binary}").exists()
                                    else None)
    if path is None:
        msg = f"{binary} not installed (run scripts/install-system-deps.sh)"
        if in_ci():
            pytest.fail(msg + "; CI is set, so Prometheus tests must run", pytrace=False)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prom, promtool = _need("prometheus"), _need("promtool")
    tmp = tmp_path_factory.mktemp("prom")
    lines = ["# HELP cx_queue_depth Contacts waiting.", "# TYPE cx_queue_depth gauge"]
    t = START
    while t <= END:
        for channel in CHANNELS:
            lines.append(f'cx_queue_depth{{channel="{channel}",site="lon"}} '
                         f"{depth(channel, t)} {int(t.timestamp())}")
        t += timedelta(minutes=1)
    lines.append("# EOF")
    (tmp / "history.om").write_text("\n".join(lines) + "\n")
    data = tmp / "data"
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "-q",
                    str(tmp / "history.om"), str(data)], check=True, timeout=60,
                   capture_output=True)
    (tmp / "prometheus.yml").write_text("global: {scrape_interval: 1m}\nscrape_configs: []\n")
    port = _free_port()
    proc = subprocess.Popen(
        [prom, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
        stdout=subprocess.DEVNULL, stderr=(tmp / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail("prometheus exited: " + (tmp / "prometheus.log").read_text()[-2000:])
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready after {STARTUP_TIMEOUT:.0f}s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _source(url: str, **extra) -> PrometheusSource:
    return PrometheusSource("prom", PrometheusSourceConfig(type="prometheus", base_url=url,
                                                           **extra))


def test_range_query_to_long_frame(prometheus: str) -> None:
    src = _source(prometheus, step="5m")
    lo, hi = START + timedelta(hours=1), START + timedelta(hours=3)
    try:
        df = src.fetch(PollRequest("queue", lo, hi, "cx_queue_depth", {}, "timestamp"))
    finally:
        src.close()
    assert set(df.columns) == {"timestamp", "value", "channel", "site"}
    assert len(df) == 2 * 24  # two series x 24 five-minute buckets
    assert df["timestamp"].min() == pd.Timestamp(lo) and df["timestamp"].max() < pd.Timestamp(hi)
    for row in df.itertuples():
        # bucket b holds the sample at its end b + 5m
        end = row.timestamp.to_pydatetime() + timedelta(minutes=5)
        assert row.value == depth(row.channel, end)


def test_long_ranges_are_split(prometheus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sources.prometheus as mod

    monkeypatch.setattr(mod, "MAX_POINTS", 7)  # force several requests
    src = _source(prometheus, step="1m")
    try:
        df = src.fetch(PollRequest("queue", START, START + timedelta(hours=1),
                                   'cx_queue_depth{channel="web"}', {}, "timestamp"))
        assert src.http.requests == 9  # ceil(60 / 7)
    finally:
        src.close()
    assert len(df) == 60 and df["timestamp"].is_unique


def test_metric_step_param_and_rollup(prometheus: str) -> None:
    cfg = parse_config(f"""
sources: {{prom: {{type: prometheus, base_url: "{prometheus}"}}}}
metrics:
  - name: queue_depth
    source: prom
    interval: 15m
    query: "max_over_time(cx_queue_depth[15m])"
    params: {{step: 15m}}
    timestamp: timestamp
    value: value
    dimensions: [channel]
""", env={})
    metric = cfg.metrics[0]
    src = _source(prometheus)
    lo, hi = START + timedelta(hours=1), START + timedelta(hours=2)
    try:
        raw = src.fetch(PollRequest(metric.name, lo, hi, metric.query, dict(metric.params),
                                    metric.timestamp))
    finally:
        src.close()
    built = build_measure_frame(raw, measure_spec(metric), lo, hi)
    assert not built.rejected
    assert len(built.frame) == 4 * 3  # 4 buckets x (total, app, web)


def test_bad_promql_is_fatal(prometheus: str) -> None:
    src = _source(prometheus)
    with pytest.raises(FatalSourceError) as info:
        src.fetch(PollRequest("queue", START, END, "sum(cx_queue_depth", {}, "timestamp"))
    src.close()
    assert "prom" in str(info.value) and "PromQL" in str(info.value)
