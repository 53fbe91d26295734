"""``files`` source on S3 (``s3://bucket/...``), against a real S3 API: moto's server.

The server speaks S3's HTTP protocol on a local port; s3fs and botocore talk to it exactly as
to AWS (listing, HEAD, GET, signatures), so what is tested is the real client path."""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

from monitor.cli import app  # noqa: E402
from monitor.config import parse_config  # noqa: E402
from monitor.errors import ConfigError  # noqa: E402
from sources.base import MissingSourceError, PollRequest, RetriableSourceError  # noqa: E402
from sources.files import FilesSource, FilesSourceConfig  # noqa: E402

SECRET = "s3cr3t-Value-9f2"
T0 = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(endpoint: str, request: pytest.FixtureRequest) -> Iterator[tuple[str, object]]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key=SECRET)
    name = f"cx-{request.node.name.replace('_', '-')[:40].lower()}"
    s3.create_bucket(Bucket=name)
    yield name, s3
    for obj in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=obj["Key"])
    s3.delete_bucket(Bucket=name)


def options(endpoint: str) -> dict[str, object]:
    return {"endpoint_url": endpoint, "key": "testing", "secret": SECRET,
            "client_kwargs": {"region_name": "us-east-1"}}


def csv(hours: range, contacts: int = 5) -> bytes:
    rows = [f"{(T0 + pd.Timedelta(hours=h)).isoformat()},{contacts + h}" for h in hours]
    return ("hour,contacts\n" + "\n".join(rows) + "\n").encode()


def source(endpoint: str, path: str, **extra: object) -> FilesSource:
    cfg = FilesSourceConfig.model_validate({"type": "files", "path": path,
                                            "storage_options": options(endpoint), **extra})
    return FilesSource("exports", cfg)


def request(hours: int = 48, query: str | None = None) -> PollRequest:
    return PollRequest(metric="contacts", query=query, since=T0,
                       until=T0 + pd.Timedelta(hours=hours), timestamp_column="hour")


def test_reads_csv_and_parquet_objects_and_sees_new_ones_at_the_next_poll(
        endpoint: str, bucket: tuple[str, object]) -> None:
    name, s3 = bucket
    s3.put_object(Bucket=name, Key="exports/day1.csv", Body=csv(range(0, 24)))
    buf = io.BytesIO()
    pd.DataFrame({"hour": [(T0 + pd.Timedelta(hours=30)).isoformat()],
                  "contacts": [99]}).to_parquet(buf)
    s3.put_object(Bucket=name, Key="exports/extra.parquet", Body=buf.getvalue())
    src = source(endpoint, f"s3://{name}/exports/*")
    first = src.fetch(request())
    assert len(first) == 25 and first["contacts"].max() == 99
    # an object written after the first listing is found by the next poll (no stale cache)
    s3.put_object(Bucket=name, Key="exports/day2.csv", Body=csv(range(24, 28)))
    assert len(src.fetch(request())) == 29
    # a changed object is read again (new ETag), an unchanged one comes from the cache
    s3.put_object(Bucket=name, Key="exports/day2.csv", Body=csv(range(24, 26), contacts=1000))
    again = src.fetch(request())
    assert len(again) == 27 and again["contacts"].max() == 1025


def test_base_dir_url_and_a_metric_glob_relative_to_it(
        endpoint: str, bucket: tuple[str, object]) -> None:
    name, s3 = bucket
    s3.put_object(Bucket=name, Key="cx/surveys/a.csv", Body=csv(range(0, 3)))
    s3.put_object(Bucket=name, Key="cx/contacts/b.csv", Body=csv(range(0, 5)))
    src = source(endpoint, "contacts/*.csv", base_dir=f"s3://{name}/cx")
    assert len(src.fetch(request())) == 5
    assert len(src.fetch(request(query="surveys/*.csv"))) == 3


