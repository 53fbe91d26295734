"""``cxmon import lookout``: Lookout for Metrics JSON (boto3/AWS CLI response shapes) -> a
cxmon config that cxmon's own loader accepts, plus a report of what was not converted."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import load_config, parse_config
from monitor.frames import build_measure_frame
from monitor.lookout import LookoutInputError, convert, incidents_csv, render_yaml
from monitor.pipeline import measure_spec
from sources.base import PollRequest
from sources.sql import SqlSource

DATA = Path(__file__).parent / "data" / "lookout"
runner = CliRunner()


def _json(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def _import(*args: str):
    return runner.invoke(app, ["import", "lookout", *args])


def test_s3_csv_metric_set_converts_to_a_valid_files_config(tmp_path, monkeypatch):
    out = tmp_path / "cxmon.yaml"
    res = _import(str(DATA / "s3_csv_metric_set.json"), "--output", str(out))
    assert res.exit_code == 0, res.output

    # loads through cxmon's config loader once the variable it references is set
    data_dir = tmp_path / "mirror"
    env = {"LOOKOUT_CHECKOUT_ORDERS_DATA_DIR": str(data_dir)}
    cfg = load_config(out, env=env)
    src = cfg.sources["checkout_orders"]
    assert src.type == "files" and src.format == "csv"
    assert src.path == "ecommerce/live/*/*/*"
    assert [m.name for m in cfg.metrics] == ["checkout_orders_orders", "checkout_orders_revenue"]
    for m, col in zip(cfg.metrics, ["orders", "revenue"], strict=True):
        assert m.source == "checkout_orders"
        assert m.dimensions == ["marketplace", "platform"]
        assert m.value.kind == "sum" and m.value.numerator == col
        assert m.interval.total_seconds() == 3600  # PT1H
        assert m.delay.total_seconds() == 600  # Offset 600 s
        assert m.timestamp == "timestamp"
        assert m.labels["lookout_metric_set"] == "checkout-orders"
    assert cfg.metrics[1].labels["namespace"] == "Checkout"

    # the glob reads a file laid out as Lookout's templated path (a synced copy of the bucket)
    folder = data_dir / "ecommerce" / "live" / "20260301" / "1000"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_text(
        "platform,marketplace,timestamp,orders,revenue\n"
        "web,us,2026-03-01 10:00:00,3,120.5\n")
    from sources.files import FilesSource

    rows = FilesSource("checkout_orders", src).fetch(PollRequest(
        "checkout_orders_orders", datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 3, 2, tzinfo=UTC)))
    assert rows["orders"].tolist() == [3]

    # the report names what was not converted or needs a step
    err = res.stderr
    assert "S3SourceConfig.TemplatedPathList" in err and "aws s3 sync" in err
    assert "HistoricalDataPathList" in err and "cxmon backfill" in err
    assert "unsupported: DimensionFilterList" in err  # files cannot filter rows
    assert "TimestampColumn.ColumnFormat" in err


def test_s3_avg_metric_is_the_mean_over_rows(tmp_path):
    ms = _json("s3_csv_metric_set.json")
    ms["MetricList"][0]["AggregationFunction"] = "AVG"
    ms["MetricSource"]["S3SourceConfig"]["FileFormatDescriptor"] = {
        "JsonFormatDescriptor": {"FileCompression": "GZIP", "Charset": "UTF-8"}}
    conv = convert(ms)
    metric = conv.config["metrics"][0]
    assert metric["value"] == {"mean": "orders"}
    assert conv.config["sources"]["checkout_orders"]["format"] == "jsonl"
    notes = [str(n) for n in conv.notes]
    assert any("MetricList[0].AggregationFunction" in n and "AVG" in n
               and n.startswith("mapped") for n in notes)
    assert any("FileCompression" in n for n in notes)


def test_rds_metric_set_gives_a_sql_source_whose_query_runs(tmp_path):
    conv = convert(_json("rds_metric_set.json"))
    assert list(conv.env) == ["LOOKOUT_CONTACT_CENTRE_DB_URL"]
    text = render_yaml(conv)
    assert "PASSWORD@" not in text.split("\nsources:")[1]  # no credentials in the config
    db = tmp_path / "support.db"
    url = f"sqlite:///{db}"
    cfg = parse_config(text, {"LOOKOUT_CONTACT_CENTRE_DB_URL": url})
    src = cfg.sources["contact_centre"]
    assert src.type == "sql"
    assert yaml.safe_load(text)["sources"]["contact_centre"]["url"] == (
        "${LOOKOUT_CONTACT_CENTRE_DB_URL}")

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE TABLE contact_events (created_at TEXT, channel TEXT, '
                             '"Queue-Name" TEXT, contacts INTEGER, handle_seconds REAL)'))
        conn.execute(sa.text("INSERT INTO contact_events VALUES "
                             "('2026-03-01 10:00:00', 'phone', 'billing', 4, 300), "
                             "('2026-03-01 10:05:00', 'chat', 'billing', 2, 100), "
                             "('2026-03-01 10:05:00', 'email', 'billing', 9, 50), "
                             "('2026-03-01 11:00:00', 'phone', 'billing', 7, 10)"))
    engine.dispose()

    contacts, handle = cfg.metrics
    assert contacts.dimensions == ["channel", "queue_name"]
    assert contacts.interval.total_seconds() == 600 and contacts.delay.total_seconds() == 300
    assert contacts.value.kind == "sum"
    assert handle.value.kind == "mean" and handle.value.columns() == ["handle_seconds"]
    source = SqlSource("contact_centre", src)
    try:
        rows = {}
        for m in (contacts, handle):
            rows[m.name] = source.fetch(PollRequest(
                m.name, datetime(2026, 3, 1, 10, tzinfo=UTC), datetime(2026, 3, 1, 11, tzinfo=UTC),
                query=m.query, params=m.params, timestamp_column=m.timestamp))
    finally:
        source.close()
    got = rows["contact_centre_contacts"]
    assert list(got.columns) == ["created_at", "channel", "queue_name", "contacts"]
    assert sorted(got["channel"]) == ["chat", "phone"]  # DimensionFilterList: no email
    assert got["contacts"].sum() == 6  # the 11:00 row is outside [since, until)
    got = rows["contact_centre_handle_seconds"]
    assert list(got.columns) == ["created_at", "channel", "queue_name", "handle_seconds"]
    built = build_measure_frame(got, measure_spec(handle), datetime(2026, 3, 1, 10, tzinfo=UTC),
                                datetime(2026, 3, 1, 11, tzinfo=UTC))
    total = built.frame[built.frame["series"].str.startswith("contact_centre_handle_seconds{")
                        & ~built.frame["series"].str.contains("channel=|queue_name=")]
    assert total["value"].tolist() == [200.0]  # AVG of the rows: (300 + 100) / 2

    notes = "\n".join(map(str, conv.notes))
    assert "SecretManagerArn" in notes and "VpcConfiguration" in notes


def test_alerts_map_to_min_severity_and_webhook_receivers(tmp_path):
    out = tmp_path / "cxmon.yaml"
    res = _import(str(DATA / "rds_metric_set.json"), "--alerts", str(DATA / "alerts.json"),
                  "--detector", str(DATA / "detector.json"), "-o", str(out))
    assert res.exit_code == 0, res.output
    env = {"LOOKOUT_CONTACT_CENTRE_DB_URL": "postgresql+psycopg://u@db.example.com/support",
           "LOOKOUT_ALERT_SUPPORT_LEADS_WEBHOOK_URL": "https://hooks.example.com/sns",
           "LOOKOUT_ALERT_OPEN_TICKET_WEBHOOK_URL": "https://fn.example.com/"}
    cfg = load_config(out, env=env)
    receivers = {r.name: r for r in cfg.alerting.receivers}
    assert receivers["support_leads"].webhook.url == "https://hooks.example.com/sns"
    assert receivers["open_ticket"].webhook.url == "https://fn.example.com/"
    leads, ticket = cfg.alerting.route.routes
    assert (leads.receiver, leads.min_severity) == ("support_leads", 70)
    assert leads.matchers == ['metric=~"contact_centre_contacts"', 'channel=~"phone"']
    assert (ticket.receiver, ticket.min_severity, ticket.matchers) == ("open_ticket", 40, [])
    # each metric lets through the lowest threshold of the alerts covering it
    assert [m.min_severity for m in cfg.metrics] == [40, 40]
    err = res.stderr
    assert "alerts[0].Action.SNSConfiguration" in err
    assert "alerts[1].Action.LambdaConfiguration" in err
    assert "1-in-10,000" in err  # the scale difference is explained
    assert "KmsKeyArn" in err


def test_single_describe_alert_output_is_accepted():
    alert = _json("alerts.json")[1]
    conv = convert(_json("rds_metric_set.json"), alert)
    assert [r["name"] for r in conv.config["alerting"]["receivers"]] == ["console", "open_ticket"]


@pytest.mark.parametrize("kind", ["AthenaSourceConfig", "CloudWatchConfig", "AppFlowConfig"])
def test_unsupported_sources_are_reported_and_exit_1(tmp_path, kind):
    ms = _json("rds_metric_set.json")
    ms["MetricSource"] = {kind: {"RoleArn": "arn:aws:iam::123456789012:role/x"}}
    path = tmp_path / "ms.json"
    path.write_text(json.dumps(ms))
    res = _import(str(path))
    assert res.exit_code == 1
    assert f"unsupported: MetricSource.{kind}" in res.stderr
    assert "nothing could be converted" in res.stderr
    assert res.stdout == ""


def test_unknown_fields_are_reported_not_dropped():
    ms = _json("rds_metric_set.json")
    ms["SomeNewSetting"] = True
    conv = convert(ms)
    assert any(n.setting == "SomeNewSetting" for n in conv.notes)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda ms: ms.pop("MetricList"), "MetricList: required field missing"),
    (lambda ms: ms.pop("MetricSetFrequency"), "MetricSetFrequency: required field missing"),
    (lambda ms: ms.update(MetricSetFrequency="PT2H"), "MetricSetFrequency: expected one of"),
    (lambda ms: ms["MetricList"][1].update(AggregationFunction="MAX"),
     "MetricList[1].AggregationFunction: expected AVG or SUM"),
    (lambda ms: ms.update(TimestampColumn={"ColumnFormat": "yyyy-MM-dd"}),
     "TimestampColumn.ColumnName: required field missing"),
    (lambda ms: ms["MetricSource"]["RDSSourceConfig"].pop("TableName"),
     "MetricSource.RDSSourceConfig.TableName: required field missing"),
    (lambda ms: ms.update(MetricSource={}), "MetricSource: required field missing"),
])
def test_malformed_metric_sets_fail_cleanly(tmp_path, mutate, message):
    ms = copy.deepcopy(_json("rds_metric_set.json"))
    mutate(ms)
    with pytest.raises(LookoutInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        convert(ms)
    path = tmp_path / "ms.json"
    path.write_text(json.dumps(ms))
    res = _import(str(path))
    assert res.exit_code == 2
    assert message in res.stderr and "Traceback" not in res.output


def test_not_json_and_wrong_documents_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"MetricSetName": ')
    res = _import(str(bad))
    assert res.exit_code == 2 and "not JSON" in res.stderr
    res = _import(str(DATA / "detector.json"))
    assert res.exit_code == 2 and "--detector" in res.stderr
    res = _import(str(tmp_path / "missing.json"))
    assert res.exit_code == 2 and "file not found" in res.stderr
    res = _import(str(DATA / "rds_metric_set.json"), "--alerts", str(DATA / "detector.json"))
    assert res.exit_code == 2 and "alerts[0]" in res.stderr
    assert "Traceback" not in res.output


def test_alert_dimension_filters_use_the_converted_dimension_names():
    alert = copy.deepcopy(_json("alerts.json")[0])
    alert["Alert"]["AlertFilters"]["DimensionFilterList"] = [
        {"DimensionName": "Queue-Name", "DimensionValueList": ["billing.eu", "tech"]},
        {"DimensionName": "not_a_dimension", "DimensionValueList": ["x"]}]
    conv = convert(_json("rds_metric_set.json"), [alert])
    text = render_yaml(conv)
    cfg = parse_config(text, {"LOOKOUT_CONTACT_CENTRE_DB_URL": "sqlite://",
                              "LOOKOUT_ALERT_SUPPORT_LEADS_WEBHOOK_URL": "https://h.example/"})
    from alerts.matchers import matches_all, parse_matcher

    route = cfg.alerting.route.routes[0]
    assert route.matchers[1].startswith("queue_name=~")
    matchers = [parse_matcher(m) for m in route.matchers]
    base = {"metric": "contact_centre_contacts"}
    assert matches_all(matchers, {**base, "queue_name": "billing.eu"})
    assert not matches_all(matchers, {**base, "queue_name": "billingxeu"})
    assert any("not_a_dimension" in str(n) and n.kind == "unsupported" for n in conv.notes)


def test_dimension_names_that_collide_once_sanitized_stay_apart():
    ms = _json("rds_metric_set.json")
    ms["DimensionList"] = ["queue_name", "Queue-Name", "Queue Name"]
    conv = convert(ms)
    assert conv.config["metrics"][0]["dimensions"] == ["queue_name", "queue_name_",
                                                      "queue_name__"]


def test_redshift_source_and_a_local_timezone():
    ms = _json("rds_metric_set.json")
    ms["Timezone"] = "Europe/Berlin"
    ms["MetricSource"] = {"RedshiftSourceConfig": {
        "ClusterIdentifier": "analytics", "DatabaseHost":
        "analytics.c1a2b3.eu-west-1.redshift.amazonaws.com", "DatabasePort": 5439,
        "DatabaseName": "dev", "TableName": "cx.contact_events",
        "SecretManagerArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rs-AbCdEf"}}
    conv = convert(ms)
    assert conv.config["sources"]["contact_centre"] == {
        "type": "sql", "url": "${LOOKOUT_CONTACT_CENTRE_DB_URL}"}
    assert "FROM cx.contact_events" in conv.config["metrics"][0]["query"]
    assert "postgresql+psycopg://" in conv.env["LOOKOUT_CONTACT_CENTRE_DB_URL"]
    assert any(n.setting == "Timezone" and n.kind == "mapped" and "Europe/Berlin" in n.message
               for n in conv.notes)
    assert conv.config["metrics"][0]["params"]["lookout_timezone"] == "Europe/Berlin"


def test_a_local_timezone_is_converted_by_the_postgresql_query():
    """Lookout's Timezone says the column holds local wall-clock times without a zone: read
    as UTC, every bucket would be an hour off in Berlin. The query converts them (the zone a
    bound parameter), on the real PostgreSQL; an unknown zone stays a note, not SQL."""
    from tests.conftest import PG_URL, require_postgres

    ms = _json("rds_metric_set.json")
    ms["Timezone"] = "Europe/Berlin"
    table = f"contact_events_{uuid.uuid4().hex[:8]}"
    ms["MetricSource"]["RDSSourceConfig"]["TableName"] = table
    conv = convert(ms)
    assert '(created_at AT TIME ZONE :lookout_timezone) AS created_at' in (
        conv.config["metrics"][0]["query"])
    require_postgres()
    got = _poll_converted(conv, PG_URL, table, (
        f'CREATE TABLE {table} (created_at TIMESTAMP, channel TEXT, "Queue-Name" TEXT, '
        "contacts INTEGER, handle_seconds REAL)"),
        "('2026-03-01 11:00:00', 'phone', 'billing', 4, 300), "  # 10:00Z
        "('2026-03-01 10:30:00', 'chat', 'billing', 2, 100)")  # 09:30Z
    assert got["contacts"].tolist() == [4]
    assert pd.Timestamp(got["created_at"].iloc[0]) == pd.Timestamp("2026-03-01 10:00", tz="UTC")

    ms["Timezone"] = "Europe/Berlinn"
    typo = convert(ms)
    assert "AT TIME ZONE" not in typo.config["metrics"][0]["query"]
    assert any(n.setting == "Timezone" and n.kind == "manual" for n in typo.notes)


def test_mysql_rds_source_quotes_with_backticks_and_runs_on_mariadb():
    """A MySQL table (port 3306) reads "Queue-Name" as a string literal, not a column: the
    converted query must use backticks there, and run."""
    from tests.test_sources_sql import MARIADB_URL, require_mariadb

    ms = _json("rds_metric_set.json")
    ms["MetricSource"]["RDSSourceConfig"]["DatabasePort"] = 3306
    conv = convert(ms)
    assert "mysql+pymysql://" in conv.env["LOOKOUT_CONTACT_CENTRE_DB_URL"]
    text = render_yaml(conv)
    assert "`Queue-Name` AS queue_name" in text and '"Queue-Name"' not in text

    require_mariadb()
    table = f"contact_events_{uuid.uuid4().hex[:8]}"
    ms["MetricSource"]["RDSSourceConfig"]["TableName"] = table
    got = _poll_converted(convert(ms), MARIADB_URL, table, (
        f"CREATE TABLE {table} (created_at DATETIME, channel TEXT, `Queue-Name` TEXT, "
        "contacts INTEGER, handle_seconds DOUBLE)"),
        "('2026-03-01 10:00:00', 'phone', 'billing', 4, 300), "
        "('2026-03-01 10:05:00', 'chat', 'refunds', 2, 100)")
    assert sorted(got["queue_name"]) == ["billing", "refunds"]  # the column, not its name
    assert got["contacts"].sum() == 6


def _poll_converted(conv, url: str, table: str, create: str, rows: str) -> pd.DataFrame:
    """What the converted config's first metric polls for 2026-03-01 10:00-11:00 UTC from a
    real database at ``url``, with ``table`` created and filled there (and dropped after)."""
    cfg = parse_config(render_yaml(conv), {"LOOKOUT_CONTACT_CENTRE_DB_URL": url})
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(create))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES {rows}"))
    source = SqlSource("contact_centre", cfg.sources["contact_centre"])
    try:
        m = cfg.metrics[0]
        return source.fetch(PollRequest(
            m.name, datetime(2026, 3, 1, 10, tzinfo=UTC), datetime(2026, 3, 1, 11, tzinfo=UTC),
            query=m.query, params=m.params, timestamp_column=m.timestamp))
    finally:
        source.close()
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
        engine.dispose()


def test_an_inactive_alert_is_reported_not_turned_into_a_live_route():
    alerts = _json("alerts.json")
    alerts[1]["Alert"]["AlertStatus"] = "INACTIVE"  # the Lambda alert, threshold 40
    conv = convert(_json("rds_metric_set.json"), alerts)
    assert [r["receiver"] for r in conv.config["alerting"]["route"]["routes"]] == [
        "support_leads"]
    assert "LOOKOUT_ALERT_OPEN_TICKET_WEBHOOK_URL" not in conv.env
    # its lower threshold no longer lets more points through the metrics
    assert [m.get("min_severity") for m in conv.config["metrics"]] == [70.0, None]
    note = next(n for n in conv.notes if n.setting == "alerts[1].AlertStatus")
    assert note.kind == "manual" and "INACTIVE" in note.message


@pytest.mark.parametrize("status", ["DEACTIVATED", "FAILED"])
def test_a_detector_that_was_not_running_is_reported_and_its_metrics_paused(status):
    det = _json("detector.json") | {"Status": status, "FailureType": "ACTIVATION_FAILURE",
                                    "FailureReason": "no data in the bucket"}
    conv = convert(_json("rds_metric_set.json"), None, det)
    note = next(n for n in conv.notes if n.setting == "detector.Status")
    assert note.kind == "manual" and status in note.message
    assert "no data in the bucket" in note.message and "enabled: false" in note.message
    assert not any(n.setting == "detector.FailureType" for n in conv.notes)
    # converted but not live: cxmon run would otherwise start alerting where Lookout did not
    cfg = parse_config(render_yaml(conv), env={k: "postgresql://u@h/db" for k in conv.env})
    assert cfg.metrics and cfg.active_metrics == []


def test_an_active_detector_gets_no_status_note_and_live_metrics():
    conv = convert(_json("rds_metric_set.json"), None, _json("detector.json"))
    assert not any(n.setting == "detector.Status" for n in conv.notes)
    assert all("enabled" not in m for m in conv.config["metrics"])


def test_a_detectors_metric_sets_become_one_config_with_its_alerts_once(tmp_path):
    out = tmp_path / "cxmon.yaml"
    res = _import(str(DATA / "s3_csv_metric_set.json"), str(DATA / "rds_metric_set.json"),
                  "--alerts", str(DATA / "alerts.json"), "-o", str(out))
    assert res.exit_code == 0, res.output
    env = {"LOOKOUT_CHECKOUT_ORDERS_DATA_DIR": str(tmp_path),
           "LOOKOUT_CONTACT_CENTRE_DB_URL": "postgresql+psycopg://u@db.example.com/support",
           "LOOKOUT_ALERT_SUPPORT_LEADS_WEBHOOK_URL": "https://hooks.example.com/sns",
           "LOOKOUT_ALERT_OPEN_TICKET_WEBHOOK_URL": "https://fn.example.com/"}
    cfg = load_config(out, env=env)
    assert sorted(cfg.sources) == ["checkout_orders", "contact_centre"]
    assert [m.name for m in cfg.metrics] == [
        "checkout_orders_orders", "checkout_orders_revenue",
        "contact_centre_contacts", "contact_centre_handle_seconds"]
    # one route per alert, not one per metric set; the filter finds its metric in set 2
    leads, ticket = cfg.alerting.route.routes
    assert leads.matchers == ['metric=~"contact_centre_contacts"', 'channel=~"phone"']
    assert ticket.receiver == "open_ticket"
    assert [m.min_severity for m in cfg.metrics] == [40, 40, 40, 40]
    # per-set notes say which set they are about
    assert "checkout-orders: MetricSource.S3SourceConfig.TemplatedPathList" in res.stderr
    assert "contact-centre: MetricSource.RDSSourceConfig.SecretManagerArn" in res.stderr
    assert "not in the converted metric set" not in res.stderr


def test_a_json_list_of_metric_sets_and_errors_name_the_set():
    sets = [_json("s3_csv_metric_set.json"), _json("rds_metric_set.json")]
    assert len(convert(sets).config["metrics"]) == 4
    del sets[1]["MetricList"][0]["AggregationFunction"]
    with pytest.raises(LookoutInputError, match=r"^metric set 2 \(contact-centre\): "
                                                r"MetricList\[0\]\.AggregationFunction"):
        convert(sets)


def test_same_metric_set_name_twice_gets_two_sources():
    ms = _json("rds_metric_set.json")
    conv = convert([ms, copy.deepcopy(ms)])
    assert list(conv.config["sources"]) == ["contact_centre", "contact_centre_2"]
    assert len({m["name"] for m in conv.config["metrics"]}) == 4


def test_an_unreadable_source_skips_only_its_metric_set():
    athena = _json("rds_metric_set.json") | {"MetricSetName": "lake",
                                             "MetricSource": {"AthenaSourceConfig": {}}}
    conv = convert([athena, _json("s3_csv_metric_set.json")])
    assert list(conv.config["sources"]) == ["checkout_orders"]
    assert any(n.setting == "lake: MetricSource.AthenaSourceConfig" for n in conv.notes)


@pytest.mark.parametrize(("doc", "hint"), [
    ({"MetricSetSummaryList": [{"MetricSetName": "x"}]}, "describe-metric-set --metric-set-arn"),
    ({"AnomalyGroupSummaryList": []}, "--anomaly-groups"),
])
def test_list_outputs_given_as_a_metric_set_say_what_to_pass(tmp_path, doc, hint):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc))
    res = _import(str(path))
    assert res.exit_code == 2
    assert hint in res.stderr


def test_metrics_read_their_detectors_warm_up_back_so_validate_has_no_warning():
    from monitor.cli_validate import short_histories

    conv = convert(_json("rds_metric_set.json"))
    assert {m["history"] for m in conv.config["metrics"]} == {"1w"}
    cfg = parse_config(render_yaml(conv), {"LOOKOUT_CONTACT_CENTRE_DB_URL": "sqlite://"})
    assert short_histories(cfg) == []
    assert any(n.setting == "history" for n in conv.notes)


_GROUPS = {"AnomalyGroupSummaryList": [
    {"AnomalyGroupId": "g-1", "StartTime": "2023-01-10T09:00:00", "EndTime": "2023-01-10T10:00:00",
     "AnomalyGroupScore": 81.5, "PrimaryMetricName": "contacts"},
    {"AnomalyGroupId": "g-2", "StartTime": "2023-01-11T09:00:00Z",
     "EndTime": "2023-01-11T09:00:00Z", "AnomalyGroupScore": 40, "PrimaryMetricName": "gone"},
], "AnomalyGroupStatistics": {"TotalCount": 2}}


def test_anomaly_groups_become_a_backtest_incidents_csv(tmp_path):
    from monitor.backtest_incidents import parse_incidents

    conv = convert(_json("rds_metric_set.json"))
    text, notes = incidents_csv(_GROUPS, conv)
    (inc,) = parse_incidents(text, {m["name"] for m in conv.config["metrics"]})
    assert (inc.metric, inc.name) == ("contact_centre_contacts", "lookout g-1 score 81.5")
    # EndTime is the last anomalous bucket's start: the incident runs to its end (PT10M)
    assert (inc.start, inc.end) == (datetime(2023, 1, 10, 9, tzinfo=UTC),
                                    datetime(2023, 1, 10, 10, 10, tzinfo=UTC))
    assert any("gone" in n.message and n.kind == "unsupported" for n in notes)


def test_get_anomaly_group_gives_the_top_contributing_slice_as_labels():
    from monitor.backtest_incidents import parse_incidents

    group = {"AnomalyGroup": dict(_GROUPS["AnomalyGroupSummaryList"][0], MetricLevelImpactList=[
        {"MetricName": "contacts", "NumTimeSeries": 4, "ContributionMatrix": {
            "DimensionContributionList": [
                {"DimensionName": "Queue-Name", "DimensionValueContributionList": [
                    {"DimensionValue": "billing", "ContributionScore": 90},
                    {"DimensionValue": "sales", "ContributionScore": 10}]},
                {"DimensionName": "channel", "DimensionValueContributionList": [
                    {"DimensionValue": "phone", "ContributionScore": 30}]}]}}])}
    conv = convert(_json("rds_metric_set.json"))
    text, _ = incidents_csv([group], conv)
    (inc,) = parse_incidents(text, {m["name"] for m in conv.config["metrics"]})
    # the sanitized dimension name; channel contributed too little to single out a value
    assert inc.labels == (("queue_name", "billing"),)


def test_cli_writes_the_incidents_file_and_rejects_other_documents(tmp_path):
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps(_GROUPS))
    out = tmp_path / "inc.csv"
    res = _import(str(DATA / "rds_metric_set.json"), "--anomaly-groups", str(groups),
                  "--incidents-out", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_text().splitlines()[1].startswith("2023-01-10T09:00:00Z,")
    res = _import(str(DATA / "rds_metric_set.json"), "--anomaly-groups",
                  str(DATA / "detector.json"), "--incidents-out", str(out))
    assert res.exit_code == 2
    assert "not list-anomaly-group-summaries" in res.stderr


def test_the_config_file_carries_the_to_do_items_as_comments():
    conv = convert(_json("rds_metric_set.json"), _json("alerts.json"), _json("detector.json"))
    text = render_yaml(conv)
    comments = [line for line in text.splitlines() if line.startswith("#")]
    todo = " ".join(line.lstrip("# -") for line in comments)
    for n in conv.notes:
        if n.kind in ("manual", "unsupported"):
            assert f"{n.kind}: {n.setting}:" in todo
    assert "mapped:" not in todo  # decisions stay in the report, not the file
    assert max(len(line) for line in comments if line.startswith("# -")) <= 100
    assert yaml.safe_load(text) == conv.config


def test_the_readme_migration_guide_covers_every_option_of_the_command():
    import re

    import typer.main

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    guide = readme.split("## Moving from Lookout for Metrics", 1)[1].split("\n## ", 1)[0]
    cmd = typer.main.get_command(app).commands["import"].commands["lookout"]
    options = {o for p in cmd.params for o in p.opts if o.startswith("--")} - {"--help"}
    assert options == {"--alerts", "--detector", "--anomaly-groups", "--incidents-out",
                       "--output"}
    missing = {o for o in options if o not in guide and o != "--output"}
    assert not missing, f"README's migration guide does not mention {missing}"
    assert "-o cxmon.yaml" in guide
    assert re.search(r"import lookout ms-\*\.json", guide)  # several metric sets at once


def test_a_metric_set_without_timestamp_column_reads_timestamp_and_says_so():
    ms = _json("rds_metric_set.json")
    del ms["TimestampColumn"]
    conv = convert(ms)
    assert {m["timestamp"] for m in conv.config["metrics"]} == {"timestamp"}
    assert any(n.setting == "TimestampColumn" and n.kind == "manual" for n in conv.notes)
    ms["TimestampColumn"] = {"ColumnFormat": "yyyy-MM-dd"}  # present but no ColumnName
    with pytest.raises(LookoutInputError, match=r"TimestampColumn\.ColumnName"):
        convert(ms)


def test_an_output_that_cannot_be_written_is_one_line_and_exit_1(tmp_path):
    """A directory (or a read-only path) given as --output: one line naming it, not a
    traceback, and no half-written config elsewhere."""
    res = _import(str(DATA / "s3_csv_metric_set.json"), "--output", str(tmp_path))
    assert res.exit_code == 1
    assert f"error: cannot write {tmp_path}" in res.output
    assert "Traceback" not in res.output


def test_s3_metric_set_timezone_becomes_the_files_sources_timezone(tmp_path):
    """Lookout reads the files' naive timestamps in the metric set's Timezone: the generated
    files source does too, so a Berlin 11:00 row lands in the 10:00 UTC bucket, not 11:00."""
    ms = _json("s3_csv_metric_set.json")
    ms["Timezone"] = "Europe/Berlin"
    conv = convert(ms)
    source = conv.config["sources"]["checkout_orders"]
    assert source["timezone"] == "Europe/Berlin"
    zone_notes = [n for n in conv.notes if n.setting == "Timezone"]
    assert [n.kind for n in zone_notes] == ["mapped"]
    assert "timezone: Europe/Berlin" in zone_notes[0].message

    from sources.files import FilesSource, FilesSourceConfig

    folder = tmp_path / "ecommerce" / "live" / "20260301" / "1000"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_text("platform,marketplace,timestamp,orders,revenue\n"
                                       "web,us,2026-03-01 11:00:00,3,120.5\n"
                                       "web,us,2026-03-01 10:30:00,2,80.0\n")
    cfg = FilesSourceConfig(**{**source, "base_dir": str(tmp_path)})
    rows = FilesSource("checkout_orders", cfg).fetch(PollRequest(
        "checkout_orders_orders", datetime(2026, 3, 1, 10, tzinfo=UTC),
        datetime(2026, 3, 1, 11, tzinfo=UTC)))
    assert rows["orders"].tolist() == [3]
    assert rows["timestamp"].tolist() == [pd.Timestamp("2026-03-01 10:00", tz="UTC")]


@pytest.mark.parametrize(("zone", "kind", "set_zone"), [
    ("UTC", None, False), ("Europe/Berlinn", "manual", False)])
def test_s3_metric_set_utc_or_unknown_timezone(zone, kind, set_zone):
    """UTC needs nothing; a zone this machine does not know stays a manual note (the config
    would not load with it) naming the option to set."""
    ms = _json("s3_csv_metric_set.json")
    ms["Timezone"] = zone
    conv = convert(ms)
    assert ("timezone" in conv.config["sources"]["checkout_orders"]) is set_zone
    notes = [n for n in conv.notes if n.setting == "Timezone"]
    assert [n.kind for n in notes] == ([kind] if kind else [])
    if kind:
        assert "timezone:" in notes[0].message


def test_a_day_first_column_format_sets_the_files_sources_date_order(tmp_path):
    """Lookout's ColumnFormat dd/MM/yyyy said how to read 04/05/2026 (4 May); the files
    source would otherwise skip such rows as ambiguous_date."""
    ms = _json("s3_csv_metric_set.json")
    ms["TimestampColumn"] = {"ColumnName": "timestamp", "ColumnFormat": "dd/MM/yyyy HH:mm"}
    conv = convert(ms)
    (source,) = conv.config["sources"].values()
    assert source["date_order"] == "dmy"
    note = next(n for n in conv.notes if n.setting == "TimestampColumn.ColumnFormat")
    assert note.kind == "mapped" and "day first (date_order: dmy)" in note.message
    # an ISO pattern needs nothing; a SQL source parses dates in the database
    assert "date_order" not in next(iter(convert(_json("s3_csv_metric_set.json"))
                                         .config["sources"].values()))
    rds = _json("rds_metric_set.json")
    rds["TimestampColumn"]["ColumnFormat"] = "dd/MM/yyyy HH:mm"
    assert all("date_order" not in s for s in convert(rds).config["sources"].values())


def test_the_next_step_asks_only_for_the_variables_that_must_be_set(tmp_path):
    """An S3 set's data folder variable is optional (unset, the bucket is read): the last
    line must not tell the user to set it."""
    res = _import(str(DATA / "s3_csv_metric_set.json"), "--output", str(tmp_path / "c.yaml"))
    assert res.exit_code == 0, res.output
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("next: run cxmon validate --poll -c "), last
    assert "LOOKOUT_CHECKOUT_ORDERS_DATA_DIR" not in last
