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


def test_log_level_and_format_are_global_options(
        tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cxmon --log-level debug --log-format json validate`: any command logs at the level
    and in the format given before it, not only the long-running ones."""
    import json

    from typer.testing import CliRunner

    from monitor.cli import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text("sources:\n  shop: {type: demo}\nmetrics:\n"
                   "  - {name: kpi, source: shop, query: checkout, value: started}\n")
    res = CliRunner().invoke(app, ["--log-level", "DEBUG", "--log-format", "json", "validate",
                                   "-c", str(cfg)])
    assert res.exit_code == 0, res.output
    logging.getLogger("monitor.somewhere").debug("GET %s", "http://h/x?token=s3cr3t")
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert (record["level"], record["message"]) == ("DEBUG", "GET http://h/x?token=***")


def test_a_commands_own_log_options_win_over_the_global_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`cxmon --log-level debug run --log-level error`: the command's option wins; without
    one, the global option, then CXMON_LOG_FORMAT, then the command's default."""
    from typer.testing import CliRunner

    from monitor import cli

    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(cli, "_setup_logging", lambda level, fmt="auto": calls.append(
        (level, fmt)))
    runner = CliRunner()

    def settings(args: list[str], env: dict[str, str] | None = None) -> list[tuple[str, str]]:
        calls.clear()
        res = runner.invoke(cli.app, [*args, "-c", "missing.yaml"], env=env)
        assert res.exit_code == 2 and "config file not found" in res.output, res.output
        return list(calls)

    assert settings(["validate"]) == []  # nothing asked: Python's default, as before
    assert settings(["--log-level", "debug", "validate"]) == [("debug", "auto")]
    assert settings(["run"]) == [("info", "auto")]
    assert settings(["--log-level", "debug", "run"])[-1] == ("debug", "auto")
    assert settings(["--log-level", "debug", "run", "--log-level", "error"])[-1] == (
        "error", "auto")
    assert settings(["--log-format", "json", "alerts", "deliver"]) == [
        ("warning", "json"), ("info", "json")]
    json_env = {"CXMON_LOG_FORMAT": "json"}
    assert settings(["serve-feedback"], json_env)[-1] == ("info", "json")
    assert settings(["--log-format", "text", "run"], json_env)[-1] == ("info", "text")
    assert settings(["run", "--log-format", "text"], json_env)[-1] == ("info", "text")
    assert settings(["--log-level", "error", "validate"], json_env) == [("error", "json")]


def test_why_run_would_not_start_is_json_too(tmp_path) -> None:
    """Found deploying cxmon under systemd with CXMON_LOG_FORMAT=json: the log records were
    JSON, but the config's problems and ``store: ...`` (the lines saying why ``cxmon run``
    exits at once) were rich text a JSON log shipper could not parse."""
    import json

    from typer.testing import CliRunner

    from monitor.cli import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text("metrics: [{name: x}]\n")
    runner = CliRunner()
    res = runner.invoke(app, ["run", "-c", str(cfg)], env={"CXMON_LOG_FORMAT": "json"})
    assert res.exit_code == 2
    records = [json.loads(line) for line in res.stderr.splitlines() if line.strip()]
    assert records[0]["message"] == f"{cfg}: 3 problem(s)"
    assert {(r["level"], r["logger"]) for r in records} == {("ERROR", "monitor.cli")}
    assert "✗ metrics[0].value: missing required key 'value'" in [r["message"] for r in records]
    # the next command of the process, without json, prints as before
    res = runner.invoke(app, ["validate", "-c", str(cfg)])
    assert res.exit_code == 2 and res.stderr.startswith(f"{cfg}: 3 problem(s)\n")
