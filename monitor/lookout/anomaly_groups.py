"""Lookout's past anomaly groups as a ``cxmon backtest --incidents`` CSV.

Lookout's history of what it flagged (``list-anomaly-group-summaries``, or ``get-anomaly-group``
for one group with its dimension contributions) cannot be loaded into cxmon's store: the
anomalies came from another model. What it is good for is a yardstick: replaying the same
period with ``cxmon backtest --incidents`` shows which of the groups cxmon finds, which it
misses and what it flags that Lookout did not, so the thresholds can be tuned before going live.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from monitor.durations import parse_duration
from monitor.lookout.model import Conversion, LookoutInputError, Note, _need, _obj


def _groups(doc: Any) -> list[dict[str, Any]]:
    """The groups of one output, or of a JSON list of pages / get-anomaly-group outputs."""
    if isinstance(doc, list):
        return [g for page in doc for g in _groups(page)]
    doc = _obj(doc, "anomaly groups")
    if "AnomalyGroup" in doc:  # get-anomaly-group
        return [_obj(doc["AnomalyGroup"], "anomaly groups: AnomalyGroup")]
    if "AnomalyGroupSummaryList" not in doc:
        raise LookoutInputError("anomaly groups: not list-anomaly-group-summaries or "
                                "get-anomaly-group output (no AnomalyGroupSummaryList)")
    groups = doc["AnomalyGroupSummaryList"]
    if not isinstance(groups, list):
        raise LookoutInputError("anomaly groups: AnomalyGroupSummaryList: expected a list")
    return [_obj(g, f"AnomalyGroupSummaryList[{i}]") for i, g in enumerate(groups)]


def _time(value: Any, where: str) -> datetime:
    """Lookout prints group times as ISO 8601 text (UTC, often without a zone) or epoch
    seconds (boto3 JSON dumps)."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError, OverflowError):
        raise LookoutInputError(f"{where}: not a time: {value!r}") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _top_labels(group: dict[str, Any], dim_names: dict[str, str]) -> str:
    """``dim=value`` of the top contributor per dimension (get-anomaly-group only): the slice
    the group was about, so the backtest matches it to that slice's anomalies."""
    out = []
    for impact in group.get("MetricLevelImpactList") or []:
        matrix = (impact or {}).get("ContributionMatrix") or {}
        for dim in matrix.get("DimensionContributionList") or []:
            values = dim.get("DimensionValueContributionList") or []
            name = dim.get("DimensionName")
            if not (name and values and name in dim_names):
                continue
            top = max(values, key=lambda v: v.get("ContributionScore") or 0)
            if top.get("DimensionValue") is not None and (top.get("ContributionScore") or 0) >= 50:
                out.append(f"{dim_names[name]}={top['DimensionValue']}")
        break  # the primary metric's impact comes first
    return ";".join(sorted(set(out)))


def incidents_csv(doc: Any, conv: Conversion) -> tuple[str, list[Note]]:
    """The incidents CSV (``start,end,metric,labels,name``) and notes about what was left out.

    A group's ``EndTime`` is the start of its last anomalous bucket, so the incident ends one
    interval later (incident ends are exclusive). A Lookout metric that became several cxmon
    metrics (it is in several metric sets) gets no ``metric``: any of them may match it.
    """
    assert conv.config is not None
    intervals = {m["name"]: parse_duration(m["interval"]) for m in conv.config["metrics"]}
    default = min(intervals.values())
    notes: list[Note] = []
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["start", "end", "metric", "labels", "name"])
    rows = 0
    for i, group in enumerate(_groups(doc)):
        where = f"anomaly groups[{i}]"
        start = _time(_need(group, "StartTime", where + ".", (str, int, float)), where)
        end = _time(group.get("EndTime") or group["StartTime"], where)
        primary = group.get("PrimaryMetricName")
        targets = conv.metric_names.get(primary or "", [])
        if primary and not targets:
            notes.append(Note("unsupported", f"{where}.PrimaryMetricName",
                              f"{primary} is not a metric of the converted metric sets: "
                              "group left out"))
            continue
        metric = targets[0] if len(targets) == 1 else ""
        step = max((intervals[t] for t in targets), default=default)
        score = group.get("AnomalyGroupScore")
        name = f"lookout {group.get('AnomalyGroupId', i)}" + (
            f" score {score:g}" if isinstance(score, int | float) else "")
        labels = _top_labels(group, conv.dimension_names)
        writer.writerow([start.isoformat().replace("+00:00", "Z"),
                         (max(end, start) + step).isoformat().replace("+00:00", "Z"),
                         metric, labels, name])
        rows += 1
    if not rows:
        raise LookoutInputError("anomaly groups: no group of a converted metric")
    notes.append(Note("mapped", "anomaly groups",
                      f"{rows} group(s) became incidents: replay the same period with `cxmon "
                      "backtest -c CONFIG --start ... --end ... --incidents FILE` to see which "
                      "of Lookout's anomalies cxmon finds and what else it flags (Lookout's "
                      "feedback is not in these outputs: drop the rows you marked as not "
                      "anomalous)"))
    return buf.getvalue(), notes

