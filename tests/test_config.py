"""Config loading: strict models, every problem at once with its path, secrets never shown.

Sources and detectors are validated against whatever the registries hold, so these tests
register small fake types of their own (for this module only, then removed again) and do not
depend on the built-in plugins.
"""

from __future__ import annotations

import importlib
import json
import string
import sys
import types
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field, SecretStr, ValidationError, field_validator

ROOT = Path(__file__).resolve().parents[1]


def _import_registries() -> None:
    """Import ``sources.registry`` / ``detectors.registry`` even if a plugin module that the
    package ``__init__`` imports is broken or missing: load them under a temporary stub."""
    for pkg in ("sources", "detectors"):
        try:
            importlib.import_module(pkg)
        except Exception:
            stub = types.ModuleType(pkg)
            stub.__path__ = [str(ROOT / pkg)]
            sys.modules[pkg] = stub
            try:
                importlib.import_module(f"{pkg}.registry")
            finally:
                del sys.modules[pkg]  # a later `import pkg` must fail loudly, not get the stub


_import_registries()
# importlib, not `from pkg import registry`: that would re-run a broken package __init__.
source_registry = importlib.import_module("sources.registry")
detector_registry = importlib.import_module("detectors.registry")

from detectors.base import Detector, DetectorConfig  # noqa: E402
from monitor import config as cfg  # noqa: E402
from monitor.config import plugins as config_plugins  # noqa: E402
from monitor.durations import Duration  # noqa: E402
from monitor.errors import ConfigError  # noqa: E402
from monitor.model import Direction, ValueKind  # noqa: E402
from sources.base import Source, SourceConfig  # noqa: E402

# --------------------------------------------------------------------------------------------
# Fake plugin types


class FakeSrcConfig(SourceConfig):
    type: Literal["fake_src"]
    url: str

    @field_validator("url")
    @classmethod
    def _looks_like_url(cls, value: str) -> str:
        if "://" not in value:
            # Quotes its input on purpose: the loader must hide it when it came from env.
            raise ValueError(f"not a URL: {value!r}")
        return value


class FakeApiConfig(SourceConfig):
    type: Literal["fake_api"]
    base_url: str
    token: SecretStr | None = None
    timeout: Duration = timedelta(seconds=30)


class FakeSource(Source):
    Config = FakeSrcConfig
    type_name = "fake_src"

    def fetch(self, request: Any) -> Any:
        raise NotImplementedError


class FakeApiSource(FakeSource):
    Config = FakeApiConfig
    type_name = "fake_api"


class FakeDetConfig(DetectorConfig):
    type: Literal["fake_det"]
    sensitivity: float = Field(default=0.5, ge=0, le=1)


class FakeSeasonalConfig(DetectorConfig):
    type: Literal["fake_seasonal"]
    refit: Duration = timedelta(days=1)
    holidays: str | None = None
    daily: Literal["auto"] | bool = "auto"
    history: int | Duration = 4000


class FakeDetector(Detector):  # never instantiated: only its Config is used
    Config = FakeDetConfig
    type_name = "fake_det"


class FakeSeasonal(FakeDetector):
    Config = FakeSeasonalConfig
    type_name = "fake_seasonal"


@pytest.fixture(autouse=True, scope="module")
def fake_plugins() -> Iterator[None]:
    """Register the fakes for this module only, so other suites (contract tests parametrized
    over every registered type) never see them. The implicit default detector is a fake too."""
    with pytest.MonkeyPatch.context() as mp:
        for name, src in (("fake_src", FakeSource), ("fake_api", FakeApiSource)):
            mp.setitem(source_registry._TYPES, name, src)
        for name, det in (("fake_det", FakeDetector), ("fake_seasonal", FakeSeasonal)):
            mp.setitem(detector_registry._TYPES, name, det)
        mp.setattr(config_plugins, "DEFAULT_DETECTOR_TYPE", "fake_det")
        yield


ENV = {
    "WAREHOUSE_URL": "postgresql://reader:s3cr3t-pw@db.internal/dw",
    "SLACK_BOT_TOKEN": "xoxb-slack-token-123456",
    "GRAFANA_TOKEN": "glsa_grafana_token_abcdef",
}


