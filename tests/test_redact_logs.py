"""Secrets in receiver URLs never reach the log, whoever logs them."""

from __future__ import annotations

import logging

import pytest

from monitor.cli import _setup_logging


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])


def test_http_client_request_lines_are_not_logged(capsys: pytest.CaptureFixture[str]) -> None:
    _setup_logging("debug")
    logging.getLogger("httpx").info('HTTP Request: POST http://h/cx?token=s3cr3t "HTTP/1.0 400"')
    assert "s3cr3t" not in capsys.readouterr().err


def test_any_logged_url_secret_is_scrubbed(capsys: pytest.CaptureFixture[str]) -> None:
    _setup_logging("info")
    log = logging.getLogger("somelib")
    log.warning("retrying %s", "http://h/cx?api_key=s3cr3t&page=2")
    log.warning("posting to https://hooks.slack.com/services/T0/B1/s3cr3t")
    log.warning("db at postgresql://bob:s3cr3t@db/x")
    err = capsys.readouterr().err
    assert "s3cr3t" not in err
    assert "api_key=***" in err and "page=2" in err and "bob:***@db" in err


def test_json_log_format_is_one_scrubbed_object_per_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--log-format json` (or CXMON_LOG_FORMAT=json under systemd): log shippers get fields,
    not a line to parse, and the same scrubbing applies, tracebacks included."""
    import json

    _setup_logging("info", "json")
    log = logging.getLogger("alerts.outbox")
    log.info("too chatty for warning")
    log.debug("not at info")
    log.warning("notification %d to %s failed", 7, "http://h/cx?token=s3cr3t")
    try:
        raise RuntimeError("posting to http://h/cx?token=s3cr3t")
    except RuntimeError:
        log.exception("a notifier bug")
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["level"], r["logger"]) for r in records] == [
        ("INFO", "alerts.outbox"), ("WARNING", "alerts.outbox"), ("ERROR", "alerts.outbox")]
    assert records[1]["message"] == "notification 7 to http://h/cx?token=*** failed"
    assert records[0]["time"].endswith("Z") and "T" in records[0]["time"]
    assert "RuntimeError" in records[2]["exception"]
    assert "s3cr3t" not in "\n".join(lines)


def test_run_and_deliver_take_the_log_format_from_the_environment() -> None:
    """systemd's EnvironmentFile can set it; a wrong value is a usage error (exit 2)."""
    from typer.testing import CliRunner

    from monitor.cli import app

    runner = CliRunner()
    for args in (["run"], ["alerts", "deliver"], ["serve-feedback"]):
        bad = runner.invoke(app, [*args, "-c", "missing.yaml"],
                            env={"CXMON_LOG_FORMAT": "xml"})
        assert bad.exit_code == 2 and "xml" in bad.output, bad.output
