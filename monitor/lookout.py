"""Convert Amazon Lookout for Metrics definitions into a cxmon config (``cxmon import lookout``).

Input is the JSON the AWS CLI prints: ``aws lookoutmetrics describe-metric-set`` (required),
``describe-alert`` (optional; one, or a JSON list of them) and ``describe-anomaly-detector``
(optional). The output is a config document (a dict, dumped as YAML by the CLI) that has been
validated through :func:`monitor.config.parse_config` with stand-in values for the environment
variables it references, so ``cxmon validate`` accepts it once those are set.

Every Lookout setting that has no cxmon equivalent, or needs a manual step, becomes a
:class:`Note` of the report: nothing is dropped silently. Unknown fields are reported too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from monitor.config import LABEL_NAME, parse_config
from monitor.durations import format_duration
from monitor.errors import ConfigError

__all__ = ["Conversion", "LookoutInputError", "Note", "convert", "load_json", "render_yaml"]

#: Lookout frequency -> cxmon interval.
FREQUENCIES = {"P1D": timedelta(days=1), "PT1H": timedelta(hours=1),
               "PT10M": timedelta(minutes=10), "PT5M": timedelta(minutes=5)}

_METRIC_BAD = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")
_SIMPLE_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{\{[^}]*\}\}")

# Fields that describe the resource, not its behaviour: nothing to convert, not reported.
_METADATA = {"MetricSetArn", "AnomalyDetectorArn", "CreationTime", "LastModificationTime",
             "ResponseMetadata", "Status", "FailureReason", "AlertArn", "AlertStatus",
             "AnomalyDetectorName", "AnomalyDetectorDescription"}
_SOURCE_KINDS = ("S3SourceConfig", "RDSSourceConfig", "RedshiftSourceConfig",
                 "AthenaSourceConfig", "CloudWatchConfig", "AppFlowConfig")
_UNSUPPORTED_HINTS = {
    "AthenaSourceConfig": "export the table to S3 (CTAS / UNLOAD) and use a files source, or "
                          "query it through a SQLAlchemy Athena dialect (PyAthena) as a sql "
                          "source",
    "CloudWatchConfig": "scrape the metric into Prometheus (cloudwatch_exporter or YACE) and "
                        "use a prometheus source",
    "AppFlowConfig": "point the AppFlow flow at an S3 bucket and use a files source, or use "
                     "cxmon's own connector where one exists (salesforce, zendesk, servicenow, "
                     "google_analytics)",
}


class LookoutInputError(ValueError):
    """The input is not what the AWS CLI prints (not JSON, wrong shape, a field missing)."""


@dataclass(frozen=True)
class Note:
    """One line of the report: a Lookout setting and what became of it."""

    kind: str  # "manual" (a step to do), "unsupported" (no equivalent), "mapped" (a decision)
    setting: str  # where in the Lookout input, e.g. MetricSource.S3SourceConfig.Charset
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.setting}: {self.message}"


@dataclass
class Conversion:
    """The result: a config document (None when nothing could be converted), the env vars it
    references and the report."""

    config: dict[str, Any] | None
    env: dict[str, str] = field(default_factory=dict)  # variable -> what it must hold
    notes: list[Note] = field(default_factory=list)


def load_json(text: str, what: str) -> Any:
    """Parse AWS CLI JSON output; a clear :class:`LookoutInputError` otherwise."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LookoutInputError(f"{what}: not JSON ({exc.msg} at line {exc.lineno}, "
                                f"column {exc.colno})") from None


# --------------------------------------------------------------------------------------------
# small helpers