def problems_of(text: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        cfg.parse_config(text, env=ENV if env is None else env)
    return [(p.path, p.message) for p in info.value.problems]


def paths_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    return [path for path, _ in problems_of(text, env)]


MINIMAL = """
sources: {src: {type: fake_src, url: "sqlite://"}}
metrics:
  - name: orders
    source: src
    value: {value}
"""


def minimal(value: str = "orders", **metric: str) -> str:
    extra = "".join(f"    {k}: {v}\n" for k, v in metric.items())
    return MINIMAL.replace("{value}", value) + extra


def test_names_that_are_not_identifiers_say_what_is_allowed_not_a_regex() -> None:
    text = minimal(dimensions="[sales-channel]").replace("name: orders",
                                                        "name: checkout conversion")
    said = dict(problems_of(text))
    assert said["metrics[0].name"].startswith(
        "must be an identifier: letters, digits, _ and :, not starting with a digit")
    assert "title:" in said["metrics[0].name"]
    assert said["metrics[0].dimensions[0]"].startswith(
        "must be an identifier: letters, digits and _, not starting with a digit")
    assert "renamed in the export or the query" in said["metrics[0].dimensions[0]"]
    assert not any("pattern" in m for m in said.values())


# --------------------------------------------------------------------------------------------
# The DESIGN.md example

DESIGN_EXAMPLE = """
store: sqlite:///cxmon.db            # embedded default; postgresql+psycopg://... in production
sources:
  warehouse: {type: sql, url: "${WAREHOUSE_URL}"}
metrics:
  - name: checkout_dropoff_rate
    source: warehouse
    interval: 5m
    query: "select ts, channel, region, started, abandoned from funnel where ts >= :since"
    timestamp: ts
    dimensions: [channel, region]
    value: {ratio: [abandoned, started]}
    labels: {journey: checkout, team: checkout-squad}
    direction: up
    detectors: [fast, seasonal]
detectors:
  fast: {type: robust_seasonal, sensitivity: 0.8}
  seasonal: {type: prophet, refit: 1d, holidays: GB}
alerting:
  route:                              # Alertmanager's route syntax, verbatim
    receiver: cx-ops
    group_by: [journey]
    routes:
      - {matchers: ['team="checkout-squad"'], receiver: checkout}
  receivers:
    - {name: cx-ops, slack: {channel: "#cx-ops", token: "${SLACK_BOT_TOKEN}"}}
    - {name: checkout, slack: {channel: "#checkout-alerts", token: "${SLACK_BOT_TOKEN}"}}
grafana: {url: "http://localhost:3000", token: "${GRAFANA_TOKEN}"}
"""


def with_fake_types(text: str) -> str:
    return (
        text.replace("type: sql", "type: fake_src")
        .replace("type: robust_seasonal", "type: fake_det")
        .replace("type: prophet", "type: fake_seasonal")
    )


def test_design_example_loads_with_console_receivers() -> None:
    # Slack receivers and child routes do not exist yet: the example with console receivers.
    text = with_fake_types(DESIGN_EXAMPLE)
    text = text.replace(
        """    routes:
      - {matchers: ['team="checkout-squad"'], receiver: checkout}
""",
        "",
    )
    text = text.replace('slack: {channel: "#cx-ops", token: "${SLACK_BOT_TOKEN}"}', "console: {}")
    text = text.replace(
        'slack: {channel: "#checkout-alerts", token: "${SLACK_BOT_TOKEN}"}',
        "console: {format: json}",
    )
    c = cfg.parse_config(text, env=ENV)

    assert c.store.url == "sqlite:///cxmon.db"
    assert c.store.retention == timedelta(days=90)
    warehouse = c.sources["warehouse"]
    assert isinstance(warehouse, FakeSrcConfig)
    assert warehouse.url == ENV["WAREHOUSE_URL"]
    m = c.metric("checkout_dropoff_rate")
    assert m.interval == timedelta(minutes=5)
    assert m.timestamp == "ts"
    assert m.dimensions == ["channel", "region"]
    assert (m.value.kind, m.value.numerator, m.value.denominator) == (
        ValueKind.RATIO,
        "abandoned",
        "started",
    )
    assert m.labels == {"journey": "checkout", "team": "checkout-squad"}
    assert m.direction is Direction.UP
    assert m.detectors == ["fast", "seasonal"]
    fast, seasonal = c.detector("fast"), c.detector("seasonal")
    assert isinstance(fast, FakeDetConfig) and fast.sensitivity == 0.8
    assert isinstance(seasonal, FakeSeasonalConfig)
    assert (seasonal.refit, seasonal.holidays) == (timedelta(days=1), "GB")
    assert isinstance(c.detector("default"), FakeDetConfig)  # implicit default added
    assert [r.name for r in c.alerting.receivers] == ["cx-ops", "checkout"]
    assert c.alerting.receivers[1].console is not None
    assert c.alerting.receivers[1].console.format == "json"
    assert c.alerting.route.receiver == "cx-ops"
    assert c.alerting.route.group_by == ["journey"]
    assert c.grafana is not None and c.grafana.token is not None
    assert c.grafana.token.get_secret_value() == ENV["GRAFANA_TOKEN"]
    assert ENV["GRAFANA_TOKEN"] not in repr(c)
    assert c.scheduler.jitter == timedelta(seconds=5)
    assert c.scheduler.misfire_grace == timedelta(minutes=1)


def test_design_example_verbatim_loads_with_its_route_tree() -> None:
    c = cfg.parse_config(with_fake_types(DESIGN_EXAMPLE), env=ENV)
    (child,) = c.alerting.route.routes
    assert (child.matchers, child.receiver) == (['team="checkout-squad"'], "checkout")


def test_demo_example_file_loads() -> None:
    """The shipped demo config is valid (its ``demo`` source type is checked if registered)."""
    path = ROOT / "monitor" / "examples" / "demo.yaml"
    if not path.exists() or "demo" not in source_registry.source_types():
        pytest.skip("demo example or demo source not available")
    text = path.read_text().replace("type: robust_seasonal", "type: fake_det")
    c = cfg.parse_config(text, env={"CXMON_DEMO_ANCHOR": "2026-01-05T00:00:00Z"})
    assert c.store.url == "sqlite:///cxmon-demo.db"  # ${CXMON_DEMO_STORE:-...} default
    assert c.metric("complaints").split_by == ["journey"]
    assert c.alerting.route.receiver == "console"


# --------------------------------------------------------------------------------------------
# Value specs, durations, store


@pytest.mark.parametrize(
    ("yaml_value", "kind", "numerator", "denominator"),
    [
        ("orders", ValueKind.SUM, "orders", None),
        ("{sum: orders}", ValueKind.SUM, "orders", None),
        ("{ratio: [abandoned, started]}", ValueKind.RATIO, "abandoned", "started"),
        ("{mean: [rating_sum, responses]}", ValueKind.MEAN, "rating_sum", "responses"),
        ("{kind: mean, numerator: s, denominator: c}", ValueKind.MEAN, "s", "c"),
        ("{mean: rating}", ValueKind.MEAN, "rating", None),  # the mean over the rows
    ],
)
def test_value_spec_forms(
    yaml_value: str, kind: ValueKind, numerator: str, denominator: str | None
) -> None:
    value = cfg.parse_config(minimal(yaml_value)).metrics[0].value
    assert (value.kind, value.numerator, value.denominator) == (kind, numerator, denominator)
    assert value.columns() == [numerator] + ([denominator] if denominator else [])
    # The normalized form round-trips through the model.
    assert cfg.ValueSpec.model_validate(value.model_dump()) == value


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [
        ("{median: x}", "value must be one of"),
        ("{sum: a, ratio: [a, b]}", "value must be one of"),
        ("5", "value must be one of"),
        ("[a, b]", "value must be one of"),
        ("{ratio: [a]}", "ratio needs a list of two column names"),
        ("{mean: [a]}", "mean needs a list of two column names: [sum_column, count_column] "
                        "or one column"),
        ("{kind: ratio, numerator: a}", "a ratio value needs two columns"),
        ("{kind: sum, numerator: a, denominator: b}", "a sum value needs exactly one column"),
    ],
)
def test_value_spec_errors_explain_the_forms(yaml_value: str, expected: str) -> None:
    [(path, message)] = problems_of(minimal(yaml_value))
    assert path == "metrics[0].value"
    assert expected in message
    if expected == "value must be one of":
        for form in ("{sum: column}", "{ratio: [", "{mean: [", "a column name"):
            assert form in message


