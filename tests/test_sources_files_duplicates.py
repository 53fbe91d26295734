"""A byte-identical copy in a files source's folder (``kpi (1).csv`` downloaded again, an
export re-run under a new name) doubled every count of its range, silently: rows add up.
It is read once; the copy's rows are counted as ``duplicate_file`` and logged."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta

import pandas as pd

from sources.base import PollRequest
from sources.files import FilesSource, FilesSourceConfig

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def export(path, hours: int = 6, extra: int = 0) -> None:
    ts = [(T0 + timedelta(hours=h)).isoformat() for h in range(hours)]
    pd.DataFrame({"ts": ts + ts[:extra], "n": [1] * (hours + extra)}).to_csv(path, index=False)


def poll(src: FilesSource, hours: int = 24) -> pd.DataFrame:
    return src.fetch(PollRequest("m", T0, T0 + timedelta(hours=hours), None, {}, "ts"))


def make(tmp_path) -> FilesSource:
    return FilesSource("exports", FilesSourceConfig(type="files", path=f"{tmp_path}/*.csv"))


def test_an_identical_copy_is_read_once_and_counted_as_duplicate(tmp_path, caplog) -> None:
    export(tmp_path / "kpi.csv")
    shutil.copy(tmp_path / "kpi.csv", tmp_path / "kpi (1).csv")
    src = make(tmp_path)
    with caplog.at_level(logging.WARNING, logger="sources.files"):
        first, again = poll(src), poll(src, hours=2)
    assert first["n"].sum() == 6 and again["n"].sum() == 2  # not 12 and 4
    assert src.skipped["duplicate_file"] == 6 + 2  # the copy's rows in each poll's range
    said = [r.getMessage() for r in caplog.records if "same content" in r.getMessage()]
    assert said == ["source exports: kpi.csv has the same content as kpi (1).csv: read once "
                    "(its 6 row(s) are not counted twice); remove the copy from the folder"]


def test_files_that_differ_are_all_read(tmp_path) -> None:
    """Partly overlapping files cannot be told from new data: both count, as before."""
    export(tmp_path / "a.csv")
    export(tmp_path / "b.csv", extra=1)
    src = make(tmp_path)
    assert poll(src)["n"].sum() == 6 + 7
    assert "duplicate_file" not in src.skipped


def test_a_copy_that_changes_is_read_again(tmp_path) -> None:
    export(tmp_path / "a.csv")
    shutil.copy(tmp_path / "a.csv", tmp_path / "b.csv")
    src = make(tmp_path)
    assert poll(src)["n"].sum() == 6
    export(tmp_path / "b.csv", extra=2)  # rewritten with more rows: no longer a copy
    assert poll(src)["n"].sum() == 6 + 8
