"""``cxmon validate --show``: the effective config, every secret masked."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from monitor.cli import app

runner = CliRunner()

#: one value per kind of secret a config holds; none may be printed
SECRETS = {
    "store URL password": "Dbpass-4711",
    "sql URL password from the environment": "Wh-pass-9090",
    "query parameter in a base_url": "Qk3y-99887766",
    "bearer token": "Bearer-tok-55555",
    "basic-auth password": "Basic-pw-66666",
    "header value": "Hdr-key-77777",
    "storage_options key": "AKIAEXAMPLE12345",
    "storage_options secret from the environment": "S3-secret-1111",
    "nested storage_options session token": "Sess-tok-88888",
    "metric query parameter": "Param-tok-12121",
    "Slack bot token": "xoxb-Slack-tok-1010",
    "webhook URL path": "Hook-path-2020",
    "webhook signing secret": "Sign-sec-3030",
    "webhook Authorization header": "Auth-hdr-4040",
    "PagerDuty routing key": "Route-key-5050",
    "Slack signing secret": "Feedback-sec-6060",
    "Grafana URL password": "Graf-pw-7070",
    "Grafana token": "Graf-tok-8080",
}

CONFIG = """\
store: postgresql+psycopg://cxmon:Dbpass-4711@db.internal/cx?sslmode=require
sources:
  warehouse: {type: sql, url: "${WAREHOUSE_URL}"}
  api:
    type: http_json
    base_url: "https://api.example.com/v1?api_key=Qk3y-99887766&region=eu"
    token: Bearer-tok-55555
    username: svc
    password: Basic-pw-66666
    headers: {X-Api-Key: Hdr-key-77777}
  lake:
    type: files
    path: s3://cx-exports/orders/*.csv
    storage_options:
      endpoint_url: http://127.0.0.1:9
      key: AKIAEXAMPLE12345
      secret: "${S3_SECRET}"
      client_kwargs: {aws_session_token: Sess-tok-88888, region_name: eu-west-1}
      config_kwargs: {connect_timeout: 1, retries: {max_attempts: 1}}
metrics:
  - {name: orders, source: warehouse, timestamp: ts, value: n, history: 1w,
     query: "select ts, n from t where ts >= :since and ts < :until"}
  - {name: tickets, source: api, query: /tickets, timestamp: ts, value: n, history: 1w,
     params: {query_params: {access_token: Param-tok-12121}}}
  - {name: "${REGION}_orders", source: lake, timestamp: ts, value: n, history: 1w}
alerting:
  receivers:
    - name: chat
      slack: {token: xoxb-Slack-tok-1010, channel: "#cx"}
    - name: hook
      webhook:
        url: https://hooks.example.com/services/T0/B0/Hook-path-2020
        secret: Sign-sec-3030
        headers: {Authorization: Bearer Auth-hdr-4040}
    - name: page
      pagerduty: {routing_key: Route-key-5050}
  route: {receiver: chat}
  feedback: {signing_secret: Feedback-sec-6060}