def test_missing_value_is_reported() -> None:
    text = 'sources: {s: {type: fake_src, url: "x://"}}\nmetrics: [{name: m, source: s}]\n'
    assert problems_of(text) == [("metrics[0].value", "missing required key 'value'")]


def test_durations_parse_and_validate() -> None:
    text = minimal(interval="1h30m", delay="2m") + "store: {retention: 30d}\n"
    text += "scheduler: {jitter: 500ms, misfire_grace: 1w}\n"
    c = cfg.parse_config(text)
    m = c.metrics[0]
    assert (m.interval, m.delay) == (timedelta(minutes=90), timedelta(minutes=2))
    assert c.store.retention == timedelta(days=30)
    assert c.scheduler.jitter == timedelta(milliseconds=500)
    assert c.scheduler.misfire_grace == timedelta(weeks=1)

    problems = problems_of(minimal(interval="0s", delay="5x"))
    assert problems[0] == ("metrics[0].interval", "must be greater than 0s")
    assert problems[1][0] == "metrics[0].delay"
    assert "invalid duration" in problems[1][1]
    assert paths_of(minimal(interval="300")) == ["metrics[0].interval"]


def test_metric_defaults() -> None:
    m = cfg.parse_config(minimal()).metrics[0]
    assert m.interval == timedelta(minutes=5)
    assert m.timestamp == "timestamp"
    assert m.detectors == ["default"]
    assert m.direction is Direction.BOTH
    assert m.delay == timedelta(0)
    assert (m.min_change, m.min_volume, m.min_severity) == (0.0, 0.0, 25.0)
    assert (m.query, m.params, m.labels, m.dimensions, m.split_by) == (None, {}, {}, [], [])


def test_metric_field_rules() -> None:
    text = minimal(
        dimensions="[channel, region, channel]",
        labels="{region: uk, bad-label: x}",
        detectors="[default, default]",
        min_change="-0.1",
    ).replace("name: orders", "name: 1orders")
    assert paths_of(text) == [
        "metrics[0].name",
        "metrics[0].dimensions[2]",
        "metrics[0].labels.bad-label",
        "metrics[0].detectors[1]",
        "metrics[0].min_change",
    ]
    collision = minimal(dimensions="[channel]", labels="{channel: app}")
    assert problems_of(collision) == [
        ("metrics[0].labels.channel", "label 'channel' is also a dimension")
    ]
    assert paths_of(minimal(detectors="[]")) == ["metrics[0].detectors"]


def test_min_volume_on_a_sum_is_a_problem_not_a_silent_no_op() -> None:
    """A fresh-eyes analyst set ``min_volume: 5`` on a complaints count to hold back alerts
    on thin data; validate accepted it and the post-rule never acted (a sum has no volume).
    On a ratio or a mean, where the rule reads the denominator or count, it stays valid."""
    got = problems_of(minimal(min_volume="5"))
    assert [path for path, _ in got] == ["metrics[0].min_volume"]
    assert "a sum has no volume" in got[0][1] and "min_abs_change" in got[0][1]
    assert paths_of(minimal("{sum: orders}", min_volume="1")) == ["metrics[0].min_volume"]
    for value in ("{ratio: [a, b]}", "{mean: [s, n]}", "{mean: rating}"):
        assert cfg.parse_config(minimal(value, min_volume="5"), env=ENV).metrics[0].min_volume == 5
    assert cfg.parse_config(minimal(min_volume="0"), env=ENV).metrics[0].min_volume == 0


def test_store_accepts_a_plain_url_or_a_mapping() -> None:
    assert (
        cfg.parse_config(minimal() + "store: postgresql://h/db\n").store.url == "postgresql://h/db"
    )
    c = cfg.parse_config(minimal() + "store: {url: 'sqlite:///x.db', retention: 7d}\n")
    assert (c.store.url, c.store.retention) == ("sqlite:///x.db", timedelta(days=7))
    assert cfg.parse_config(minimal()).store == cfg.StoreConfig()
    assert cfg.StoreConfig.model_validate("sqlite://").url == "sqlite://"
    assert paths_of(minimal() + "store: {url: 'sqlite://', path: y}\n") == ["store.path"]


