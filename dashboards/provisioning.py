"""Write generated dashboards for Grafana file provisioning.

Layout of ``--out DIR``::

    DIR/dashboards/<uid>.json                  one Grafana JSON model per dashboard
    DIR/provisioning/dashboards/cxmon.yaml     dashboard provider (folder "cxmon")
    DIR/provisioning/datasources/cxmon.yaml    the Prometheus data source (edit its URL)

Point Grafana's ``paths.provisioning`` at ``DIR/provisioning`` (or copy the two YAML files
into ``/etc/grafana/provisioning/``) and restart it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import yaml

from dashboards.grafana import Built

DEFAULT_FOLDER = "cxmon"
DEFAULT_PROMETHEUS_URL = "http://localhost:9090"


def provider_yaml(dashboards_dir: Path, folder: str = DEFAULT_FOLDER) -> str:
    """The dashboard provider: Grafana loads every JSON file of ``dashboards_dir``."""
    doc = {
        "apiVersion": 1,
        "providers": [{
            "name": "cxmon",
            "orgId": 1,
            "folder": folder,
            "folderUid": "cxmon",
            "type": "file",
            "disableDeletion": False,
            "allowUiUpdates": False,
            "updateIntervalSeconds": 30,
            "options": {"path": str(dashboards_dir), "foldersFromFilesStructure": False},
        }],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def datasource_yaml(prometheus_url: str = DEFAULT_PROMETHEUS_URL) -> str:
    """A Prometheus data source for the dashboards' ``datasource`` variable.

    Not marked default: Grafana refuses to provision (and does not start its provisioning)
    when two provisioned data sources of one organization are default, and most Grafanas
    that get this file already provision their own default Prometheus. The dashboards pick
    their Prometheus through the variable, so they do not need the default.
    """
    doc = {
        "apiVersion": 1,
        "datasources": [{
            "name": "Prometheus (cxmon)",
            "uid": "cxmon-prometheus",
            "type": "prometheus",
            "access": "proxy",
            "url": prometheus_url,
            "isDefault": False,
            "jsonData": {"timeInterval": "15s"},
        }],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write(
    dashboards: Iterable[Built],
    out: Path,
    *,
    folder: str = DEFAULT_FOLDER,
    prometheus_url: str = DEFAULT_PROMETHEUS_URL,
) -> list[Path]:
    """Write the JSON models and provisioning YAML under ``out``; returns the files written."""
    out = Path(out)
    dash_dir = out / "dashboards"
    dash_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for d in dashboards:
        path = dash_dir / f"{d.uid}.json"
        path.write_text(json.dumps(d.model, indent=2, sort_keys=True) + "\n")
        written.append(path)
    for sub, text in (
        ("dashboards", provider_yaml(dash_dir.resolve(), folder)),
        ("datasources", datasource_yaml(prometheus_url)),
    ):
        p = out / "provisioning" / sub / "cxmon.yaml"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        written.append(p)
    return written


__all__ = ["datasource_yaml", "provider_yaml", "write"]