def test_no_object_yet_waits_like_an_empty_drop_folder(
        endpoint: str, bucket: tuple[str, object]) -> None:
    name, _ = bucket
    with pytest.raises(MissingSourceError, match=f"no file matches s3://{name}/exports/"):
        source(endpoint, f"s3://{name}/exports/*.csv").fetch(request())
    # a bucket that is not there matches nothing, and the error says it is the bucket
    with pytest.raises(MissingSourceError, match="bucket 'no-such-bucket-cx' does not exist"):
        source(endpoint, "s3://no-such-bucket-cx/x/*.csv").fetch(request())
    with pytest.raises(MissingSourceError) as err:  # the bucket is there: no such claim
        source(endpoint, f"s3://{name}/exports/*.csv").fetch(request())
    assert "bucket" not in str(err.value)


def test_an_unreachable_endpoint_is_retriable_and_never_shows_the_secret() -> None:
    cfg = FilesSourceConfig.model_validate({
        "type": "files", "path": "s3://bucket/exports/*.csv",
        "storage_options": {"endpoint_url": "http://127.0.0.1:9", "key": "testing",
                            "secret": SECRET,
                            "config_kwargs": {"retries": {"max_attempts": 1},
                                              "connect_timeout": 2}}})
    with pytest.raises(RetriableSourceError) as err:
        FilesSource("exports", cfg).fetch(request())
    assert "cannot read s3://bucket/exports/*.csv" in str(err.value)
    assert SECRET not in str(err.value)


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None,
                    reason="gcsfs is installed here: no missing package to name")
def test_config_names_a_missing_package_and_misplaced_storage_options() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("sources:\n  gcs: {type: files, path: 'gs://b/x/*.csv'}\n"
                     "  local: {type: files, path: x.csv, storage_options: {anon: true}}\n"
                     "metrics: [{name: m, source: gcs, interval: 1h, timestamp: t, value: v}]\n",
                     env={})
    shown = [str(p) for p in err.value.problems]
    assert any(s.startswith("sources.gcs.path") and "gs:// paths need gcsfs" in s
               and "(pip install gcsfs)" in s for s in shown), shown
    assert any(s.startswith("sources.local.storage_options: storage_options apply to a URL "
                            "path") and "remove storage_options, or make path" in s
               for s in shown), shown


def test_cxmon_run_once_polls_the_bucket(endpoint: str, bucket: tuple[str, object],
                                         tmp_path: Path) -> None:
    name, s3 = bucket
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - pd.Timedelta(
        hours=30)
    rows = [f"{(start + pd.Timedelta(hours=h)).isoformat()},{5 + h % 3}" for h in range(30)]
    s3.put_object(Bucket=name, Key="exports/day1.csv",
                  Body=("hour,contacts\n" + "\n".join(rows) + "\n").encode())
    config = tmp_path / "cxmon.yaml"
    config.write_text(f"""\
store: sqlite:///{tmp_path / 's.db'}
sources:
  exports:
    type: files
    path: s3://{name}/exports/*.csv
    storage_options: {{endpoint_url: "{endpoint}", key: testing, secret: "${{S3_SECRET}}",
                      client_kwargs: {{region_name: us-east-1}}}}
metrics:
  - name: contacts
    source: exports
    interval: 1h
    history: 2d
    timestamp: hour
    value: contacts
""")
    env = {"S3_SECRET": SECRET, "COLUMNS": "200"}
    checked = CliRunner().invoke(app, ["validate", "-c", str(config), "--poll"], env=env)
    assert checked.exit_code == 0, checked.output
    assert "✓ contacts (exports" in checked.output and SECRET not in checked.output
    ran = CliRunner().invoke(app, ["run", "-c", str(config), "--once"], env=env)
    assert ran.exit_code == 0, ran.output
    from monitor.store import Store

    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        assert store.get_cursor("contacts") is not None
        tick = store.ticks()[0]
        assert tick["error"] is None and tick["rows_in"] >= 29