def test_store_url_must_be_one_the_store_can_open() -> None:
    """validate refuses what Store() refuses (cxmon run), with the path and no password."""
    problems = problems_of(minimal() + "store: 'mysqlx://u:hunter2@h/db'\n")
    assert problems == [("store.url", "unsupported database 'mysqlx'; supported: sqlite, "
                         "postgresql (use sqlite:///path.db or postgresql+psycopg://...)")]
    [(path, message)] = problems_of(minimal() + "store: {url: 'postgresql+nodriver://h/db'}\n")
    assert (path, message) == ("store.url", "unknown driver 'nodriver' for postgresql (SQLAlchemy "
                               "has no dialect 'postgresql+nodriver')")
    [(path, message)] = problems_of(minimal() + "store: notaurl\n")
    assert path == "store.url" and message.startswith("not a SQLAlchemy URL")
    assert cfg.parse_config(minimal() + "store: postgresql+psycopg://h/db\n")


def test_store_url_password_is_masked() -> None:
    url = "postgresql+psycopg://cx:hunter2@db:5432/cx"
    assert cfg.redact_url(url) == "postgresql+psycopg://cx:***@db:5432/cx"
    assert cfg.redact_url("sqlite:///cxmon.db") == "sqlite:///cxmon.db"
    assert cfg.redact_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert cfg.redact_url("https://u:p%40ss@h/x?a=1") == "https://u:***@h/x?a=1"
    assert cfg.redact_url("not a url") == "<unparsable URL>"
    store = cfg.StoreConfig(url=url)
    assert "hunter2" not in repr(store) and "hunter2" not in str(store)
    assert store.url == url  # the value itself is intact for the store to use


# --------------------------------------------------------------------------------------------
# Interpolation


def test_interpolation_defaults_and_escape() -> None:
    text = (
        'sources: {src: {type: fake_src, url: "${DB_URL}"}}\n'
        "metrics:\n"
        "  - name: orders\n"
        "    source: src\n"
        "    value: orders\n"
        "    query: \"select * from ${SCHEMA:-public}.orders where x = '$${literal}'\"\n"
        '    description: "${EMPTY:-fallback} and ${A}${B}"\n'
        '    dimensions: ["${DIM}"]\n'
        '    params: {"${KEY}": "${A}"}\n'
        "    interval: ${INTERVAL:-1h}\n"
    )
    env = {"DB_URL": "sqlite:///env.db", "EMPTY": "", "A": "a", "B": "b", "DIM": "channel"}
    c = cfg.parse_config(text, env=env)
    m = c.metrics[0]
    assert c.sources["src"].url == "sqlite:///env.db"  # type: ignore[attr-defined]
    assert m.query == "select * from public.orders where x = '${literal}'"
    assert m.description == "fallback and ab"
    assert m.dimensions == ["channel"]
    assert m.params == {"${KEY}": "a"}  # keys are never interpolated
    assert m.interval == timedelta(hours=1)


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXMON_TEST_DB_URL", "sqlite:///from-environ.db")
    text = minimal().replace('url: "sqlite://"', 'url: "${CXMON_TEST_DB_URL}"')
    assert cfg.parse_config(text).sources["src"].url == "sqlite:///from-environ.db"  # type: ignore[attr-defined]


def test_unset_and_malformed_variables() -> None:
    text = minimal(description='"${NOPE} and ${ALSO_NOPE}"', runbook='"${not valid}"')
    assert problems_of(text, env={}) == [
        ("metrics[0].description", "environment variable NOPE is not set"),
        ("metrics[0].description", "environment variable ALSO_NOPE is not set"),
        (
            "metrics[0].runbook",
            "invalid variable reference: use ${NAME}, ${NAME:-default}, or $${ for a literal ${",
        ),
    ]
    # An unset variable in a typed field is reported once, not also as a bad duration.
    assert problems_of(minimal(interval="${IVL}"), env={}) == [
        ("metrics[0].interval", "environment variable IVL is not set")
    ]


# --------------------------------------------------------------------------------------------
# Every problem at once


FIVE_MISTAKES = """
sources:
  warehouse: {type: fake_src, url: "${WAREHOUSE_DSN}"}
metrics:
  - name: orders
    source: warehouse
    qurey: select 1
    value: orders
  - name: dropoff
    source: warehose
    value: {ratio: [abandoned, started]}
    min_change: lots
    detectors: [default, fasst]
detectors:
  fast: {type: fake_det}
"""


def test_five_mistakes_are_reported_together_with_paths() -> None:
    with pytest.raises(ConfigError) as info:
        cfg.parse_config(FIVE_MISTAKES, env={})
    problems = info.value.problems
    assert [p.path for p in problems] == [
        "sources.warehouse.url",  # unset variable
        "metrics[0].qurey",  # unknown key
        "metrics[1].source",  # undefined source
        "metrics[1].min_change",  # wrong type
        "metrics[1].detectors[1]",  # undefined detector
    ]
    messages = [p.message for p in problems]
    assert messages[0] == "environment variable WAREHOUSE_DSN is not set"
    assert messages[1] == "unknown key 'qurey' (did you mean 'query'?)"
    assert messages[2].startswith("source 'warehose' is not defined (did you mean 'warehouse'?)")
    assert "number" in messages[3]
    assert messages[4].startswith("detector 'fasst' is not defined (did you mean 'fast'?)")
    assert "defined detectors: fast, default" in messages[4]
    text = str(info.value)
    assert text.startswith("<string>: 5 problem(s)")
    assert "  - metrics[0].qurey: unknown key 'qurey'" in text


