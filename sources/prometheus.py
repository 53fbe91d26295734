"""``type: prometheus`` — PromQL range queries over Prometheus' HTTP API.

A metric's ``query`` is PromQL. It is evaluated with ``/api/v1/query_range`` every ``step``
(``params.step``, else the source's ``step``); the sample at time ``t`` describes the window
that ends at ``t`` (``increase(x[5m])``), so it becomes the row of the bucket starting at
``t - step``. Every series of the result becomes rows with columns ``timestamp``, ``value``
and one column per label (``__name__`` dropped): use ``timestamp: timestamp``,
``value: value`` and the labels you want as ``dimensions``.

Use a step equal to the metric's interval for gauges and rates; with a smaller step,
``increase(...[step])`` values add up exactly into the bucket (a sum).

Long ranges are split so that no request asks for more than 10,000 points per series
(Prometheus refuses more than 11,000). ``NaN``/``Inf`` samples are passed on and rejected
(counted) by the pipeline. A sample that cannot be read (not a ``[time, "value"]`` pair, or
a value that is no number) is dropped and counted (``skipped["bad_sample"]``, exported as
``cxmon_source_records_skipped_total{reason="bad_sample"}``); the rest of its series is kept.
A PromQL error (HTTP 400/422, ``bad_data``) is fatal, and so is a response that is not
Prometheus' format (``data`` not an object, ``data.result`` not a list), with the source named.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor.durations import Duration, positive_duration
from sources.base import FatalSourceError, PollRequest, RetriableSourceError, require_query
from sources.http import HttpSource, HttpSourceConfig, SkipRecord, parse_params
from sources.registry import register

MAX_POINTS = 10_000
QUERY_RANGE = "/api/v1/query_range"


class PrometheusSourceConfig(HttpSourceConfig):
    """A Prometheus-compatible server (Prometheus, Thanos, Mimir, VictoriaMetrics)."""

    type: Literal["prometheus"]
    base_url: str = Field(description="e.g. http://prometheus:9090")  # type: ignore[assignment]
    step: Duration = Field(default=timedelta(minutes=1), description="default query step")


class PrometheusParams(BaseModel):
    """The ``params`` of a metric polled from a prometheus source.

    Why a model: a misspelt ``stpe`` used to be ignored (the source's ``step`` was used
    without a word) and a bad ``step`` surfaced only at the first poll; now ``cxmon
    validate`` names it with its path."""

    model_config = ConfigDict(extra="forbid")

    #: the query step for this metric (default: the source's ``step``)
    step: Duration | None = None

    @field_validator("step")
    @classmethod
    def _positive(cls, v: timedelta | None) -> timedelta | None:
        return None if v is None else positive_duration(v)


def _seconds(td: timedelta) -> str:
    return f"{td.total_seconds():g}s"


@register("prometheus")
class PrometheusSource(HttpSource):
    """Runs a metric's PromQL as a range query; labels become columns."""

    Config = PrometheusSourceConfig
    Params = PrometheusParams
    config: PrometheusSourceConfig

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        require_query(self.name, request, "a PromQL expression")
        step = self._step(request)
        frames = []
        t = request.since
        while t < request.until:
            hi = min(t + MAX_POINTS * step, request.until)
            frames.append(self._range(request, t, hi, step))
            t = hi
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if "timestamp" not in out.columns:
            out = pd.DataFrame(columns=["timestamp", "value"])
        return out

    def _step(self, request: PollRequest) -> timedelta:
        step = parse_params(PrometheusParams, self.name, request).step
        return self.config.step if step is None else step

    def _range(
        self, request: PollRequest, lo: datetime, hi: datetime, step: timedelta
    ) -> pd.DataFrame:
        """Samples at ``lo + step .. hi`` (inclusive) -> rows stamped ``t - step``."""
        params = {
            "query": request.query,
            "start": f"{(lo + step).timestamp():.3f}",
            "end": f"{hi.timestamp():.3f}",
            "step": _seconds(step),
        }
        body = self.http.get_json(QUERY_RANGE, params=params,
                                  fix_hint="check the PromQL in the metric's query",
                                  auth_hint="")  # a rejected token is no PromQL problem
        def malformed(what: str) -> FatalSourceError:
            return FatalSourceError(f"source {self.name}: metric {request.metric}: malformed "
                                    f"Prometheus response: {what}")

        if not isinstance(body, dict):
            raise malformed(f"a JSON {type(body).__name__}, not an object (is base_url a "
                            "Prometheus API root?)")
        if body.get("status") != "success":
            error = body.get("error")
            kind = body.get("errorType")
            at = self.http.where(f"{(self.config.base_url or '').rstrip('/')}{QUERY_RANGE}")
            if kind in ("timeout", "canceled", "unavailable"):
                raise RetriableSourceError(
                    f"source {self.name}: Prometheus {kind} at {at}: {error}")
            raise FatalSourceError(
                f"source {self.name}: metric {request.metric}: query failed at {at} ({kind}: "
                f"{error})")
        data = body.get("data") or {}
        if not isinstance(data, dict):
            raise malformed(f"'data' is {type(data).__name__}, not an object (is base_url a "
                            "Prometheus API root?)")
        if data.get("resultType") != "matrix":
            raise FatalSourceError(
                f"source {self.name}: metric {request.metric}: expected a range vector "
                f"(matrix), got {data.get('resultType')}"
            )
        result = data.get("result") or []
        if not isinstance(result, list):
            raise malformed(f"'data.result' is {type(result).__name__}, not a list")
        shift = step.total_seconds()

        def parse(series: Any) -> list[dict[str, Any]]:
            if not isinstance(series, dict):
                raise SkipRecord("bad_series")
            metric = series.get("metric") or {}
            values = series.get("values") or ()
            if not isinstance(metric, dict) or not isinstance(values, list):
                raise SkipRecord("bad_series")
            labels = {k: v for k, v in metric.items() if k != "__name__"}
            rows = []
            for sample in values:
                # one unreadable sample is counted and dropped; the rest of the series stays
                try:
                    ts, value = sample
                    stamp = float(ts) - shift
                    number = float(value)
                except (TypeError, ValueError):
                    self.skipped["bad_sample"] += 1
                    continue
                rows.append({**labels, "timestamp": stamp, "value": number})
            return rows

        rows = self.records(result, parse)
        if not rows:
            return pd.DataFrame(columns=["timestamp", "value"])
        df = pd.DataFrame(rows)
        df["timestamp"] = pd.to_datetime(df["timestamp"], unit="s", utc=True).dt.round("ms")
        return df
