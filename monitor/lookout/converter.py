"""The conversion itself: checks the metric set, maps its metrics and assembles the config
document from the source and alert mappings.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from monitor.durations import format_duration
from monitor.lookout.alerts import _AlertsMixin, _as_alert_list
from monitor.lookout.model import Conversion, LookoutInputError, Note, _need, _obj
from monitor.lookout.names import label_name, metric_name
from monitor.lookout.render import check, fill_history
from monitor.lookout.sources import _SOURCE_KINDS, _UNSUPPORTED_HINTS, _SourcesMixin

#: Lookout frequency -> cxmon interval.
FREQUENCIES = {"P1D": timedelta(days=1), "PT1H": timedelta(hours=1),
               "PT10M": timedelta(minutes=10), "PT5M": timedelta(minutes=5)}


#: Detector states in which Lookout was not detecting: the converted config would start to.
_NOT_RUNNING = {"DEACTIVATED", "DEACTIVATING", "INACTIVE", "FAILED", "DELETING",
                "BACK_TEST_ACTIVATING", "BACK_TEST_ACTIVE", "BACK_TEST_COMPLETE"}


def _date_order(fmt: str) -> str | None:
    """``dmy`` / ``mdy`` for a Java date pattern with the year last (Lookout's
    ``ColumnFormat``), else None.

    >>> _date_order("dd/MM/yyyy HH:mm"), _date_order("MM-dd-yyyy"), _date_order("yyyy-MM-dd")
    ('dmy', 'mdy', None)
    """
    import re

    found = re.match(r"\s*(d{1,2}|M{1,2})[/.-](d{1,2}|M{1,2})[/.-]y{4}", fmt)
    if not found or found[1][0] == found[2][0]:
        return None
    return "dmy" if found[1][0] == "d" else "mdy"


class _Converter(_SourcesMixin, _AlertsMixin):
    def __init__(self, metric_sets: list[Any], alerts: list[Any], detector: Any) -> None:
        self.sets = metric_sets
        self.alerts = alerts
        self.detector = detector
        self.notes: list[Note] = []
        self.env: dict[str, str] = {}

    # ---- metric set -------------------------------------------------------------------------

    def run(self) -> Conversion:
        """Every metric set into one document: a detector's sets share its alerts, whose
        filters name metrics of any of them."""
        detector = self._detector()
        self._alerts = self._alert_list()
        self.names: dict[str, list[str]] = {}  # Lookout metric -> cxmon metrics (any set)
        self.dim_names: dict[str, str] = {}  # Lookout dimension -> cxmon dimension
        sources: dict[str, Any] = {}
        metrics: list[dict[str, Any]] = []
        many = len(self.sets) > 1
        for idx, raw in enumerate(self.sets):
            where = f"metric set {idx + 1}" if many else "metric set"
            ms = self.ms = _obj(raw, where)
            name = ms.get("MetricSetName")
            self.set_where = f"{name or where}: " if many else ""
            try:
                converted = self._metric_set(ms, detector, set(sources),
                                             {m["name"] for m in metrics})
            except LookoutInputError as exc:
                if not many:
                    raise
                raise LookoutInputError(f"{where} ({name or 'no name'}): {exc}") from None
            if converted is not None:
                key, source_cfg, entries = converted
                sources[key] = source_cfg
                metrics.extend(entries)
        self.set_where = ""
        if not metrics:
            return Conversion(None, {}, self.notes)
        if detector.get("paused"):  # Lookout was not detecting: neither does cxmon, yet
            for entry in metrics:
                entry["enabled"] = False
        doc: dict[str, Any] = {"sources": sources, "metrics": metrics}
        alerting = self._alerting()
        if alerting:
            doc["alerting"] = alerting
        self.note("mapped", "anomaly detection model",
                  "Lookout's model is not portable: cxmon uses its default detector "
                  "(robust_seasonal); `cxmon backfill` some history, then `cxmon backtest` "
                  "to check the alert volume before going live")
        return Conversion(doc, dict(self.env), self.notes, dict(self.names),
                          dict(self.dim_names))

    def _metric_set(self, ms: dict[str, Any], detector: dict[str, Any], sources: set[str],
                    taken: set[str]) -> tuple[str, dict[str, Any], list[dict[str, Any]]] | None:
        """One metric set's source and metrics (None for a source cxmon cannot read);
        ``sources`` and ``taken`` are the source keys and metric names used so far."""
        if "MetricSetName" not in ms and "MetricList" not in ms:
            if "Alert" in ms or "AlertName" in ms:
                raise LookoutInputError("metric set: this is describe-alert output; pass it "
                                        "with --alerts and give describe-metric-set output first")
            if "AnomalyDetectorConfig" in ms:
                raise LookoutInputError("metric set: this is describe-anomaly-detector output; "
                                        "pass it with --detector")
            if "MetricSetSummaryList" in ms:
                raise LookoutInputError("metric set: this is list-metric-sets output, which "
                                        "has no metrics or source; run `aws lookoutmetrics "
                                        "describe-metric-set --metric-set-arn ARN` for each "
                                        "MetricSetArn and pass those files")
            if "AnomalyGroupSummaryList" in ms:
                raise LookoutInputError("metric set: this is list-anomaly-group-summaries "
                                        "output; pass it with --anomaly-groups")
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
            return None

        if ms.get("TimestampColumn"):
            ts_col = _need(_obj(ms["TimestampColumn"], "TimestampColumn"), "ColumnName",
                           "TimestampColumn.")
        else:
            # optional in Lookout's API (it then used the source's own time column)
            ts_col = "timestamp"
            self.note("manual", "TimestampColumn",
                      "not in the export: the metrics read the column `timestamp`; set each "
                      "metric's timestamp: to the real time column")
        order = self._timestamp_notes(ms, files=kind == "S3SourceConfig")
        src_key = base_key = label_name(set_name)
        n = 2
        while src_key in sources:  # the same name in two detectors
            src_key, n = f"{base_key}_{n}", n + 1
        raw_dims = ms.get("DimensionList") or []
        if not isinstance(raw_dims, list) or not all(isinstance(d, str) for d in raw_dims):
            raise LookoutInputError("DimensionList: expected a list of column names")
        dims: list[str] = list(dict.fromkeys(raw_dims))
        filters = self._filters(ms.get("DimensionFilterList") or [])
        tz = self._local_zone(ms)
        if kind == "S3SourceConfig":
            source_cfg, build = self._s3(src_key, src_cfg, dims, filters, tz)
            if order:
                source_cfg["date_order"] = order
        else:
            source_cfg, build = self._sql(src_key, kind, src_cfg, ts_col, dims, filters, tz)

        prefix = metric_name(set_name)
        thresholds = self._alert_thresholds()
        out_metrics: list[dict[str, Any]] = []
        for i, m in enumerate(metrics):
            name = metric_name(f"{prefix}_{m['MetricName']}")
            base, n = name, 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            taken.add(name)
            self.names.setdefault(m["MetricName"], []).append(name)
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

        self.unknown(ms, {"MetricSetName", "MetricSetDescription", "MetricList", "Offset",
                          "TimestampColumn", "DimensionList", "MetricSetFrequency", "Timezone",
                          "MetricSource", "DimensionFilterList"}, "")
        return src_key, source_cfg, out_metrics

    def _timestamp_notes(self, ms: dict[str, Any], *, files: bool) -> str | None:
        """Notes on the timestamp format; the files source's ``date_order`` when the format
        writes dates day or month first with the year last (``dd/MM/yyyy``)."""
        fmt = (ms.get("TimestampColumn") or {}).get("ColumnFormat")
        order = _date_order(fmt) if files and isinstance(fmt, str) else None
        if order:
            self.note("mapped", "TimestampColumn.ColumnFormat",
                      f"{fmt!r}: the files source reads such dates "
                      f"{'day' if order == 'dmy' else 'month'} first (date_order: {order})")
        elif fmt:
            self.note("manual", "TimestampColumn.ColumnFormat",
                      f"{fmt!r} is not configured in cxmon: timestamps are parsed as ISO 8601 "
                      "text, datetimes or Unix seconds/milliseconds; check with `cxmon validate "
                      "--poll` that they are read")
        self.unknown(ms.get("TimestampColumn") or {}, {"ColumnName", "ColumnFormat"},
                     "TimestampColumn.")
        return order

    def _local_zone(self, ms: dict[str, Any]) -> str | None:
        """The metric set's ``Timezone`` when it is not UTC (None for UTC or none)."""
        tz = ms.get("Timezone")
        if not tz or tz in ("UTC", "Etc/UTC", "GMT", "Z"):
            return None
        return str(tz)

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

    # ---- detector and alerts ----------------------------------------------------------------

    def _detector(self) -> dict[str, Any]:
        if self.detector is None:
            return {}
        det = _obj(self.detector, "detector")
        if "AnomalyDetectorConfig" not in det and "AnomalyDetectorName" not in det:
            raise LookoutInputError("detector: not describe-anomaly-detector output "
                                    "(no AnomalyDetectorName or AnomalyDetectorConfig)")
        conf = _obj(det.get("AnomalyDetectorConfig") or {}, "detector.AnomalyDetectorConfig")
        out: dict[str, Any] = {"frequency": conf.get("AnomalyDetectorFrequency")}
        self.unknown(conf, {"AnomalyDetectorFrequency"}, "AnomalyDetectorConfig.")
        if det.get("KmsKeyArn"):
            self.note("unsupported", "KmsKeyArn",
                      "cxmon's store is not encrypted with KMS: use an encrypted volume or "
                      "database for the store")
        status = det.get("Status")
        if status in _NOT_RUNNING:
            why = f" ({det.get('FailureType') or 'failure'}: {det['FailureReason']})" \
                if det.get("FailureReason") else ""
            out["paused"] = True
            self.note("manual", "detector.Status",
                      f"{status}{why}: the detector was not running in Lookout, so its metrics "
                      "are converted paused (enabled: false: `cxmon run` neither polls nor "
                      "alerts on them; `cxmon backtest` still replays them): set enabled: true "
                      "on each metric you want live")
        self.unknown(det, {"AnomalyDetectorConfig", "KmsKeyArn", "FailureType"}, "detector.")
        return out


def convert(metric_set: Any, alerts: Any = None, detector: Any = None) -> Conversion:
    """Convert parsed AWS CLI JSON; raises :class:`LookoutInputError` for bad input.

    ``metric_set`` is one describe-metric-set output or a list of them (a detector's sets:
    they become one config, so the detector's alerts are converted once, across all of them).
    """
    sets = metric_set if isinstance(metric_set, list) else [metric_set]
    if not sets:
        raise LookoutInputError("metric set: an empty list")
    conv = _Converter(sets, _as_alert_list(alerts), detector).run()
    if conv.config is not None:
        fill_history(conv)
        check(conv)
    return conv

