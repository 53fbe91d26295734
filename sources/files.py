"""``type: files`` — CSV, Parquet or JSON-lines files: one path or a glob.

Every poll globs again, so files dropped into the folder later are picked up; a file is
re-read only when its size or modification time changed (a small cache per source). Rows are
filtered to ``since <= timestamp < until`` here; a row whose timestamp cannot be parsed is
dropped, counted once per file version (``skipped["bad_timestamp"]``, exported as
``cxmon_source_records_skipped_total``) and logged with the first such value; a CSV line
with more fields than the header is dropped and counted the same way (``bad_line``). A
metric's ``query``, if set, is its own path or glob instead of the source's ``path``.
Relative paths are taken from ``base_dir``; a relative ``base_dir``, or none, from the config
file's folder (set by :func:`monitor.config.load_config`; the working directory for a config
built in code). A URL path or ``base_dir`` (``s3://bucket/exports/*.csv``) is read from the
object store through fsspec (:mod:`sources.object_store`), with the same caching and errors.

A plain path (no ``*``, ``?`` or ``[``) that does not exist, or a glob that matches no file (a
drop folder still empty, or a typo), fails the poll with :class:`MissingSourceError` naming the
full path or pattern (``kind="missing"`` in ``cxmon_source_poll_errors_total``, a warning in
the log): the tick is retried with backoff on later ticks and the cursor waits, so nothing is
lost once a file is there and a first tick does not move past the history it should load.

``timezone`` (an IANA name, default UTC) is the zone of naive timestamps (exports written in
local time); timestamps with an offset keep it. At a clock change a time in the repeated hour
is taken at its first occurrence and one in the skipped hour shifted forward, counted in
:attr:`FilesSource.dst_adjusted` and logged; neither fails a tick (see
:func:`monitor.frames.localize`).
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import io
import json
import logging
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Literal, Self

import pandas as pd
import pyarrow
from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from monitor.frames import year_last_dates
from sources.base import (
    FatalSourceError,
    MissingSourceError,
    NoParams,
    PollRequest,
    Source,
    SourceConfig,
    parse_params,
)
from sources.object_store import RemoteFiles, join_url, protocol_of, protocol_problem
from sources.registry import register
from sources.timezones import AMBIGUOUS_HINT, LocalTimes, parse_times

log = logging.getLogger(__name__)

Format = Literal["auto", "csv", "parquet", "jsonl"]
_EXT = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
        ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


class FilesSourceConfig(SourceConfig, LocalTimes):
    """Files matching ``path`` (a glob such as ``exports/*.csv`` is allowed)."""

    type: Literal["files"]
    path: str = Field(min_length=1, description="file path or glob (**, *, ?)")
    format: Format = Field("auto", description="auto picks by extension")
    base_dir: str | None = Field(None, description="relative paths start here (default and "
                                 "relative: the config file's folder; may be a URL such as "
                                 "s3://bucket/exports)")
    csv_separator: str = ","
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="options of the fsspec filesystem of a URL path "
        "(s3://: endpoint_url, profile, anon, key, secret, client_kwargs, config_kwargs); "
        "credentials best from the environment")
    connection: str | None = Field(None, description="name of a top-level connections: "
                                   "entry whose storage_options this source uses (its own "
                                   "storage_options keys win)")

    @model_validator(mode="after")
    def _protocols(self) -> Self:
        """Each problem at the key to change (``path``, ``base_dir``, ``storage_options``,
        ``connection``)."""
        problems: list[tuple[str, str]] = [
            (key, problem) for key, where in (
                ("path", self.path), ("base_dir", self.base_dir or ""))
            if (problem := protocol_problem(where)) is not None]
        is_url = protocol_of(self.path) or protocol_of(self.base_dir or "")
        for key in ("storage_options", "connection"):
            if getattr(self, key) and not is_url:
                verb = "apply" if key == "storage_options" else "applies"
                problems.append((key, f"{key} {verb} to a URL path (s3://bucket/...) only, and "
                                 f"path {self.path!r} is local: remove {key}, or make path "
                                 "(or base_dir) a URL"))
        if problems:
            raise ValidationError.from_exception_data("files source", [InitErrorDetails(
                type=PydanticCustomError("value_error", msg), loc=(key,), input=None)
                for key, msg in problems])
        return self

    def resolve_paths(self, config_dir: Path) -> Self:
        if protocol_of(self.base_dir or "") or protocol_of(self.path):
            return self
        base = config_dir / (self.base_dir or "")  # an absolute base_dir wins in the join
        return self.model_copy(update={"base_dir": str(base)})


@register("files")
class FilesSource(Source):
    """Reads the files matching the glob at each poll; caches unchanged files."""

    Config = FilesSourceConfig
    Params = NoParams  # the query is an optional own glob
    config: FilesSourceConfig

    def __init__(self, name: str, config: FilesSourceConfig) -> None:  # type: ignore[override]
        super().__init__(name, config)
        self._cache: dict[str, tuple[tuple[Any, int], pd.DataFrame]] = {}
        self._stores: dict[str, RemoteFiles] = {}  # by URL scheme (s3, gs, ...)
        self._ts_cache: dict[tuple[str, str], tuple[Any, pd.Series]] = {}
        self.skipped: Counter[str] = Counter()  # rows dropped here (see sources.metrics)
        #: naive times at a clock change of ``timezone`` (``ambiguous``, ``nonexistent``),
        #: counted once per file version as they are parsed
        self.dst_adjusted: Counter[str] = Counter()
        #: per file, the version (mtime, size) its content digest was taken of, the digest,
        #: and whether its being a copy was counted and logged already
        self._digests: dict[str, tuple[tuple[Any, int], str, bool]] = {}

    def pattern(self, pattern: str | None = None) -> str:
        """The full path or glob polled: relative ones are taken from ``base_dir``."""
        given = pattern or self.config.path
        if protocol_of(given):
            return given
        if protocol_of(base := self.config.base_dir or ""):
            return join_url(base, given)
        given = os.path.expanduser(given)
        if not os.path.isabs(given):
            given = os.path.join(self.config.base_dir or os.getcwd(), given)
        return os.path.normpath(given)

    def files(self, pattern: str | None = None) -> list[str]:
        """The files matching the pattern now, sorted."""
        full = self.pattern(pattern)
        if (remote := self._remote(full)) is not None:
            return remote.glob(full)
        return sorted(p for p in glob.glob(full, recursive=True) if os.path.isfile(p))

    def missing_bucket(self, pattern: str | None = None) -> str | None:
        """Why the pattern matches nothing when its bucket does not exist (None: a local
        path, or the bucket is there)."""
        full = self.pattern(pattern)
        remote = self._remote(full)
        return None if remote is None else remote.missing_bucket(full)

    def _remote(self, path: str) -> RemoteFiles | None:
        """The object store ``path`` is in (None: a local path)."""
        protocol = protocol_of(path)
        if protocol is None:
            return None
        if protocol not in self._stores:
            self._stores[protocol] = RemoteFiles(self.name, protocol,
                                                 self.config.storage_options)
        return self._stores[protocol]

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        parse_params(NoParams, self.name, request)
        paths = self.files(request.query)
        if not paths:
            return self._nothing(request)
        frames = []
        contents: dict[str, str] = {}  # digest -> the first file of this poll with it
        for path in paths:
            df = self._read(path)
            if df.columns.empty:
                continue
            if (first := self._same_as_another(path, df, contents)) is not None:
                # its rows in this poll's range are the first file's: not counted twice
                hit = self._ts_cache.get((first, request.timestamp_column))
                if hit is not None:
                    ts = hit[1]
                    self.skipped["duplicate_file"] += int(
                        ((ts >= pd.Timestamp(request.since))
                         & (ts < pd.Timestamp(request.until))).sum())
                continue
            if request.timestamp_column not in df.columns:
                columns = [str(c) for c in df.columns]
                close = difflib.get_close_matches(request.timestamp_column, columns, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise FatalSourceError(
                    f"source {self.name}: {Path(path).name} has no column "
                    f"{request.timestamp_column!r}{hint} (metric {request.metric}'s "
                    f"timestamp); columns: {', '.join(columns)}"
                )
            ts = self._times(path, df, request.timestamp_column)
            keep = (ts >= pd.Timestamp(request.since)) & (ts < pd.Timestamp(request.until))
            rows = df[keep.to_numpy()]
            if self.config.converts_times():  # the tick would read the raw text again
                rows = rows.assign(**{request.timestamp_column: ts[keep.to_numpy()]})
            frames.append(rows)
        live = set(paths)
        self._cache = {p: v for p, v in self._cache.items() if p in live}
        self._ts_cache = {k: v for k, v in self._ts_cache.items() if k[0] in live}
        self._digests = {p: v for p, v in self._digests.items() if p in live}
        if not frames:  # only empty files (being written): no rows, no columns yet
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def _nothing(self, request: PollRequest) -> pd.DataFrame:
        """No file matches: the poll fails as ``missing`` (retried on later ticks, the cursor
        waits). Not ``fatal``: later ticks do retry it, and an alert on fatal errors paged for
        a drop folder that was briefly empty."""
        full = self.pattern(request.query)
        given = request.query or self.config.path
        where = "" if os.path.isabs(os.path.expanduser(given)) or protocol_of(given) else (
            f" ({given!r} is relative to {self.config.base_dir or os.getcwd()})")
        if (gone := self.missing_bucket(request.query)) is not None:
            raise MissingSourceError(f"source {self.name}: no file matches {full}: {gone}; "
                                     f"metric {request.metric} waits for one")
        if not glob.has_magic(full):
            raise MissingSourceError(f"source {self.name}: file {full} does not exist{where}; "
                                     f"metric {request.metric} waits for it")
        # Not "no data": a first tick would move the cursor past the whole history, and a
        # typo would never load it. The poll fails (retried with backoff, in the metrics and
        # logs) and the cursor waits until a file matches.
        raise MissingSourceError(f"source {self.name}: no file matches {full}{where} yet; "
                                   f"metric {request.metric} waits for one (nothing is skipped)")

    def _same_as_another(self, path: str, df: pd.DataFrame,
                         contents: dict[str, str]) -> str | None:
        """The file read before ``path`` in this poll with exactly its bytes, or None.

        Why: rows add up, so a second copy in the folder (``kpi (1).csv`` downloaded again,
        an export re-run under a new name) doubled every count of its range, silently, and
        the detectors alerted on it. A byte-identical file holds the same records: it is
        read once; the copy's rows in a poll's range are counted in :attr:`skipped`
        (``duplicate_file``), and the copy is logged with both names once per file version.
        Files that overlap only in part cannot be told from new data; de-duplicate those
        in the export."""
        stamp = self._cache[path][0] if path in self._cache else (0, 0)
        held = self._digests.get(path)
        if held is None or held[0] != stamp:
            held = (stamp, self._digest(path), False)
        self._digests[path] = held
        first = contents.setdefault(held[1], path)
        if first == path:
            return None
        if not held[2]:
            self._digests[path] = (held[0], held[1], True)
            log.warning("source %s: %s has the same content as %s: read once (its %d row(s) "
                        "are not counted twice); remove the copy from the folder", self.name,
                        Path(path).name, Path(first).name, len(df))
        return first

    def _digest(self, path: str) -> str:
        """SHA-256 of a file's bytes (an object's: downloaded again only if :meth:`_read`
        did not just take it)."""
        if (remote := self._remote(path)) is not None:
            return hashlib.sha256(remote.read(path)).hexdigest()
        sha = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        return sha.hexdigest()

    def _times(self, path: str, df: pd.DataFrame, column: str) -> pd.Series:
        """Parsed timestamps of a file (cached with it); a row whose timestamp cannot be
        parsed belongs to no time range: it is counted once per file version in
        :attr:`skipped` (``bad_timestamp``), not at every poll."""
        key = (path, column)
        stamp = self._cache[path][0] if path in self._cache else None
        hit = self._ts_cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        # as the tick reads them (numbers are Unix seconds), naive ones in ``timezone``
        ts = parse_times(df[column], self.config.timezone, self.dst_adjusted,
                         source=self.name, where=Path(path).name,
                         date_order=self.config.date_order)
        bad = ts.isna().to_numpy()
        if bad.any():
            ambiguous = bad & year_last_dates(df[column])
            if self.config.date_order is None and ambiguous.any():
                self.skipped["ambiguous_date"] += int(ambiguous.sum())
                log.warning("source %s: %s: %d row(s) skipped: %s (first: %r in column %r)",
                            self.name, Path(path).name, int(ambiguous.sum()), AMBIGUOUS_HINT,
                            str(df[column][ambiguous].iloc[0])[:40], column)
                bad = bad & ~ambiguous
        if bad.any():
            self.skipped["bad_timestamp"] += int(bad.sum())
            first = df[column][bad].iloc[0]
            log.warning("source %s: %s: %d row(s) with no readable time in column %r skipped "
                        "(first: %r); times need a date and a time, e.g. 2026-11-28T09:00Z, "
                        "or Unix seconds",
                        self.name, Path(path).name, int(bad.sum()), column,
                        None if pd.isna(first) else str(first)[:40])
        self._ts_cache[key] = (stamp, ts)
        return ts

    def _read(self, path: str) -> pd.DataFrame:
        remote = self._remote(path)
        stamp = self._version(path, remote)
        if stamp is None:  # removed between glob and read
            return pd.DataFrame()
        hit = self._cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        fmt = self.config.format
        if fmt == "auto":
            fmt = _EXT.get(Path(path).suffix.lower())  # type: ignore[assignment]
            if fmt is None:
                raise FatalSourceError(
                    f"source {self.name}: cannot tell the format of {Path(path).name}; "
                    "set format: csv, parquet or jsonl"
                )
        src: str | io.BytesIO = path
        if remote is not None:  # downloaded once: its digest (duplicate copies) taken now
            data = remote.read(path)
            src = io.BytesIO(data)
            self._digests[path] = (stamp, hashlib.sha256(data).hexdigest(), False)
        try:
            if fmt == "csv":
                df = self._read_csv(path, src)
            elif fmt == "parquet":
                df = pd.read_parquet(src)
            else:
                df = self._read_jsonl(path, src)
        except pd.errors.EmptyDataError:  # being written, or empty: nothing yet
            df = pd.DataFrame()
        except (ValueError, pyarrow.ArrowException, pd.errors.ParserError, UnicodeDecodeError,
                OSError) as exc:
            raise FatalSourceError(
                f"source {self.name}: cannot read {Path(path).name} as {fmt}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
        self._cache[path] = (stamp, df)
        return df

    @staticmethod
    def _version(path: str, remote: RemoteFiles | None) -> tuple[Any, int] | None:
        """What changes when the file does (modification time or ETag, and size)."""
        if remote is not None:
            return remote.version(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _read_jsonl(self, path: str, src: str | io.BytesIO) -> pd.DataFrame:
        """A JSON-lines file without its unreadable lines (not JSON, cut short while being
        written, or not an object), counted in :attr:`skipped` (``bad_line``) and logged
        once per file version, as a CSV's malformed lines are.

        Why: one such line made the whole file a fatal error (or an uncaught ``TypeError``
        for a ``null`` or a list), so a metric stopped on one bad record and an export
        still being appended failed every tick until its last line was complete."""
        try:
            return pd.read_json(src, lines=True, dtype=False)
        except (ValueError, TypeError) as exc:
            whole = str(exc) or type(exc).__name__  # some line is not a JSON object
        if isinstance(src, io.BytesIO):
            text = src.getvalue().decode("utf-8")
        else:
            with open(src, encoding="utf-8") as fh:
                text = fh.read()
        good, bad = [], []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                ok = isinstance(json.loads(line), dict)
            except ValueError:
                ok = False
            (good if ok else bad).append(line if ok else str(n))
        if bad and not good:  # not JSON lines at all (a JSON array, pretty-printed JSON)
            raise ValueError(f"{whole} (no line is a JSON object; one object per line)")
        if bad:
            self.skipped["bad_line"] += len(bad)
            log.warning("source %s: %s: %d unreadable line(s) skipped (not a JSON object: "
                        "line %s)", self.name, Path(path).name, len(bad),
                        ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else ""))
        if not good:
            return pd.DataFrame()  # blank lines only
        return pd.read_json(io.StringIO("\n".join(good)), lines=True, dtype=False)

    def _read_csv(self, path: str, src: str | io.BytesIO) -> pd.DataFrame:
        """A CSV file without its malformed lines (more fields than the header), which are
        counted in :attr:`skipped` (``bad_line``) and logged once per file version: one bad
        line must not stop a metric."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            df = pd.read_csv(src, sep=self.config.csv_separator, on_bad_lines="warn")
        bad = [str(w.message).strip() for w in caught
               if issubclass(w.category, pd.errors.ParserWarning)
               and str(w.message).startswith("Skipping line")]
        lines = [m for msg in bad for m in msg.splitlines() if m.startswith("Skipping line")]
        if lines:
            self.skipped["bad_line"] += len(lines)
            log.warning("source %s: %s: %d malformed line(s) skipped (%s)", self.name,
                        Path(path).name, len(lines), "; ".join(lines[:3]).replace(
                            "Skipping line", "line"))
        return df
