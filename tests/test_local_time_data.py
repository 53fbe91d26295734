"""scripts/local_time_data.py writes data a first ``cxmon run --once`` of
examples/local_time.yaml can score at once: the 5-minute checkout file reaches the last whole
5 minutes (ending it at the whole hour made the run alert "has no data" after :15)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "local_time_data.py"


def _script():
    spec = importlib.util.spec_from_file_location("local_time_data", _PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_file_ends_at_its_own_last_whole_bucket(tmp_path: Path) -> None:
    _script().write(tmp_path, pd.Timestamp("2026-11-29 17:16:40"))
    last = {name: (tmp_path / name).read_text().splitlines()[-1].split(",")[0]
            for name in ("tickets_de.csv", "tickets_us.csv", "checkout.csv")}
    assert last == {"tickets_de.csv": "2026-11-29T16:00:00Z",
                    "tickets_us.csv": "2026-11-29T16:00:00Z",
                    "checkout.csv": "2026-11-29T17:10:00Z"}