grafana: {url: "https://admin:Graf-pw-7070@grafana.example.com", token: Graf-tok-8080}
"""
ENV = {"WAREHOUSE_URL": "postgresql+psycopg://reader:Wh-pass-9090@wh/dw",
       "S3_SECRET": "S3-secret-1111", "REGION": "eu"}


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "cxmon.yaml"
    path.write_text(CONFIG)
    return path


def test_show_prints_the_effective_config_with_no_secret(tmp_path: Path) -> None:
    res = runner.invoke(app, ["validate", "-c", str(_config(tmp_path)), "--show"], env=ENV)
    assert res.exit_code == 0, res.output
    leaked = [kind for kind, value in SECRETS.items() if value in res.output]
    assert not leaked, leaked
    shown = yaml.safe_load(res.stdout)  # stdout is the YAML alone; the summary is on stderr
    assert "✓" in res.stderr and "✓" not in res.stdout
    # where each secret was, what is not secret is still there to check
    assert shown["store"]["url"] == "postgresql+psycopg://cxmon:***@db.internal/cx?sslmode=require"
    assert shown["sources"]["warehouse"]["url"] == "postgresql+psycopg://reader:***@wh/dw"
    api = shown["sources"]["api"]
    assert api["base_url"] == "https://api.example.com/v1?api_key=***&region=eu"
    assert (api["token"], api["password"], api["username"]) == ("***", "***", "svc")
    assert api["headers"] == {"X-Api-Key": "***"}
    assert shown["sources"]["lake"]["storage_options"] == {
        "endpoint_url": "http://127.0.0.1:9", "key": "***", "secret": "***",
        "client_kwargs": {"aws_session_token": "***", "region_name": "eu-west-1"},
        "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}
    receivers = {r["name"]: r for r in shown["alerting"]["receivers"]}
    assert receivers["hook"]["webhook"]["url"] == "https://hooks.example.com/***"
    assert receivers["chat"]["slack"] == {**receivers["chat"]["slack"], "token": "***",
                                          "channel": "#cx"}
    assert receivers["page"]["pagerduty"]["routing_key"] == "***"
    assert shown["grafana"] == {"url": "https://admin:***@grafana.example.com", "token": "***"}
    # ${VAR}s replaced and defaults filled: what the monitor will run with
    assert [m["name"] for m in shown["metrics"]] == ["orders", "tickets", "eu_orders"]
    assert shown["metrics"][0]["interval"] == "5m" and shown["metrics"][0]["history"] == "1w"
    assert shown["detectors"]["default"]["type"] == "robust_seasonal"
    assert shown["alerting"]["delivery"]["max_attempts"] == 10


def test_show_one_section(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    res = runner.invoke(app, ["validate", "--show", "sources.lake", "-c", config], env=ENV)
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.stdout)["storage_options"]["secret"] == "***"
    assert "S3-secret-1111" not in res.output and "metrics" not in res.stdout
    one = runner.invoke(app, ["validate", "--show", "metrics.tickets", "-c", config], env=ENV)
    assert yaml.safe_load(one.stdout)["params"] == {"query_params": {"access_token": "***"}}
    hook = runner.invoke(app, ["validate", "-c", config, "--show",
                               "alerting.receivers.hook.webhook"], env=ENV)
    assert yaml.safe_load(hook.stdout)["secret"] == "***"
    typo = runner.invoke(app, ["validate", "--show", "metrics.ticket", "-c", config], env=ENV)
    assert typo.exit_code == 2
    assert ("metrics has no 'ticket' (did you mean 'tickets'?); there: orders, tickets, "
            "eu_orders") in typo.output
    alone = runner.invoke(app, ["validate", "metrics", "-c", config], env=ENV)
    assert alone.exit_code == 2 and "add --show" in alone.output


def test_a_config_with_problems_lists_them_and_prints_no_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.replace("history: 1w,\n     params", "history: 1w, colour: red,\n"
                                  "     params").replace("route: {receiver: chat}",
                                                       "route: {receiver: nobody}"))
    res = runner.invoke(app, ["validate", "-c", str(bad), "--show"], env=ENV)
    assert res.exit_code == 2
    assert "2 problem(s)" in res.output and "metrics[1].colour" in res.output
    assert res.stdout == ""  # not a half config
    assert not [v for v in SECRETS.values() if v in res.output]


def test_show_merges_include_files(tmp_path: Path) -> None:
    """The team files' metrics and detectors are in the one document shown."""
    examples = Path(__file__).parent.parent / "examples"
    res = runner.invoke(app, ["validate", "-c", str(examples / "teams.yaml"), "--show"])
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.stdout)
    assert [m["name"] for m in shown["metrics"]] == ["checkout_dropoff_rate", "complaints",
                                                     "csat"]
    assert {"weekly_slow", "default"} <= set(shown["detectors"])
    assert [r["name"] for r in shown["alerting"]["receivers"]] == ["checkout-chat",
                                                                   "cx-ops-chat"]


def test_a_secret_pasted_where_no_secret_belongs_is_masked_too(tmp_path: Path) -> None:
    """The last pass: the Slack token pasted into ``channel`` as well is masked there too;
    a ``credentials_file`` is where a key is, not the key: shown."""
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace('channel: "#cx"', "channel: xoxb-Slack-tok-1010"))
    res = runner.invoke(app, ["validate", "-c", str(path), "--show", "alerting.receivers.chat"],
                        env=ENV)
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.stdout)["slack"]["channel"] == "***"
    from monitor.config import parse_config
    from monitor.config.effective import effective_yaml

    ga = parse_config("sources:\n  ga: {type: google_analytics, property_id: '123', "
                      "credentials_file: /etc/cx/ga-key.json}\nmetrics:\n  - {name: m, "
                      "source: ga, timestamp: timestamp, value: activeUsers, query: x,\n"
                      "     params: {metrics: [activeUsers]}}\n")
    assert "credentials_file: /etc/cx/ga-key.json" in effective_yaml(ga, "sources.ga")


