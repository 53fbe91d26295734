"""Lookout's ``MetricSource`` as a cxmon source: S3 becomes a ``files`` source over the
bucket (or a local copy), RDS and Redshift a ``sql`` source with one query per metric; the
rest is reported.

Each mapping returns the source's config and a ``build(i, metric)`` that gives the
source-specific part of each metric's entry (query, dimensions, value).
"""

from __future__ import annotations

import re
from typing import Any

from monitor.config import LABEL_NAME
from monitor.lookout.model import LookoutInputError, _need, _obj, _State
from monitor.lookout.names import _ident, _known_zone, env_name, label_name

_PLACEHOLDER = re.compile(r"\{\{[^}]*\}\}")
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



class _SourcesMixin(_State):
    """The ``MetricSource`` mappings of :class:`monitor.lookout.converter._Converter`."""

    def _zone_note(self, tz: str | None) -> None:
        """Where the query cannot convert local times: say what to do instead."""
        if tz:
            self.note("manual", "Timezone",
                      f"cxmon reads timestamps without a zone as UTC, not {tz}: store them with "
                      "their offset, or convert them in the source (PostgreSQL and Redshift "
                      f"sources get ts AT TIME ZONE '{tz}' in their query; files and http_json "
                      "sources take timezone: with an IANA name this machine knows)")

    def _s3(self, key: str, cfg: dict[str, Any], dims: list[str],
            filters: dict[str, list[str]], tz: str | None = None,
            ) -> tuple[dict[str, Any], Any]:
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
        self.env[var] = (f"optional: a local copy of s3://{bucket}/ (e.g. kept by `aws s3 "
                         "sync`); unset, the bucket is read directly")
        self.note("manual", f"{where}TemplatedPathList",
                  f"cxmon reads s3://{bucket}/ directly (install cxmon[s3]; credentials from "
                  "the AWS chain: AWS_* variables, AWS_PROFILE or an instance or pod role); "
                  f"{first} became the glob {glob_path!r} under it. To read a synced copy "
                  f"instead (`aws s3 sync s3://{bucket}/ \"${var}\"` from cron, or "
                  f"mountpoint-s3), set {var} to its folder")
        for extra in paths[1:]:
            self.note("unsupported", f"{where}TemplatedPathList",
                      f"only one path per source: {extra} is not read (add a second files "
                      "source and copy the metrics to it, or sync both into one folder)")
        if paths and historical:
            self.note("manual", f"{where}HistoricalDataPathList",
                      f"{', '.join(map(str, historical))}: load history with "
                      "`cxmon backfill -c FILE --metric M --start ... --end ...` once those "
                      "files are under the same glob (history: covers only the warm-up)")
        if cfg.get("RoleArn"):
            self.note("manual", f"{where}RoleArn",
                      "the IAM role is for Lookout; cxmon's credentials (or the sync job's) "
                      "need s3:GetObject and s3:ListBucket")
        source: dict[str, Any] = {"type": "files", "path": glob_path,
                                  "base_dir": f"${{{var}:-s3://{bucket}}}"}
        if tz and _known_zone(tz):
            # Lookout reads a timestamp without a zone in the metric set's Timezone: so does
            # the files source (an hour or two off in every bucket otherwise)
            source["timezone"] = tz
            self.note("mapped", "Timezone",
                      f"{tz}: the files source reads timestamps without a zone as {tz} "
                      f"(timezone: {tz}); ones with an offset keep it. At a clock change the "
                      "repeated hour is taken at its first occurrence and the skipped hour "
                      "shifted forward")
        else:
            self._zone_note(tz)  # a zone this machine does not know: say what to do
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


def _value(conv: _State, i: int, col: str, aggregation: str) -> dict[str, str]:
    """A Lookout metric's ``value:``: SUM sums the rows of a bucket, AVG is their mean
    (``{mean: col}``: each row counts once, and roll-ups average all their rows, not their
    leaves' averages)."""
    if aggregation == "AVG":
        conv.note("mapped", f"MetricList[{i}].AggregationFunction",
                  f"AVG of {col}: value {{mean: {col}}}, the mean over the rows of each "
                  "bucket at every roll-up level")
        return {"mean": col}
    return {"sum": col}