def test_cross_references_and_duplicate_names() -> None:
    text = minimal() + (
        "  - {name: orders, source: src, value: x}\n"
        "alerting:\n"
        "  route: {receiver: pager}\n"
        "  receivers: [{name: ops}, {name: ops, console: {format: xml}}]\n"
    )
    problems = problems_of(text)
    assert [p for p, _ in problems] == [
        "metrics[1].name",
        "alerting.route.receiver",
        "alerting.receivers[1].name",
        "alerting.receivers[1].console.format",
    ]
    assert problems[0][1] == "duplicate metric name 'orders' (first at metrics[0])"
    assert problems[1][1] == "receiver 'pager' is not defined; defined receivers: ops"
    assert "duplicate receiver name 'ops'" in problems[2][1]
    assert problems[3][1] == "Input should be 'rich' or 'json'"


def test_alerting_defaults() -> None:
    c = cfg.parse_config(minimal())
    [console] = c.alerting.receivers
    assert console.name == "console" and console.console == cfg.ConsoleReceiverConfig()
    assert c.alerting.route.receiver == "console"
    text = minimal() + "alerting: {receivers: [{name: quiet}, {name: loud, console:}]}"
    c = cfg.parse_config(text)
    assert c.alerting.route.receiver == "quiet"  # the first receiver
    assert c.alerting.receivers[0].console is None  # only a name: drops alerts
    assert c.alerting.receivers[1].console == cfg.ConsoleReceiverConfig()  # `console:` = defaults


def test_default_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    c = cfg.parse_config(minimal())
    assert isinstance(c.detector("default"), FakeDetConfig)
    own = cfg.parse_config(minimal() + "detectors: {default: {type: fake_seasonal}}\n")
    assert isinstance(own.detector("default"), FakeSeasonalConfig)  # the user's wins

    monkeypatch.setattr(config_plugins, "DEFAULT_DETECTOR_TYPE", "not_registered")
    [(path, message)] = problems_of(minimal())
    assert path == "metrics[0].detectors"
    assert "no detector named 'default' is defined" in message
    text = minimal(detectors="[x]") + "detectors: {x: {type: fake_det}}"
    assert list(cfg.parse_config(text).detectors) == ["x"]


def test_unknown_source_and_detector_types_list_the_valid_ones() -> None:
    text = minimal().replace("type: fake_src", "type: fake_sq") + "detectors: {d: {type: nope}}\n"
    problems = problems_of(text)
    assert [p for p, _ in problems] == ["sources.src.type", "detectors.d.type"]
    assert problems[0][1].startswith(
        "unknown source type 'fake_sq' (did you mean 'fake_src'?); valid types:")
    assert "fake_api" in problems[0][1] and "fake_src" in problems[0][1]
    assert problems[1][1].startswith("unknown detector type 'nope'; valid types:")
    assert "fake_det" in problems[1][1] and "fake_seasonal" in problems[1][1]
    missing = problems_of(minimal().replace("type: fake_src, ", ""))
    assert missing[0][0] == "sources.src.type"
    assert "fake_src" in missing[0][1]


def test_plugin_config_errors_have_paths() -> None:
    text = minimal() + "detectors:\n  d: {type: fake_det, sensitivity: 2, sensitivty: 1}\n"
    problems = problems_of(text.replace('url: "sqlite://"', "url: nourl, extra: 1"))
    assert problems == [
        ("sources.src.url", "not a URL: 'nourl'"),
        ("sources.src.extra", "unknown key 'extra' (keys here: type, url)"),
        ("detectors.d.sensitivity", "Input should be less than or equal to 1"),
        ("detectors.d.sensitivty", "unknown key 'sensitivty' (did you mean 'sensitivity'?)"),
    ]


def test_a_value_that_fits_no_union_member_is_one_problem_at_its_key() -> None:
    """pydantic names each union member it tried; those names are no keys of the file."""
    text = minimal() + ("detectors:\n  d: {type: fake_seasonal, daily: maybe, history: abc,"
                        " refit: xx}\n")
    assert problems_of(text) == [
        ("detectors.d.daily",
         "Input should be 'auto' or a valid boolean, unable to interpret input"),
        ("detectors.d.history", "Input should be a valid integer, unable to parse string as an "
         "integer or invalid duration 'abc': expected e.g. 30s, 5m, 1h30m, 1d, 1w"),
        ("detectors.d.refit", "invalid duration 'xx': expected e.g. 30s, 5m, 1h30m, 1d, 1w"),
    ]


def test_a_boolean_where_a_number_belongs_is_a_problem() -> None:
    """pydantic's lax mode read ``min_severity: true`` as 1 and ``sensitivity: false`` as 0:
    a slip in the file silently became a setting. A boolean where a boolean belongs stays."""
    text = minimal(min_severity="true") + ("detectors:\n  d: {type: fake_det, sensitivity: "
                                            "false}\n  s: {type: fake_seasonal, daily: true}\n")
    assert problems_of(text) == [
        ("metrics[0].min_severity", "expected a number, not a boolean"),
        ("detectors.d.sensitivity", "expected a number, not a boolean"),
    ]


def test_jitter_not_shorter_than_a_metric_interval_is_a_problem() -> None:
    """``jitter: 10m`` with a 1m metric passed: every tick could start after the next bucket
    was due."""
    assert problems_of(minimal(interval="1m") + "scheduler: {jitter: 10m}\n") == [
        ("scheduler.jitter", "jitter 10m is not shorter than the shortest metric interval "
         "(1m): ticks would run after the next bucket is due"),
    ]
    ok = cfg.parse_config(minimal(interval="1m") + "scheduler: {jitter: 30s}\n", env=ENV)
    assert ok.scheduler.jitter == timedelta(seconds=30)