def test_a_store_password_with_a_raw_at_sign_is_masked_whole(tmp_path: Path) -> None:
    """``${DB_PW}`` holding ``pa@ss#1`` (not URL-encoded): the URL parser splits at its first
    ``@``, which left ``ss#1`` in the host shown; everything up to the last ``@`` is masked."""
    path = tmp_path / "c.yaml"
    path.write_text('store: "postgresql+psycopg://cx:${DB_PW}@db.internal/cx"\n'
                    "sources: {shop: {type: demo}}\nmetrics:\n  - {name: m, source: shop, "
                    "query: checkout, timestamp: ts, value: started}\n")
    res = runner.invoke(app, ["validate", "-c", str(path), "--show", "store"],
                        env={"DB_PW": "Pw@4711#x"})
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.stdout)["url"] == "postgresql+psycopg://cx:***@db.internal/cx"
    assert "4711" not in res.output


def test_show_takes_a_path_as_problems_write_it(tmp_path: Path) -> None:
    """``metrics[1].params`` copied from a problem's path selects like ``metrics.1.params``
    (it was "the config has no 'metrics[1]'")."""
    config = str(_config(tmp_path))
    res = runner.invoke(app, ["validate", "--show", "metrics[1].params", "-c", config], env=ENV)
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.stdout) == {"query_params": {"access_token": "***"}}


def test_show_of_one_value_prints_just_the_value(tmp_path: Path) -> None:
    """``--show metrics.orders.history`` printed ``1w`` and then ``...`` (YAML's end of a
    bare scalar's document) on a line of its own."""
    config = str(_config(tmp_path))
    one = runner.invoke(app, ["validate", "--show", "metrics.orders.history", "-c", config],
                        env=ENV)
    assert one.exit_code == 0, one.output
    assert one.stdout == "1w\n"
    section = runner.invoke(app, ["validate", "--show", "metrics[0].dimensions", "-c", config],
                            env=ENV)
    assert isinstance(yaml.safe_load(section.stdout), list)


def test_show_prints_a_source_url_without_credentials_as_it_is(tmp_path: Path) -> None:
    """A sql source's ``url`` is a SecretStr: with no password in it, the last pass (every
    secret value scrubbed whole) printed ``url: '***'``, hiding which database it reads."""
    path = tmp_path / "cxmon.yaml"
    path.write_text(
        "sources:\n  warehouse: {type: sql, url: \"${WAREHOUSE_URL}\"}\n"
        "  other: {type: sql, url: \"postgresql+psycopg://reader:Wh-pass-9090@wh2/dw\"}\n"
        "metrics:\n  - {name: orders, source: warehouse, timestamp: ts, value: n, "
        "history: 1w, query: \"select ts, n from t where ts >= :since and ts < :until\"}\n")
    env = {"WAREHOUSE_URL": "postgresql+psycopg://reader@wh/dw?sslmode=require"}
    res = runner.invoke(app, ["validate", "-c", str(path), "--show", "sources"], env=env)
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.stdout)
    assert shown["warehouse"]["url"] == "postgresql+psycopg://reader@wh/dw?sslmode=require"
    assert shown["other"]["url"] == "postgresql+psycopg://reader:***@wh2/dw"


def test_show_of_an_unset_option_prints_its_value_not_an_error(tmp_path: Path) -> None:
    """``--show metrics.orders.unit`` for an option left unset said "has no 'unit'", as for a
    typo: the whole section leaves None out, but a field asked for by name is there, null."""
    config = str(_config(tmp_path))
    unset = runner.invoke(app, ["validate", "--show", "metrics.orders.unit", "-c", config],
                          env=ENV)
    assert unset.exit_code == 0, unset.output
    assert unset.stdout == "null\n" and yaml.safe_load(unset.stdout) is None
    assert "unit" not in yaml.safe_load(runner.invoke(
        app, ["validate", "--show", "metrics.orders", "-c", config], env=ENV).stdout)
    filled = runner.invoke(app, ["validate", "--show", "metrics.orders.interval", "-c", config],
                           env=ENV)
    assert filled.stdout == "5m\n"  # a default, filled in
    typo = runner.invoke(app, ["validate", "--show", "metrics.orders.units", "-c", config],
                         env=ENV)
    assert typo.exit_code == 2
    assert "metrics.orders has no 'units' (did you mean 'unit'?)" in " ".join(
        typo.output.split())
    deeper = runner.invoke(app, ["validate", "--show", "metrics.orders.unit.x", "-c", config],
                           env=ENV)
    assert deeper.exit_code == 2 and "has no 'x'" in deeper.output
