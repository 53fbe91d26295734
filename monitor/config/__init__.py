"""The one YAML config file, parsed into strict pydantic models.

Everything wrong with a file is reported at once, each problem with its path
(``metrics[0].detectors[1]``), so a user fixes a config in one pass instead of one error per
run (Alertmanager's ``config.Load``). The pipeline is:

1. YAML -> node tree: syntax errors, duplicate keys and the line of every path (for ordering)
   (:mod:`monitor.config.yaml_positions`);
2. ``${VAR}`` interpolation in string values, remembering which paths hold environment values
   (:mod:`monitor.config.interpolation`);
3. pydantic validation (sources and detectors against their registered config classes)
   (:mod:`monitor.config.root` and the section modules, :mod:`monitor.config.plugins`);
4. cross-references (metric -> source / detectors, route -> receiver, duplicate names)
   (:mod:`monitor.config.checks`, :mod:`monitor.config.alerting`).

Values that came from the environment are treated as secrets: problems never quote them.
This package's ``__init__`` only re-exports the public names; :mod:`monitor.config.loading`
puts the stages together.
"""

from alerts.am_config import RouteConfig
from monitor.config.alerting import (
    AlertingConfig,
    ConsoleReceiverConfig,
    DeliveryConfig,
    ReceiverConfig,
    ReceiverDeliveryConfig,
)
from monitor.config.connections import GrafanaConfig, StoreConfig, redact_url
from monitor.config.display import DisplayConfig, display_warnings
from monitor.config.fields import LABEL_NAME
from monitor.config.loading import load_config, parse_config
from monitor.config.metric import MetricConfig, ValueSpec
from monitor.config.plugins import DEFAULT_DETECTOR_TYPE
from monitor.config.problems import format_path, validation_problems
from monitor.config.root import MonitorConfig
from monitor.config.runtime import (
    DaskExecutorConfig,
    ExecutorConfig,
    InlineExecutorConfig,
    LocalExecutorConfig,
    SchedulerConfig,
)
from monitor.config.schema import config_json_schema
from monitor.errors import ConfigError

__all__ = [
    "DEFAULT_DETECTOR_TYPE",
    "LABEL_NAME",
    "AlertingConfig",
    "ConfigError",
    "ConsoleReceiverConfig",
    "DaskExecutorConfig",
    "DeliveryConfig",
    "DisplayConfig",
    "ExecutorConfig",
    "GrafanaConfig",
    "InlineExecutorConfig",
    "LocalExecutorConfig",
    "MetricConfig",
    "MonitorConfig",
    "ReceiverConfig",
    "ReceiverDeliveryConfig",
    "RouteConfig",
    "SchedulerConfig",
    "StoreConfig",
    "ValueSpec",
    "config_json_schema",
    "display_warnings",
    "format_path",
    "load_config",
    "parse_config",
    "redact_url",
    "validation_problems",
]