def test_unknown_keys_suggest_the_closest_known_key() -> None:
    text = minimal() + "detector: {}\nalerting: {route: {reciever: x}}\n"
    assert problems_of(text) == [
        ("detector", "unknown key 'detector' (did you mean 'detectors'?)"),
        ("alerting.route.reciever", "unknown key 'reciever' (did you mean 'receiver'?)"),
    ]


def test_a_key_written_one_level_off_says_where_it_goes() -> None:
    """A fresh-eyes analyst wrote ``season: day`` on a metric and ``direction: down`` on a
    detector and got a bare "unknown key", as if the option did not exist; and a detector
    type one letter off got no did-you-mean."""
    text = minimal(refit="1d", colour="red") + (
        "detectors:\n  d: {type: fake_det, direction: up}\n  e: {type: fake_seasnal}\n")
    got = dict(problems_of(text.replace("type: fake_src", "type: fake-src")))
    refit = got["metrics[0].refit"]
    assert refit.startswith("unknown key 'refit' ('refit' is an option of a detector (")
    assert "fake_seasonal" in refit and "refit: ...}}" in refit
    assert got["metrics[0].colour"] == "unknown key 'colour'"  # nowhere else either
    assert got["detectors.d.direction"] == (
        "unknown key 'direction' ('direction' is a metric setting: set it on the metrics "
        "that use this detector)")
    assert got["detectors.e.type"].startswith(
        "unknown detector type 'fake_seasnal' (did you mean 'fake_seasonal'?); valid types: ")
    assert got["sources.src.type"].startswith(
        "unknown source type 'fake-src' (did you mean 'fake_src'?); valid types: ")


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
KEYS = [
    "store",
    "sources",
    "metrics",
    "detectors",
    "alerting",
    "name",
    "source",
    "type",
    "value",
    "ratio",
    "url",
    "receivers",
    "route",
    "receiver",
    "console",
    "fake_src",
    "interval",
    "labels",
    "dimensions",
    "src",
    "${X}",
    "default",
]
yaml_like = st.recursive(
    json_scalars | st.sampled_from(KEYS),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(doc=yaml_like)
def test_any_document_gives_a_config_or_a_config_error(doc: Any) -> None:
    """Whatever the structure, the loader never fails with anything but ConfigError."""
    try:
        cfg.parse_config(yaml.safe_dump(doc), env={"X": "x"})
    except ConfigError as exc:
        assert exc.problems
        assert all(isinstance(p.path, str) and p.message for p in exc.problems)


def test_yaml_syntax_error_is_one_problem_with_line() -> None:
    [(path, message)] = problems_of("sources: {a: 1\nmetrics: [\n")
    assert path == ""
    assert message.startswith("invalid YAML at line ")


def test_duplicate_keys_are_problems() -> None:
    text = minimal() + "    source: other\n"
    # YAML keeps the last value, so the reference to 'other' is checked (and fails) too.
    assert problems_of(text) == [
        ("metrics[0].source", "duplicate key 'source' (first defined at line 5)"),
        ("metrics[0].source", "source 'other' is not defined; defined sources: src"),
    ]


def test_top_level_must_be_a_mapping() -> None:
    assert paths_of("- a\n- b\n") == [""]
    assert paths_of("") == ["sources", "metrics"]


def test_load_config_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "cxmon.yaml"
    path.write_text(minimal())
    assert cfg.load_config(path, env={}).metrics[0].name == "orders"
    with pytest.raises(ConfigError) as info:
        cfg.load_config(tmp_path / "missing.yaml", env={})
    [problem] = info.value.problems
    assert "not found" in problem.message
    path.write_text(minimal(bogus="1"))
    with pytest.raises(ConfigError) as info:
        cfg.load_config(path, env={})
    assert info.value.source == str(path)
    assert [p.path for p in info.value.problems] == ["metrics[0].bogus"]


# --------------------------------------------------------------------------------------------
# Secrets


SECRET = "S3cr3t-Value-From-Env"


def test_env_values_never_appear_in_errors() -> None:
    text = (
        'sources: {src: {type: fake_src, url: "${DSN}"}, api: {type: fake_api, base_url: x, '
        'token: "${TOKEN}", timeout: "${TOKEN}"}}\n'
        "metrics:\n"
        '  - {name: "${TOKEN}", source: "${TOKEN}", value: orders, interval: "${TOKEN}"}\n'
        'grafana: {url: "http://g", token: ["${TOKEN}"]}\n'
        'store: {url: "${TOKEN}", retention: "x${TOKEN}"}\n'
    )
    env = {"DSN": "host-only-" + SECRET, "TOKEN": SECRET}
    with pytest.raises(ConfigError) as info:
        cfg.parse_config(text, env=env)
    assert {p.path for p in info.value.problems} >= {
        "sources.src.url",
        "sources.api.timeout",
        "metrics[0].name",
        "metrics[0].source",
        "metrics[0].interval",
        "grafana.token",
        "store.retention",
    }
    assert SECRET not in str(info.value)
    assert all(SECRET not in p.message for p in info.value.problems)
    assert "***" in str(info.value)  # the messages say something was hidden


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=st.text(string.ascii_letters + string.digits + "-_/:@", min_size=6, max_size=40))
def test_any_env_value_stays_hidden(secret: str) -> None:
    text = minimal(interval='"${V}"').replace('url: "sqlite://"', 'url: "${V}"')
    try:
        cfg.parse_config(text + "grafana: {url: x, token: 5}\n", env={"V": secret})
    except ConfigError as exc:
        assert secret not in "\n".join(p.message for p in exc.problems)


# --------------------------------------------------------------------------------------------
# Python API and schema


