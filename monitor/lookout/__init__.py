"""Convert Amazon Lookout for Metrics definitions into a cxmon config (``cxmon import lookout``).

Input is the JSON the AWS CLI prints: ``aws lookoutmetrics describe-metric-set`` (required),
``describe-alert`` (optional; one, or a JSON list of them) and ``describe-anomaly-detector``
(optional). The output is a config document (a dict, dumped as YAML by the CLI) that has been
validated through :func:`monitor.config.parse_config` with stand-in values for the environment
variables it references, so ``cxmon validate`` accepts it once those are set.

Every Lookout setting that has no cxmon equivalent, or needs a manual step, becomes a
:class:`Note` of the report: nothing is dropped silently. Unknown fields are reported too.

The package has one module per job: :mod:`~monitor.lookout.model` (input errors, notes, the
result), :mod:`~monitor.lookout.names` (valid names), :mod:`~monitor.lookout.sources` (the
metric source), :mod:`~monitor.lookout.alerts` (alerts to routes and receivers),
:mod:`~monitor.lookout.converter` (the metric set and the document) and
:mod:`~monitor.lookout.render` (YAML and the validation self-check);
:mod:`~monitor.lookout.anomaly_groups` turns Lookout's past anomaly groups into a
``cxmon backtest --incidents`` CSV.
"""

from monitor.lookout.anomaly_groups import incidents_csv
from monitor.lookout.converter import FREQUENCIES, convert
from monitor.lookout.model import Conversion, LookoutInputError, Note, load_json
from monitor.lookout.names import env_name, label_name, metric_name
from monitor.lookout.render import check, render_yaml, stand_ins

__all__ = ["FREQUENCIES", "Conversion", "LookoutInputError", "Note", "check", "convert",
           "env_name", "incidents_csv", "label_name", "load_json", "metric_name",
           "render_yaml", "stand_ins"]
