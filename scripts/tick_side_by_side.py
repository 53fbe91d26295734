"""How long a small metric's tick takes while a heavy metric's detection runs, through the
real-time scheduler's tick path (``Scheduler._tick``), on a scratch SQLite store.

Why: a tick of a metric of 50,000 series spends seconds in detection; the ticks of every
other metric should not wait for it (docs/operations.md, "Delivery beside detection").
Not a test: it measures wall time. Run from the repository root::

    .venv/bin/python scripts/tick_side_by_side.py [LEAVES] [ROUNDS]   # 40000 leaves: 48,521 series

To compare with another checkout: ``PYTHONPATH=/path/to/other .venv/bin/python ...``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from monitor.bench.tick import STEP, T0, ContactCounts
from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.detection import MetricDetectors
from monitor.pipeline import Pipeline
from monitor.scheduler import Scheduler
from monitor.store import Store

CONFIG = """
store: "sqlite:///{db}"
sources: {{big: {{type: demo}}, small: {{type: demo}}}}
metrics:
  - {{name: heavy, source: big, interval: 1h, timestamp: ts,
     dimensions: [channel, region, reason], value: n, history: 2h}}
  - {{name: light, source: small, interval: 1h, timestamp: ts, dimensions: [channel],
     value: n, history: 2h}}
alerting:
  receivers: [{{name: console, console: {{format: json}}}}]
"""


def main(leaves: int, rounds: int) -> None:
    detecting = threading.Event()
    run = MetricDetectors.run

    def spy(self: MetricDetectors, *args: Any, **kwargs: Any) -> Any:
        if self.metric == "heavy":
            detecting.set()
        return run(self, *args, **kwargs)

    MetricDetectors.run = spy  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config(CONFIG.format(db=Path(tmp) / "s.db"), env={})
        clock = FakeClock(T0 + 3 * STEP)
        store = Store.open(cfg.store.url)
        p = Pipeline(cfg, store, clock=clock, notifiers={},
                     sources={"big": ContactCounts(leaves), "small": ContactCounts(10)})
        for metric in ("heavy", "light"):  # first ticks: the history
            assert p.tick(metric).ok
        sched = Scheduler(p)
        alone, beside, heavy = [], [], []
        for _ in range(rounds):
            clock.advance(STEP)
            t = time.perf_counter()
            sched._tick("light")
            alone.append(time.perf_counter() - t)
            sched._tick("heavy")
            clock.advance(STEP)
            detecting.clear()
            start = time.perf_counter()
            thread = threading.Thread(target=sched._tick, args=["heavy"])
            thread.start()
            detecting.wait(600)
            t = time.perf_counter()
            sched._tick("light")  # while heavy is in its detection
            beside.append(time.perf_counter() - t)
            thread.join()
            heavy.append(time.perf_counter() - start)
        print(f"heavy: {len(store.series_labels('heavy'))} series, tick median "
              f"{statistics.median(heavy):.2f} s; light tick alone median "
              f"{statistics.median(alone) * 1000:.0f} ms, during heavy's detection median "
              f"{statistics.median(beside) * 1000:.0f} ms (max {max(beside) * 1000:.0f} ms)")
        p.close()
        store.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40_000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 3)
