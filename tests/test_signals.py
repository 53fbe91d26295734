"""SIGTERM/SIGINT: the running tick finishes, then ``cxmon run`` exits cleanly (status 0)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFIG = """
store: sqlite:///{db}
sources:
  shop: {{type: demo}}
metrics:
  - name: complaints
    source: shop
    query: complaints
    interval: 1h
    timestamp: ts
    split_by: [journey]
    dimensions: [channel]
    value: complaints
"""


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float) -> str:
    """Collect the child's stderr until ``needle`` shows up (bounded: no open-ended wait)."""
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        if sel.select(timeout=deadline - time.monotonic()):
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
    return seen


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_stops_cleanly_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    cfg = tmp_path / "cxmon.yaml"
    cfg.write_text(CONFIG.format(db=tmp_path / "s.db"))
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(cfg)],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        seen = _read_until(proc, "complaints:", timeout=120)
        assert "complaints:" in seen, seen  # the first tick ran and was logged
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopping" in seen + err
    from monitor.store import Store

    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        ticks = store.ticks("complaints")
        assert ticks and all(t["error"] is None for t in ticks)
        assert store.get_cursor("complaints") is not None
