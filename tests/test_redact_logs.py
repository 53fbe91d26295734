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
