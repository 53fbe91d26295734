"""Dashboards: Prometheus exporter and Grafana dashboards-as-code (see the dashboards issue)."""