def test_models_validate_references_from_python_too() -> None:
    with pytest.raises(ValidationError) as info:
        cfg.MonitorConfig.model_validate(
            {
                "sources": {"s": {"type": "fake_src", "url": "x://"}},
                "metrics": [{"name": "m", "source": "t", "value": "v"}],
                "alerting": {"route": {"receiver": "nobody"}},
            }
        )
    assert {tuple(e["loc"]) for e in info.value.errors()} == {
        ("metrics", 0, "source"),
        ("alerting", "route", "receiver"),
    }
    c = cfg.MonitorConfig(
        sources={"s": FakeSrcConfig(type="fake_src", url="x://")},
        metrics=[cfg.MetricConfig(name="m", source="s", value=cfg.ValueSpec.model_validate("v"))],
    )
    assert c.metric("m").source == "s"
    with pytest.raises(KeyError, match="defined metrics: m"):
        c.metric("nope")
    with pytest.raises(KeyError, match="defined detectors: default"):
        c.detector("nope")
    # Dumps and re-validates (plugin configs keep their own fields).
    dumped = c.model_dump(mode="json")
    assert dumped["sources"]["s"] == {"type": "fake_src", "url": "x://"}
    assert cfg.MonitorConfig.model_validate(dumped) == c


def test_json_schema_lists_registered_types() -> None:
    schema = json.loads(json.dumps(cfg.config_json_schema()))
    props = schema["properties"]
    assert set(props) == {
        "include",
        "store",
        "connections",
        "sources",
        "metrics",
        "detectors",
        "alerting",
        "grafana",
        "scheduler",
        "exporter",
        "executor",
        "display",
        "calendar",
    }
    # both required unless the file includes others (which may hold them)
    assert schema["if"] == {"not": {"required": ["include"]}}
    assert schema["then"]["required"] == ["sources", "metrics"]
    executors = props["executor"]["oneOf"]
    assert {e["$ref"].rsplit("/", 1)[1] for e in executors} == {
        "InlineExecutorConfig", "LocalExecutorConfig", "DaskExecutorConfig"}
    sources = props["sources"]["additionalProperties"]
    assert sources["discriminator"]["propertyName"] == "type"
    assert {"fake_src", "fake_api"} <= set(sources["discriminator"]["mapping"])
    assert len(sources["oneOf"]) == len(source_registry.source_types())
    detectors = props["detectors"]["additionalProperties"]
    assert {"fake_det", "fake_seasonal"} <= set(detectors["discriminator"]["mapping"])
    defs = schema["$defs"]
    assert defs["FakeSrcConfig"]["properties"]["type"]["const"] == "fake_src"
    assert defs["FakeSrcConfig"]["additionalProperties"] is False
    metric = defs["MetricConfig"]
    assert metric["additionalProperties"] is False
    assert "qurey" not in metric["properties"] and "query" in metric["properties"]
    assert defs["StoreConfig"]["anyOf"][0]["type"] == "string"  # `store: <url>` shorthand
    assert len(defs["ValueSpec"]["oneOf"]) == 4
    assert metric["properties"]["interval"]["type"] == "string"
    assert metric["properties"]["interval"]["default"] == "5m"  # not ISO 8601 "PT5M"
    assert defs["FakeApiConfig"]["properties"]["timeout"]["default"] == "30s"



def test_receiver_timeouts_take_durations_and_plain_seconds() -> None:
    text = minimal() + """
alerting:
  receivers:
    - name: hook
      webhook: {url: "http://hooks.example/cx", timeout: 2s}
    - name: pd
      pagerduty: {routing_key: abc, timeout: 1500ms}
    - name: slack
      slack: {token: xoxb-1, channel: "#cx", timeout: 7}
"""
    c = cfg.parse_config(with_fake_types(text), env=ENV)
    hook, pd_, slack = c.alerting.receivers
    assert (hook.webhook.timeout, pd_.pagerduty.timeout, slack.slack.timeout) == (2.0, 1.5, 7.0)
    bad = problems_of(with_fake_types(text.replace("timeout: 2s", "timeout: soon")))
    assert [p for p, _ in bad] == ["alerting.receivers[0].webhook.timeout"]
    assert "invalid duration 'soon'" in bad[0][1]


# --------------------------------------------------------------------------------------------
# Unset variables outside the sections a command needs

GRAFANA_TOKEN_UNSET = minimal() + """
store: {url: "${CXMON_STORE:-sqlite:///cx.db}"}
grafana: {url: "${GRAFANA_URL}", token: "${GRAFANA_TOKEN}"}
"""


def test_unset_variable_outside_the_needed_sections_is_no_error() -> None:
    unset = [("grafana.url", "environment variable GRAFANA_URL is not set"),
             ("grafana.token", "environment variable GRAFANA_TOKEN is not set")]
    assert problems_of(GRAFANA_TOKEN_UNSET, env={}) == unset  # validate: every section
    config = cfg.parse_config(GRAFANA_TOKEN_UNSET, env={}, needs={"store"})
    assert config.store.url == "sqlite:///cx.db"
    assert config.grafana is not None and config.grafana.token is None  # left out: default
    assert config.grafana.url == ""  # required: left empty
    with pytest.raises(ConfigError) as info:
        cfg.parse_config(GRAFANA_TOKEN_UNSET, env={"GRAFANA_URL": "http://g"},
                         needs={"store", "grafana"})
    assert [(p.path, p.message) for p in info.value.problems] == unset[1:]


