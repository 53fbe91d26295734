"""Lookout alerts as cxmon alerting: each alert a webhook receiver (SNS and Lambda sit behind
an HTTPS endpoint) and a route whose ``min_severity`` and matchers are the alert's threshold
and filters.
"""

from __future__ import annotations

import re
from typing import Any

from monitor.lookout.model import LookoutInputError, _need, _obj, _State
from monitor.lookout.names import env_name, label_name


class _AlertsMixin(_State):
    """The alert mappings of :class:`monitor.lookout.converter._Converter`."""

    _alerts: list[dict[str, Any]]
    alerts: list[Any]

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
            status = alert.get("AlertStatus")
            if status == "INACTIVE":
                # an inactive alert sent nothing: as a route it would start sending, and its
                # threshold would lower the metrics' min_severity for everyone
                self.note("manual", where + "AlertStatus",
                          f"{alert['AlertName']} was INACTIVE in Lookout: not converted (no "
                          "receiver, no route, its threshold ignored); to bring it back, set "
                          "its AlertStatus to ACTIVE in the JSON and convert again")
                continue
            out.append(alert)
        return out

    def _alert_thresholds(self) -> dict[str, float]:
        """Per Lookout metric name: the lowest threshold of the alerts that cover it, so the
        metric's min_severity lets through every point some route wants."""
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
                mapped = [x for n in metric_list for x in self.names.get(n, [])]
                missing = [n for n in metric_list if n not in self.names]
                if missing:
                    self.note("unsupported", where + "AlertFilters.MetricList",
                              f"{', '.join(missing)} not in the converted metric set(s): left "
                              "out (convert all the detector's sets together)")
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


def _as_alert_list(alerts: Any) -> list[Any]:
    if alerts is None:
        return []
    if isinstance(alerts, dict) and isinstance(alerts.get("AlertSummaryList"), list):
        raise LookoutInputError("alerts: list-alerts output has no actions; pass the output "
                                "of describe-alert for each alert (a JSON list is fine)")
    return alerts if isinstance(alerts, list) else [alerts]