def test_a_byte_identical_copy_in_the_bucket_is_read_once(
        endpoint: str, bucket: tuple[str, object]) -> None:
    name, s3 = bucket
    s3.put_object(Bucket=name, Key="exports/day1.csv", Body=csv(range(0, 24)))
    s3.put_object(Bucket=name, Key="exports/day1 (1).csv", Body=csv(range(0, 24)))
    src = source(endpoint, f"s3://{name}/exports/*.csv")
    assert len(src.fetch(request())) == 24
    assert src.skipped["duplicate_file"] == 24


def test_validate_warns_instead_of_crashing_when_a_bucket_cannot_be_listed(
        tmp_path: Path) -> None:
    """Plain ``validate`` lists each files glob: an unreachable endpoint, missing
    credentials or a misspelt storage option is a warning naming the source, not a
    traceback."""
    config = tmp_path / "cxmon.yaml"
    config.write_text(f"""\
sources:
  down:
    type: files
    path: s3://bucket/exports/*.csv
    storage_options: {{endpoint_url: "http://127.0.0.1:9", key: testing, secret: "{SECRET}",
                      config_kwargs: {{retries: {{max_attempts: 1}}, connect_timeout: 2}}}}
  typo:
    type: files
    path: s3://bucket/exports/*.csv
    storage_options: {{endpoint: "http://127.0.0.1:9", key: testing, secret: "{SECRET}"}}
metrics:
  - {{name: a, source: down, interval: 1h, timestamp: hour, value: contacts}}
  - {{name: b, source: typo, interval: 1h, timestamp: hour, value: contacts}}
""")
    result = CliRunner().invoke(app, ["validate", "-c", str(config)], env={"COLUMNS": "300"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    assert "warning sources.down.path: cannot read s3://bucket/exports/*.csv" in result.output
    assert "warning sources.typo.path: storage_options: s3fs has no option 'endpoint' " \
           "(S3 and S3-compatible stores: endpoint_url" in result.output
    assert SECRET not in result.output


def test_validate_says_when_the_bucket_itself_is_missing(endpoint: str, tmp_path: Path) -> None:
    config = tmp_path / "cxmon.yaml"
    config.write_text(f"""\
sources:
  exports:
    type: files
    path: s3://acme-kpi/exports/*.csv
    storage_options: {{endpoint_url: "{endpoint}", key: testing, secret: "{SECRET}"}}
metrics:
  - {{name: a, source: exports, interval: 1h, timestamp: hour, value: contacts}}
""")
    result = CliRunner().invoke(app, ["validate", "-c", str(config)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert ("warning sources.exports.path: no file matches s3://acme-kpi/exports/*.csv: bucket "
            "'acme-kpi' does not exist") in result.output


def test_debug_logging_never_shows_the_key_or_session_token(
        endpoint: str, bucket: tuple[str, object], tmp_path: Path) -> None:
    """botocore logs every request's headers at DEBUG (the access key id, and a session
    token as X-Amz-Security-Token): ``--log-level debug`` must not pass them on."""
    name, s3 = bucket
    s3.put_object(Bucket=name, Key="exports/day1.csv", Body=csv(range(3)))
    key, token = "AKIAKEYIDSHOWN7", "SessionTokenValue-77x"
    config = tmp_path / "cxmon.yaml"
    config.write_text(f"""\
store: sqlite:///{tmp_path / 's.db'}
sources:
  exports:
    type: files
    path: s3://{name}/exports/*.csv
    storage_options: {{endpoint_url: "{endpoint}", key: "{key}", secret: "{SECRET}",
                      token: "{token}", client_kwargs: {{region_name: us-east-1}}}}
metrics:
  - {{name: contacts, source: exports, interval: 1h, history: 2d, timestamp: hour,
      value: contacts}}
""")
    ran = CliRunner().invoke(app, ["run", "-c", str(config), "--once", "--log-level", "debug",
                                   "--log-format", "text"], env={"COLUMNS": "200"})
    assert "contacts" in ran.output, ran.output  # the tick ran and logged
    for secret in (key, token, SECRET):
        assert secret not in ran.output


def test_a_bucket_that_refuses_head_is_not_called_missing() -> None:
    """A policy that allows listing some prefixes only answers HEAD with 403: that bucket
    exists, so the empty glob must not be blamed on its name."""
    from sources.object_store import RemoteFiles

    class Refusing:
        def __init__(self, exc: Exception) -> None:
            self.exc = exc

        def call_s3(self, method: str, **kw: object) -> None:
            raise self.exc

    remote = RemoteFiles("exports", "s3", {})
    remote._fs = Refusing(PermissionError("Forbidden"))
    assert remote.missing_bucket("s3://acme/exports/*.csv") is None
    remote._fs = Refusing(FileNotFoundError("Not Found"))
    assert remote.missing_bucket("s3://acme/exports/*.csv") == (
        "bucket 'acme' does not exist; check its name")


def test_a_team_files_bucket_source_polls_with_the_main_files_connection(
        endpoint: str, bucket: tuple[str, object], tmp_path: Path) -> None:
    """connections: in the main file holds the endpoint and credentials once; a team file's
    source names it and reads the bucket with them (nothing about credentials in the team
    file), and the secret is never shown."""
    name, s3 = bucket
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - pd.Timedelta(
        hours=6)
    rows = [f"{(start + pd.Timedelta(hours=h)).isoformat()},{5 + h}" for h in range(6)]
    s3.put_object(Bucket=name, Key="support/day1.csv",
                  Body=("hour,contacts\n" + "\n".join(rows) + "\n").encode())
    (tmp_path / "teams").mkdir()
    (tmp_path / "teams" / "support.yaml").write_text(f"""\
sources:
  support_exports: {{type: files, path: "s3://{name}/support/*.csv", connection: bucket}}
metrics:
  - {{name: contacts, source: support_exports, interval: 1h, timestamp: hour,
     value: contacts}}
""")
    config = tmp_path / "cxmon.yaml"
    config.write_text(f"""\
include: [teams/*.yaml]
store: sqlite:///{tmp_path / 's.db'}
connections:
  bucket:
    storage_options: {{endpoint_url: "{endpoint}", key: testing, secret: "${{S3_SECRET}}",
                      client_kwargs: {{region_name: us-east-1}}}}
""")
    env = {"S3_SECRET": SECRET, "COLUMNS": "200"}
    checked = CliRunner().invoke(app, ["validate", "-c", str(config), "--poll"], env=env)
    assert checked.exit_code == 0, checked.output
    # the endpoint came from the connection: without it s3fs would have asked AWS itself
    assert "✓ contacts (support_exports" in checked.output and SECRET not in checked.output


def test_validate_warns_when_the_store_refuses_the_merged_storage_options(
        tmp_path: Path) -> None:
    """A connection's ``secret`` and a source's own ``password`` (s3fs's alias of it) make
    s3fs raise a ``KeyError`` while it is built: ``validate`` warns at the source with
    s3fs's reason instead of printing a traceback, and shows no secret."""
    config = tmp_path / "cxmon.yaml"
    config.write_text(f"""\
connections:
  bucket: {{storage_options: {{endpoint_url: "http://127.0.0.1:9", key: testing,
                               secret: "{SECRET}"}}}}
sources:
  both:
    type: files
    path: s3://bucket/exports/*.csv
    connection: bucket
    storage_options: {{password: "{SECRET}x"}}
metrics:
  - {{name: a, source: both, interval: 1h, timestamp: hour, value: contacts}}
""")
    result = CliRunner().invoke(app, ["validate", "-c", str(config)], env={"COLUMNS": "300"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    assert ("warning sources.both.path: storage_options refused by s3://: Supply secret or "
            "password, not both") in result.output
    assert SECRET not in result.output