def _need(obj: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    value = obj.get(key)
    if value is None or (isinstance(value, str | list | dict) and not value):
        raise LookoutInputError(f"{where}{key}: required field missing or empty")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise LookoutInputError(f"{where}{key}: expected {_article(names)}, "
                                f"got {type(value).__name__}")
    return value


def _article(name: str) -> str:
    name = {"str": "string", "dict": "object", "list": "list", "int": "number"}.get(name, name)
    return ("an " if name[0] in "aeiou" else "a ") + name


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LookoutInputError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def metric_name(text: str) -> str:
    """A cxmon metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) from any text."""
    name = _METRIC_BAD.sub("_", text).strip("_") or "metric"
    return name if re.match(r"[a-zA-Z_:]", name) else "_" + name


def label_name(text: str) -> str:
    """A label name ([a-zA-Z_][a-zA-Z0-9_]*) from any text: lower case, ``_`` for the rest."""
    name = _LABEL_BAD.sub("_", text).strip("_").lower() or "dim"
    return name if re.match(r"[a-zA-Z_]", name) else "_" + name


def env_name(*parts: str) -> str:
    return "_".join(_LABEL_BAD.sub("_", p).strip("_").upper() for p in parts if p)


def _known_zone(name: str) -> bool:
    """An IANA time zone name this machine knows (a typo stays a note, not SQL)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _ident(column: str, quote: str = '"') -> str:
    """A column or table name for SQL: bare when simple, else quoted with ``quote`` (``"`` is
    ANSI, as PostgreSQL and Redshift read it; MySQL reads backticks).

    >>> _ident("order date"), _ident("order date", "`"), _ident("sales.orders")
    ('"order date"', '`order date`', 'sales.orders')
    """
    if all(_SIMPLE_IDENT.match(part) for part in column.split(".")):
        return column
    return quote + column.replace(quote, quote * 2) + quote


# --------------------------------------------------------------------------------------------
# conversion


class _Converter:
    def __init__(self, metric_set: Any, alerts: list[Any], detector: Any) -> None:
        if isinstance(metric_set, list):
            raise LookoutInputError("metric set: expected the object describe-metric-set "
                                    "prints, got a JSON list (convert one metric set at a time)")
        self.ms = _obj(metric_set, "metric set")
        self.alerts = alerts
        self.detector = detector
        self.notes: list[Note] = []
        self.env: dict[str, str] = {}

    def note(self, kind: str, setting: str, message: str) -> None:
        self.notes.append(Note(kind, setting, message))

    def unknown(self, obj: dict[str, Any], known: set[str], where: str) -> None:
        for key in obj:
            if key not in known and key not in _METADATA:
                self.note("unsupported", f"{where}{key}",
                          "unknown Lookout field, not converted; check it by hand")

    # ---- metric set -------------------------------------------------------------------------

    def run(self) -> Conversion:
        ms = self.ms
        if "MetricSetName" not in ms and "MetricList" not in ms:
            if "Alert" in ms or "AlertName" in ms:
                raise LookoutInputError("metric set: this is describe-alert output; pass it "
                                        "with --alerts and give describe-metric-set output first")
            if "AnomalyDetectorConfig" in ms:
                raise LookoutInputError("metric set: this is describe-anomaly-detector output; "
                                        "pass it with --detector")
            raise LookoutInputError("metric set: not describe-metric-set output "
                                    "(no MetricSetName or MetricList)")
        set_name = _need(ms, "MetricSetName", "")
        metrics = _need(ms, "MetricList", "", list)
        for i, m in enumerate(metrics):
            m = _obj(m, f"MetricList[{i}]")
            _need(m, "MetricName", f"MetricList[{i}].")
            agg = _need(m, "AggregationFunction", f"MetricList[{i}].")
            if agg not in ("AVG", "SUM"):
                raise LookoutInputError(f"MetricList[{i}].AggregationFunction: expected AVG or "
                                        f"SUM, got {agg!r}")
        source = _obj(_need(ms, "MetricSource", "", dict), "MetricSource")
        detector = self._detector()
        freq = ms.get("MetricSetFrequency") or detector.get("frequency")
        if not freq:
            raise LookoutInputError("MetricSetFrequency: required field missing (and no "
                                    "--detector with AnomalyDetectorConfig."
                                    "AnomalyDetectorFrequency)")
        if freq not in FREQUENCIES:
            raise LookoutInputError(f"MetricSetFrequency: expected one of "
                                    f"{', '.join(FREQUENCIES)}, got {freq!r}")
        if detector.get("frequency") and detector["frequency"] != freq:
            self.note("mapped", "AnomalyDetectorConfig.AnomalyDetectorFrequency",
                      f"{detector['frequency']} differs from MetricSetFrequency {freq}; the "
                      "metric set's frequency is used")
        offset = ms.get("Offset", 0)
        if not isinstance(offset, int) or offset < 0:
            raise LookoutInputError(f"Offset: expected a number of seconds >= 0, got {offset!r}")

        kinds = [k for k in source if k in _SOURCE_KINDS]
        self.unknown(source, set(_SOURCE_KINDS), "MetricSource.")
        if len(kinds) != 1:
            raise LookoutInputError("MetricSource: expected exactly one of "
                                    f"{', '.join(_SOURCE_KINDS)}, got "
                                    f"{', '.join(kinds) or 'none'}")
        kind = kinds[0]
        src_cfg = _obj(source[kind], f"MetricSource.{kind}")
        if kind in _UNSUPPORTED_HINTS:
            self.note("unsupported", f"MetricSource.{kind}",
                      f"cxmon has no {kind.removesuffix('Config').removesuffix('Source')} "
                      f"source; {_UNSUPPORTED_HINTS[kind]}")
            return Conversion(None, {}, self.notes)

        ts_col = _need(_obj(_need(ms, "TimestampColumn", "", dict), "TimestampColumn"),
                       "ColumnName", "TimestampColumn.")
        self._timestamp_notes(ms)
        src_key = label_name(set_name)
        raw_dims = ms.get("DimensionList") or []
        if not isinstance(raw_dims, list) or not all(isinstance(d, str) for d in raw_dims):
            raise LookoutInputError("DimensionList: expected a list of column names")
        dims: list[str] = list(dict.fromkeys(raw_dims))
        self.dim_names: dict[str, str] = {}  # Lookout dimension -> cxmon dimension
        filters = self._filters(ms.get("DimensionFilterList") or [])
        tz = self._local_zone(ms)
        if kind == "S3SourceConfig":
            self._zone_note(tz)
            source_cfg, build = self._s3(src_key, src_cfg, dims, filters)
        else:
            source_cfg, build = self._sql(src_key, kind, src_cfg, ts_col, dims, filters, tz)

        prefix = metric_name(set_name)
        thresholds = self._alert_thresholds()
        out_metrics: list[dict[str, Any]] = []
        taken: set[str] = set()
        self.names: dict[str, str] = {}
        for i, m in enumerate(metrics):
            name = metric_name(f"{prefix}_{m['MetricName']}")
            base, n = name, 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            taken.add(name)
            self.names[m["MetricName"]] = name
            entry: dict[str, Any] = {"name": name, "source": src_key}
            entry.update(build(i, m))
            entry["interval"] = format_duration(FREQUENCIES[freq])
            if offset:
                entry["delay"] = format_duration(timedelta(seconds=offset))
            entry["timestamp"] = entry.pop("timestamp", ts_col)
            labels = {"journey": set_name, "lookout_metric_set": set_name}
            if m.get("Namespace"):
                labels["namespace"] = str(m["Namespace"])
            entry["labels"] = {k: v for k, v in labels.items()
                               if k not in entry.get("dimensions", [])}
            if ms.get("MetricSetDescription"):
                entry["description"] = str(ms["MetricSetDescription"])
            if m["MetricName"] in thresholds:
                entry["min_severity"] = thresholds[m["MetricName"]]
            self.unknown(m, {"MetricName", "AggregationFunction", "Namespace"},
                         f"MetricList[{i}].")
            out_metrics.append(entry)

        doc: dict[str, Any] = {"sources": {src_key: source_cfg}, "metrics": out_metrics}
        alerting = self._alerting()
        if alerting:
            doc["alerting"] = alerting
        self.unknown(ms, {"MetricSetName", "MetricSetDescription", "MetricList", "Offset",
                          "TimestampColumn", "DimensionList", "MetricSetFrequency", "Timezone",
                          "MetricSource", "DimensionFilterList"}, "")
        self.note("mapped", "anomaly detection model",
                  "Lookout's model is not portable: cxmon uses its default detector "
                  "(robust_seasonal); `cxmon backfill` some history, then `cxmon backtest` "
                  "to check the alert volume before going live")
        return Conversion(doc, dict(self.env), self.notes)

    def _timestamp_notes(self, ms: dict[str, Any]) -> None:
        fmt = (ms.get("TimestampColumn") or {}).get("ColumnFormat")
        if fmt:
            self.note("manual", "TimestampColumn.ColumnFormat",
                      f"{fmt!r} is not configured in cxmon: timestamps are parsed as ISO 8601 "
                      "text, datetimes or Unix seconds/milliseconds; check with `cxmon validate "
                      "--poll` that they are read")
        self.unknown(ms.get("TimestampColumn") or {}, {"ColumnName", "ColumnFormat"},
                     "TimestampColumn.")

    def _local_zone(self, ms: dict[str, Any]) -> str | None:
        """The metric set's ``Timezone`` when it is not UTC (None for UTC or none)."""
        tz = ms.get("Timezone")
        if not tz or tz in ("UTC", "Etc/UTC", "GMT", "Z"):
            return None
        return str(tz)

    def _zone_note(self, tz: str | None) -> None:
        """Where the query cannot convert local times: say what to do instead."""
        if tz:
            self.note("manual", "Timezone",
                      f"cxmon reads timestamps without a zone as UTC, not {tz}: store them with "
                      "their offset, or convert them in the source (PostgreSQL and Redshift "
                      f"sources get ts AT TIME ZONE '{tz}' in their query)")

    def _filters(self, raw: Any) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if not isinstance(raw, list):
            raise LookoutInputError("DimensionFilterList: expected a list")
        for i, f in enumerate(raw):
            f = _obj(f, f"DimensionFilterList[{i}]")
            name = _need(f, "Name", f"DimensionFilterList[{i}].")
            values = []
            for j, item in enumerate(_need(f, "FilterList", f"DimensionFilterList[{i}].", list)):
                item = _obj(item, f"DimensionFilterList[{i}].FilterList[{j}]")
                op = item.get("FilterOperation", "EQUALS")
                if op != "EQUALS":
                    raise LookoutInputError(f"DimensionFilterList[{i}].FilterList[{j}]."
                                            f"FilterOperation: expected EQUALS, got {op!r}")
                values.append(str(_need(item, "DimensionValue",
                                        f"DimensionFilterList[{i}].FilterList[{j}].")))
            out[name] = values
        return out

    # ---- sources ------------------------------------------------------------------------------

    def _s3(self, key: str, cfg: dict[str, Any], dims: list[str],
            filters: dict[str, list[str]]) -> tuple[dict[str, Any], Any]:
        where = "MetricSource.S3SourceConfig."
        paths = cfg.get("TemplatedPathList") or []
        historical = cfg.get("HistoricalDataPathList") or []
        for field_, value in (("TemplatedPathList", paths),
                              ("HistoricalDataPathList", historical)):
            if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                raise LookoutInputError(f"{where}{field_}: expected a list of s3:// paths")
        if not paths and not historical:
            raise LookoutInputError(f"{where}TemplatedPathList: required field missing or empty")
        first = str((paths or historical)[0])
        bucket, _, prefix = first.removeprefix("s3://").partition("/")
        glob_path = _PLACEHOLDER.sub("*", prefix).rstrip("/")
        # Lookout's templated path names a folder per interval; the files are inside it
        last = prefix.rstrip("/").rsplit("/", 1)[-1]
        if not prefix or _PLACEHOLDER.search(last) or "." not in last:
            glob_path = f"{glob_path}/*" if glob_path else "*"
        var = env_name("LOOKOUT", key, "DATA_DIR")
        self.env[var] = f"a local copy of s3://{bucket}/ (e.g. kept by `aws s3 sync`)"
        self.note("manual", f"{where}TemplatedPathList",
                  f"cxmon reads local files, not S3: keep s3://{bucket}/ synced or mounted "
                  f"locally (`aws s3 sync s3://{bucket}/ \"${var}\"` from cron, or mountpoint-s3) "
                  f"and set {var}; {first} became the glob {glob_path!r} under it")
        for extra in paths[1:]:
            self.note("unsupported", f"{where}TemplatedPathList",
                      f"only one path per source: {extra} is not read (add a second files "
                      "source and copy the metrics to it, or sync both into one folder)")
        if paths and historical:
            self.note("manual", f"{where}HistoricalDataPathList",
                      f"{', '.join(map(str, historical))}: load history with "
                      "`cxmon backfill -c FILE --metric M --start ... --end ...` once those "
                      "files are in the synced folder (or set a metric's history:)")
        if cfg.get("RoleArn"):
            self.note("manual", f"{where}RoleArn",
                      "the IAM role is for Lookout; the sync job needs s3:GetObject/ListBucket")
        source: dict[str, Any] = {"type": "files", "path": glob_path, "base_dir": f"${{{var}}}"}
        fmt = _obj(cfg.get("FileFormatDescriptor") or {}, f"{where}FileFormatDescriptor")
        self.unknown(cfg, {"TemplatedPathList", "HistoricalDataPathList", "RoleArn",
                           "FileFormatDescriptor"}, where)
        fd = where + "FileFormatDescriptor."
        if "CsvFormatDescriptor" in fmt:
            csv = _obj(fmt["CsvFormatDescriptor"], fd + "CsvFormatDescriptor")
            source["format"] = "csv"
            sep = csv.get("Delimiter")
            if sep and sep != ",":
                source["csv_separator"] = sep
            cd = fd + "CsvFormatDescriptor."
            if csv.get("ContainsHeader") is False:
                header = csv.get("HeaderList") or []
                self.note("manual", cd + "ContainsHeader",
                          "cxmon reads column names from the first line of a CSV file: add "
                          f"the header line ({','.join(map(str, header)) or 'HeaderList'}) to "
                          "the files, e.g. in the sync job")
            elif csv.get("HeaderList"):
                self.note("mapped", cd + "HeaderList",
                          "the files' own header line names the columns (HeaderList unused)")
            if csv.get("QuoteSymbol") not in (None, '"'):
                self.note("unsupported", cd + "QuoteSymbol",
                          f"only \" quotes are read; {csv['QuoteSymbol']!r} is not")
            self._charset(csv, cd)
            self._compression(csv, cd)
            self.unknown(csv, {"FileCompression", "Charset", "ContainsHeader", "Delimiter",
                               "HeaderList", "QuoteSymbol"}, cd)
        elif "JsonFormatDescriptor" in fmt:
            js = _obj(fmt["JsonFormatDescriptor"], fd + "JsonFormatDescriptor")
            source["format"] = "jsonl"
            self.note("mapped", fd + "JsonFormatDescriptor",
                      "read as JSON lines (one object per line, as Lookout reads them)")
            self._charset(js, fd + "JsonFormatDescriptor.")
            self._compression(js, fd + "JsonFormatDescriptor.")
            self.unknown(js, {"FileCompression", "Charset"}, fd + "JsonFormatDescriptor.")
        else:
            self.note("mapped", fd.rstrip("."), "no format given: picked by file extension")
        self.unknown(fmt, {"CsvFormatDescriptor", "JsonFormatDescriptor"}, fd)

        usable = []
        for d in dims:
            if re.match(LABEL_NAME, d):
                usable.append(d)
                self.dim_names[d] = d
            else:
                self.note("unsupported", "DimensionList",
                          f"{d!r} is not a valid cxmon dimension name ([a-zA-Z_][a-zA-Z0-9_]*) "
                          "and a files source cannot rename columns: it is left out; rename "
                          "the column in the files to use it")
        for name, values in filters.items():
            self.note("unsupported", "DimensionFilterList",
                      f"a files source reads every row: the filter {name} in "
                      f"{values} is not applied; filter the files in the sync job, or load "
                      "them into a database and use a sql source (the whole metric then "
                      "counts only those rows)")

        def build(i: int, m: dict[str, Any]) -> dict[str, Any]:
            col = m["MetricName"]
            out: dict[str, Any] = {"dimensions": list(usable)}
            out["value"] = _value(self, i, col, m["AggregationFunction"])
            return out

        return source, build

    def _charset(self, fmt: dict[str, Any], where: str) -> None:
        cs = fmt.get("Charset")
        if cs and cs.replace("-", "").upper() not in ("UTF8", "ASCII", "USASCII"):
            self.note("unsupported", where + "Charset",
                      f"files are read as UTF-8; convert {cs} files (e.g. iconv in the sync job)")

    def _compression(self, fmt: dict[str, Any], where: str) -> None:
        comp = fmt.get("FileCompression")
        if comp and comp != "NONE":
            self.note("mapped", where + "FileCompression",
                      f"{comp}: read when the file names end in .gz (decompressed by extension)")

    def _sql(self, key: str, kind: str, cfg: dict[str, Any], ts_col: str, dims: list[str],
             filters: dict[str, list[str]], tz: str | None) -> tuple[dict[str, Any], Any]:
        where = f"MetricSource.{kind}."
        table = _need(cfg, "TableName", where)
        var = env_name("LOOKOUT", key, "DB_URL")
        host, port, db = cfg.get("DatabaseHost"), cfg.get("DatabasePort"), cfg.get("DatabaseName")
        quote = '"'
        if kind == "RedshiftSourceConfig":
            dialect = "postgresql+psycopg"
            engine = "Redshift (PostgreSQL protocol)"
        elif port == 3306:
            dialect, engine = "mysql+pymysql", "MySQL/MariaDB"
            quote = "`"
        else:
            dialect, engine = "postgresql+psycopg", "PostgreSQL (the engine is not in the " \
                                                    "metric set: use mysql+pymysql:// for MySQL)"
        example = f"{dialect}://USER:PASSWORD@{host or 'HOST'}:{port or 'PORT'}/{db or 'DB'}"
        self.env[var] = f"SQLAlchemy URL of the {engine} database, e.g. {example}"
        ident = cfg.get("DBInstanceIdentifier") or cfg.get("ClusterIdentifier") or host
        self.note("manual", where + "SecretManagerArn",
                  f"cxmon does not read AWS Secrets Manager: put the credentials of {ident} "
                  f"into {var} (e.g. exported from the secret at start-up), never into the "
                  "file")
        if cfg.get("VpcConfiguration"):
            self.note("manual", where + "VpcConfiguration",
                      "cxmon connects directly: run it where the database is reachable "
                      "(same VPC, security group allowing its address)")
        if cfg.get("RoleArn"):
            self.note("unsupported", where + "RoleArn",
                      "the IAM role was for Lookout's access; cxmon logs in with the URL's "
                      "user (give it SELECT on the table)")
        self.unknown(cfg, {"DBInstanceIdentifier", "ClusterIdentifier", "DatabaseHost",
                           "DatabasePort", "SecretManagerArn", "DatabaseName", "TableName",
                           "RoleArn", "VpcConfiguration"}, where)
        source = {"type": "sql", "url": f"${{{var}}}"}
        selected = []  # (select expression, cxmon dimension name)
        dim_names: list[str] = []
        for d in dims:
            name = d if re.match(LABEL_NAME, d) else label_name(d)
            while name in dim_names or (name in dims and name != d):
                name += "_"
            self.dim_names[d] = name
            if name != d:
                self.note("mapped", "DimensionList",
                          f"{d!r} is selected as {name} (cxmon dimension names are "
                          "[a-zA-Z_][a-zA-Z0-9_]*)")
            selected.append(_ident(d, quote) if name == d else f"{_ident(d, quote)} AS {name}")
            dim_names.append(name)
        ts_expr = _ident(ts_col, quote)
        params: dict[str, str] = {}
        if tz and quote == '"' and _known_zone(tz):
            # a local wall-clock column read as UTC would shift every bucket; PostgreSQL and
            # Redshift turn it into an absolute time (the zone is a bound parameter)
            ts_expr = f"({ts_expr} AT TIME ZONE :lookout_timezone)"
            params["lookout_timezone"] = tz
            self.note("mapped", "Timezone",
                      f"{tz}: the query reads {ts_col} AT TIME ZONE '{tz}' (a column without "
                      "a zone holding local times), so buckets are in UTC")
        else:
            self._zone_note(tz)
        conds = [f"{ts_expr} >= :since", f"{ts_expr} < :until"]
        for name, values in filters.items():
            binds = []
            for j, v in enumerate(values):
                p = f"{label_name(name)}_{j}"
                params[p] = v
                binds.append(f":{p}")
            conds.append(f"{_ident(name, quote)} IN ({', '.join(binds)})")
        if filters:
            self.note("mapped", "DimensionFilterList",
                      "became a WHERE ... IN (...) of the query, values as bound params")

        def build(i: int, m: dict[str, Any]) -> dict[str, Any]:
            col = m["MetricName"]
            ts_sel = (ts_expr if ts_expr == _ident(ts_col, quote)
                      else f"{ts_expr} AS {_ident(ts_col, quote)}")
            cols = [ts_sel, *selected, _ident(col, quote)]
            value = _value(self, i, col, m["AggregationFunction"])
            query = (f"SELECT {', '.join(cols)}\nFROM {_ident(table, quote)}\n"
                     f"WHERE {' AND '.join(conds)}")
            out: dict[str, Any] = {"query": query}
            if params:
                out["params"] = dict(params)
            out["dimensions"] = list(dim_names)
            out["value"] = value
            return out

        return source, build

    # ---- detector and alerts ----------------------------------------------------------------

    def _detector(self) -> dict[str, Any]:
        if self.detector is None:
            return {}
        det = _obj(self.detector, "detector")
        if "AnomalyDetectorConfig" not in det and "AnomalyDetectorName" not in det:
            raise LookoutInputError("detector: not describe-anomaly-detector output "
                                    "(no AnomalyDetectorName or AnomalyDetectorConfig)")
        conf = _obj(det.get("AnomalyDetectorConfig") or {}, "detector.AnomalyDetectorConfig")
        out = {"frequency": conf.get("AnomalyDetectorFrequency")}
        self.unknown(conf, {"AnomalyDetectorFrequency"}, "AnomalyDetectorConfig.")
        if det.get("KmsKeyArn"):
            self.note("unsupported", "KmsKeyArn",
                      "cxmon's store is not encrypted with KMS: use an encrypted volume or "
                      "database for the store")
        self.unknown(det, {"AnomalyDetectorConfig", "KmsKeyArn"}, "detector.")
        return out

    def _alert_list(self) -> list[dict[str, Any]]:
        out = []
        for i, raw in enumerate(self.alerts):
            alert = _obj(raw, f"alerts[{i}]")
            alert = _obj(alert["Alert"], f"alerts[{i}].Alert") if "Alert" in alert else alert
            where = f"alerts[{i}]."
            _need(alert, "AlertName", where)
            threshold = alert.get("AlertSensitivityThreshold")
            if threshold is None and alert.get("AlertType") != "SNS" and "Action" not in alert:
                raise LookoutInputError(f"alerts[{i}]: not describe-alert output "
                                        "(no AlertSensitivityThreshold or Action)")
            if threshold is not None and (not isinstance(threshold, int | float)
                                          or isinstance(threshold, bool)
                                          or not 0 <= threshold <= 100):
                raise LookoutInputError(f"{where}AlertSensitivityThreshold: expected a number "
                                        f"from 0 to 100, got {threshold!r}")
            _need(alert, "Action", where, dict)
            out.append(alert)
        return out

    def _alert_thresholds(self) -> dict[str, float]:
        """Per Lookout metric name: the lowest threshold of the alerts that cover it, so the
        metric's min_severity lets through every point some route wants."""
        self._alerts = self._alert_list()
        names = [m["MetricName"] for m in self.ms["MetricList"]]
        out: dict[str, float] = {}
        for alert in self._alerts:
            threshold = alert.get("AlertSensitivityThreshold")
            if threshold is None:
                continue
            listed = ((alert.get("AlertFilters") or {}).get("MetricList") or names)
            for n in names:
                if n in listed:
                    out[n] = min(out.get(n, 100), float(threshold))
        return out

    def _alerting(self) -> dict[str, Any] | None:
        if not self._alerts:
            return None
        receivers: list[dict[str, Any]] = [{"name": "console", "console": {"format": "rich"}}]
        routes: list[dict[str, Any]] = []
        for i, alert in enumerate(self._alerts):
            where = f"alerts[{i}]."
            name = alert["AlertName"]
            rec = label_name(name)
            while rec in {r["name"] for r in receivers}:
                rec += "_"
            var = env_name("LOOKOUT_ALERT", name, "WEBHOOK_URL")
            action = alert["Action"]
            if "SNSConfiguration" in action:
                sns = _obj(action["SNSConfiguration"], where + "Action.SNSConfiguration")
                topic = sns.get("SnsTopicArn", "the topic")
                self.env[var] = f"an HTTPS endpoint that forwards to SNS topic {topic}"
                self.note("manual", where + "Action.SNSConfiguration",
                          f"cxmon posts JSON to a webhook, it does not publish to SNS: put an "
                          f"endpoint in front of {topic} (API Gateway with an SNS integration, "
                          f"or a Lambda function URL that publishes) and set {var}; or "
                          "replace the receiver with slack/pagerduty")
                if sns.get("SnsFormat"):
                    self.note("unsupported", where + "Action.SNSConfiguration.SnsFormat",
                              f"{sns['SnsFormat']}: cxmon sends its own JSON payload")
                if sns.get("RoleArn"):
                    self.note("manual", where + "Action.SNSConfiguration.RoleArn",
                              "give the forwarding endpoint sns:Publish instead")
            elif "LambdaConfiguration" in action:
                lam = _obj(action["LambdaConfiguration"], where + "Action.LambdaConfiguration")
                fn = lam.get("LambdaArn", "the function")
                self.env[var] = f"a function URL (or API Gateway URL) of {fn}"
                self.note("manual", where + "Action.LambdaConfiguration",
                          f"cxmon cannot invoke Lambda directly: give {fn} a function URL "
                          f"(or an API Gateway route) and set {var}; the event is cxmon's "
                          "webhook JSON, not Lookout's, so adapt the handler")
                if lam.get("RoleArn"):
                    self.note("unsupported", where + "Action.LambdaConfiguration.RoleArn",
                              "not needed: secure the URL with the webhook secret (HMAC "
                              "signature) instead")
            else:
                raise LookoutInputError(f"{where}Action: expected SNSConfiguration or "
                                        "LambdaConfiguration")
            receivers.append({"name": rec, "webhook": {"url": f"${{{var}}}"}})
            route: dict[str, Any] = {"receiver": rec, "continue": True}
            matchers = []
            filters = _obj(alert.get("AlertFilters") or {}, where + "AlertFilters")
            metric_list = filters.get("MetricList") or []
            if metric_list:
                mapped = [self.names[n] for n in metric_list if n in self.names]
                missing = [n for n in metric_list if n not in self.names]
                if missing:
                    self.note("unsupported", where + "AlertFilters.MetricList",
                              f"{', '.join(missing)} not in this metric set: left out")
                matchers.append(f'metric=~"{"|".join(mapped) or "__none__"}"')
            for j, f in enumerate(filters.get("DimensionFilterList") or []):
                f = _obj(f, f"{where}AlertFilters.DimensionFilterList[{j}]")
                dim = f.get("DimensionName") or f.get("Name")
                vals = f.get("DimensionValueList") or [
                    x.get("DimensionValue") for x in f.get("FilterList") or []]
                if not (dim and vals):
                    continue
                if dim not in self.dim_names:
                    self.note("unsupported", f"{where}AlertFilters.DimensionFilterList[{j}]",
                              f"{dim!r} is not a dimension of the converted metrics: the "
                              "filter is left out, so this alert gets every dimension value")
                    continue
                alt = "|".join(re.escape(str(v)).replace("\\", "\\\\") for v in vals)
                matchers.append(f'{self.dim_names[dim]}=~"{alt}"')
            self.unknown(filters, {"MetricList", "DimensionFilterList"},
                         where + "AlertFilters.")
            if matchers:
                route["matchers"] = matchers
            threshold = alert.get("AlertSensitivityThreshold")
            if threshold is not None:
                route["min_severity"] = float(threshold)
                self.note("mapped", where + "AlertSensitivityThreshold",
                          f"{threshold} -> min_severity {threshold} (route and metrics). "
                          "Both run 0-100, but Lookout's score is relative and uncalibrated "
                          "while cxmon's is a log scale of rarity (25 = a 1-in-10,000 point, "
                          "50 = 1-in-a-million, 100 = 1-in-10^10): check the alert volume "
                          "with `cxmon backtest` and adjust")
            if alert.get("AlertDescription"):
                self.note("mapped", where + "AlertDescription",
                          "kept only in this report (cxmon receivers have no description)")
            self.unknown(alert, {"AlertName", "AlertDescription", "AlertSensitivityThreshold",
                                 "AlertType", "Action", "AlertFilters"}, where)
            routes.append(route)
        return {"route": {"receiver": "console", "routes": routes}, "receivers": receivers}


def _value(conv: _Converter, i: int, col: str, aggregation: str) -> dict[str, str]:
    """A Lookout metric's ``value:``: SUM sums the rows of a bucket, AVG is their mean
    (``{mean: col}``: each row counts once, and roll-ups average all their rows, not their
    leaves' averages)."""
    if aggregation == "AVG":
        conv.note("mapped", f"MetricList[{i}].AggregationFunction",
                  f"AVG of {col}: value {{mean: {col}}}, the mean over the rows of each "
                  "bucket at every roll-up level")
        return {"mean": col}
    return {"sum": col}


def _as_alert_list(alerts: Any) -> list[Any]:
    if alerts is None:
        return []
    if isinstance(alerts, dict) and isinstance(alerts.get("AlertSummaryList"), list):
        raise LookoutInputError("alerts: list-alerts output has no actions; pass the output "
                                "of describe-alert for each alert (a JSON list is fine)")
    return alerts if isinstance(alerts, list) else [alerts]


def convert(metric_set: Any, alerts: Any = None, detector: Any = None) -> Conversion:
    """Convert parsed AWS CLI JSON; raises :class:`LookoutInputError` for bad input."""
    conv = _Converter(metric_set, _as_alert_list(alerts), detector).run()
    if conv.config is not None:
        check(conv)
    return conv


def stand_ins(env: dict[str, str]) -> dict[str, str]:
    """A value for each referenced variable that validation accepts (URLs where needed)."""
    out = {}
    for var in env:
        if var.endswith("DB_URL"):
            out[var] = "sqlite://"
        elif var.endswith("WEBHOOK_URL"):
            out[var] = "https://hooks.example.invalid/lookout"
        else:
            out[var] = "/tmp/lookout-data"
    return out


def check(conv: Conversion) -> None:
    """Validate the document through cxmon's own config loader (``cxmon validate``'s rules)
    with stand-in values for its variables: a failure is a bug of the converter."""
    try:
        parse_config(render_yaml(conv), stand_ins(conv.env), source="converted config")
    except ConfigError as exc:  # pragma: no cover - the converter's own bug
        raise RuntimeError(f"the converted config does not validate: {exc}") from exc


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (SQL queries) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_yaml(conv: Conversion) -> str:
    """The config as YAML, headed by a comment listing the variables it needs."""
    assert conv.config is not None
    head = ["# Converted from Amazon Lookout for Metrics by `cxmon import lookout`.",
            "# Set these environment variables, then run `cxmon validate -c <this file>`:"]
    head += [f"#   {var}: {what}" for var, what in conv.env.items()]
    body = yaml.dump(conv.config, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     width=100)
    return "\n".join(head) + "\n" + body