def test_unset_required_secret_outside_the_needed_sections_is_no_error() -> None:
    # README: "an unset GRAFANA_TOKEN does not stop cxmon alerts status"; the same holds for
    # a Slack token, which is required and refuses an empty value.
    text = minimal() + """
alerting:
  route: {receiver: checkout}
  receivers:
    - name: checkout
      slack: {channel: "#checkout-alerts", token: "${SLACK_BOT_TOKEN}"}
"""
    config = cfg.parse_config(text, env={}, needs={"store"})
    assert config.store.url
    with pytest.raises(ConfigError) as info:
        cfg.parse_config(text, env={}, needs={"alerting"})
    assert [p.path for p in info.value.problems] == ["alerting.receivers[0].slack.token"]


def test_unset_source_url_does_not_stop_a_command_that_does_not_poll() -> None:
    # README: routes test needs only alerting's variables, dashboards build only metrics'.
    text = """
sources: {warehouse: {type: sql, url: "${WAREHOUSE_URL}"}}
metrics:
  - {name: orders, source: warehouse, query: "select 1", value: n}
alerting:
  route: {receiver: console}
  receivers: [{name: console, console: {format: rich}}]
"""
    config = cfg.parse_config(text, env={}, needs={"alerting"})
    assert config.alerting.route.receiver == "console"
    with pytest.raises(ConfigError) as info:
        cfg.parse_config(text, env={})
    assert [p.path for p in info.value.problems] == ["sources.warehouse.url"]


def test_a_real_problem_still_reports_every_unset_variable() -> None:
    text = GRAFANA_TOKEN_UNSET.replace("source: src", "source: nowhere")
    with pytest.raises(ConfigError) as info:
        cfg.parse_config(text, env={}, needs={"store"})
    paths = [p.path for p in info.value.problems]
    assert paths == ["metrics[0].source", "grafana.url", "grafana.token"]


def test_readme_config_reference_is_a_valid_config(tmp_path: Path) -> None:
    """The README's annotated reference config loads as written (every key it shows exists),
    with its variables set; a key renamed in the code but not in the README fails here."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("```yaml\nstore: sqlite:///cxmon.db")
    block = readme[start + len("```yaml\n"):readme.index("```", start + 8)]
    path = tmp_path / "cxmon.yaml"
    path.write_text(block)
    env = {v: "postgresql://u@h/db" if v == "WAREHOUSE_URL" else "x" * 12
           for v in ("WAREHOUSE_URL", "SLACK_BOT_TOKEN", "PD_ROUTING_KEY", "HOOK_SECRET",
                     "SLACK_SIGNING_SECRET", "GRAFANA_TOKEN")}
    config = cfg.load_config(path, env=env)
    metric = config.metrics[0]
    assert metric.name == "checkout_dropoff_rate"
    assert metric.description and metric.runbook
    assert [r.name for r in config.alerting.receivers][:2] == ["console", "blackhole"]


def test_metric_params_are_checked_against_their_source_type() -> None:
    """A misspelt http_json ``records`` used to pass validation and fail at the first poll
    (or, for a key with a default, be ignored: every record read from the page itself)."""
    got = problems_of("""
sources:
  api: {type: http_json, base_url: "https://api.example.com"}
  db: {type: sql, url: "sqlite://"}
metrics:
  - {name: a, source: api, query: /t, timestamp: ts, value: count,
     params: {recrods: data, query_params: {page: [1]}}}
  - {name: b, source: db, query: "select 1", timestamp: ts, value: count,
     params: {any_bind_name: 1}}
""")
    assert ("metrics[0].params.recrods", "unknown key 'recrods' (did you mean 'records'?)") in got
    assert any(path.startswith("metrics[0].params.query_params.page") for path, _ in got)
    assert not any(path.startswith("metrics[1]") for path, _ in got)  # SQL binds: any name


def test_common_slips_get_messages_in_the_configs_own_words(fake_plugins: None) -> None:
    """A fresh-eyes pass met "Input should be a valid dictionary or instance of WindowRule"
    (a class name users never see), a bare "unable to parse string as a number" for 10%,
    PyYAML's "found character '\\t'" for a tab, and "Input should be a valid list" for
    ``detectors: default``, and "Input should be a valid string" for a detector defined
    inline in a metric's list."""
    got = dict(problems_of(minimal(window="3", min_change="10%")))
    assert got["metrics[0].window"] == "expected a mapping {k: ..., n: ...}, not a number"
    assert got["metrics[0].min_change"] == ("expected a number: a share is a fraction here "
                                            "(10% is 0.1)")
    got = dict(problems_of(minimal(detectors="default", dimensions="7")))
    assert got["metrics[0].detectors"] == ("expected a list, not text: write even one item in "
                                           "brackets, detectors: [...]")
    assert got["metrics[0].dimensions"].startswith("expected a list, not a number")
    inline = dict(problems_of(minimal(detectors="[{type: fake_det, sensitivity: 0.5}]")))
    assert inline["metrics[0].detectors[0]"] == (
        "expected a detector's name, not its settings: define it under the top-level "
        "detectors: {NAME: {type: ..., ...}} and list NAME here")
    ((_, tab),) = problems_of("sources:\n\tsrc: {type: fake_src}\n")
    assert "line 2, column 1" in tab and "(YAML indents with spaces only: replace the tab)" in tab


def test_an_http_sources_url_is_pointed_at_base_url() -> None:
    """``url:`` on a prometheus or http_json source (whose key is ``base_url``) names it; a
    plain edit distance found nothing that far from ``url``."""
    text = ("sources:\n  prom: {type: prometheus, url: 'http://prometheus:9090'}\n"
            "metrics:\n  - {name: m, source: prom, query: up, timestamp: ts, value: v}\n")
    assert ("sources.prom.url", "unknown key 'url' (did you mean 'base_url'?)") \
        in problems_of(text)
