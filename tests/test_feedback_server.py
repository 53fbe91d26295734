"""Slack feedback buttons: signed requests are recorded; forged, tampered, stale or replayed
ones are refused with 401 and leave no trace in the store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa

from alerts.feedback_server import FeedbackApp, FeedbackServer, slack_signature
from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.store import Store
from tests.test_store import make_anomaly, make_series

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def anomaly_ids(store: Store) -> list[str]:
    series = make_series(2)
    anomalies = [make_anomaly(series[0], NOW), make_anomaly(series[1], NOW)]
    with store.transaction() as tx:
        tx.ensure_series(series)
        tx.add_anomalies(anomalies)
    return [a.id for a in anomalies]


@pytest.fixture
def server(store: Store, clock: FakeClock) -> Iterator[FeedbackServer]:
    with FeedbackServer(FeedbackApp(store, SECRET, clock=clock)) as srv:
        yield srv


def body_for(action_id: str, ids: list[str], user: str = "ana") -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": "U123", "username": user},
        "actions": [{"action_id": action_id, "type": "button",
                     "value": json.dumps({"incident": "journey=checkout@x", "anomalies": ids})}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def post(server: FeedbackServer, body: bytes, *, secret: str = SECRET,
         at: datetime = NOW, signature: str | None = None) -> httpx.Response:
    ts = str(int(at.timestamp()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature or slack_signature(secret, ts, body),
    }
    return httpx.post(server.url, content=body, headers=headers)


def feedback_rows(store: Store) -> list[dict]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(
            'SELECT anomaly_id, label, source, "user", note FROM feedback ORDER BY id'))
        return [dict(r._mapping) for r in rows]


def test_a_signed_click_records_feedback_for_every_anomaly_of_the_incident(
    server: FeedbackServer, store: Store, anomaly_ids: list[str]
) -> None:
    resp = post(server, body_for("cxmon_not_anomaly", anomaly_ids))
    assert resp.status_code == 200
    assert feedback_rows(store) == [
        {"anomaly_id": aid, "label": "not_anomaly", "source": "slack", "user": "ana",
         "note": "incident journey=checkout@x"} for aid in anomaly_ids
    ]
    assert post(server, body_for("cxmon_ack", anomaly_ids[:1]), at=NOW - timedelta(seconds=299)
                ).status_code == 200
    assert post(server, body_for("cxmon_expected", anomaly_ids[1:])).status_code == 200
    assert [r["label"] for r in feedback_rows(store)][2:] == ["acknowledged", "expected"]


def test_forged_tampered_stale_and_replayed_requests_are_refused_and_not_recorded(
    server: FeedbackServer, store: Store, anomaly_ids: list[str]
) -> None:
    body = body_for("cxmon_not_anomaly", anomaly_ids)
    assert post(server, body, secret="not-the-signing-secret").status_code == 401  # forged
    signed_for_other = slack_signature(SECRET, str(int(NOW.timestamp())),
                                       body_for("cxmon_ack", anomaly_ids))
    assert post(server, body, signature=signed_for_other).status_code == 401  # tampered
    assert post(server, body, at=NOW - timedelta(minutes=5, seconds=1)).status_code == 401
    assert post(server, body, at=NOW + timedelta(minutes=6)).status_code == 401  # future
    no_headers = httpx.post(server.url, content=body)
    assert no_headers.status_code == 401
    assert feedback_rows(store) == []

    assert post(server, body).status_code == 200
    assert post(server, body).status_code == 401  # the same request again: a replay
    assert len(feedback_rows(store)) == len(anomaly_ids)


def test_other_paths_methods_and_bodies(server: FeedbackServer, store: Store,
                                        anomaly_ids: list[str]) -> None:
    assert httpx.get(server.url).status_code == 405
    assert httpx.post(server.url.replace("/slack/actions", "/other")).status_code == 404
    garbage = b"payload=not-json"
    assert post(server, garbage).status_code == 400
    link_click = body_for("cxmon_grafana", anomaly_ids)  # a link button: nothing to record
    assert post(server, link_click).status_code == 200
    unknown = body_for("cxmon_ack", ["f" * 32])  # an anomaly the store does not know
    assert post(server, unknown).status_code == 200
    assert feedback_rows(store) == []


def test_feedback_config_keeps_the_signing_secret_secret() -> None:
    cfg = parse_config("""
sources: {shop: {type: demo}}
metrics: [{name: m, source: shop, query: complaints, value: complaints}]
alerting:
  receivers: [{name: console, console: {}}]
  feedback: {signing_secret: "${SLACK_SIGNING_SECRET}", listen: "0.0.0.0:8787"}
""", env={"SLACK_SIGNING_SECRET": SECRET})
    fb = cfg.alerting.feedback
    assert fb is not None and fb.port == 8787 and fb.host == "0.0.0.0"
    assert fb.signing_secret.get_secret_value() == SECRET
    assert SECRET not in repr(cfg) and SECRET not in str(cfg.model_dump())


def test_serve_feedback_needs_the_feedback_config(tmp_path) -> None:
    from typer.testing import CliRunner

    from monitor.cli import app

    config = tmp_path / "cxmon.yaml"
    config.write_text("sources: {shop: {type: demo}}\n"
                      "metrics: [{name: m, source: shop, query: complaints, value: complaints}]\n")
    result = CliRunner().invoke(app, ["serve-feedback", "-c", str(config)])
    assert result.exit_code == 2 and "alerting.feedback is not configured" in result.output


@pytest.mark.parametrize("payload", [
    {"type": "block_actions", "user": "ana", "actions": [{"action_id": "cxmon_ack",
                                                          "value": "[1]"}]},
    {"type": "block_actions", "user": {"id": "U1"}, "actions": ["cxmon_ack"]},
    {"type": "block_actions", "actions": {"action_id": "cxmon_ack"}},
    {"type": "block_actions", "actions": [{"action_id": "cxmon_ack",
                                           "value": '{"anomalies": "abc"}'}]},
])
def test_a_signed_payload_of_an_unexpected_shape_records_nothing_and_is_no_500(
    server: FeedbackServer, store: Store, anomaly_ids: list[str], payload: dict
) -> None:
    """A string ``user`` or a list ``value`` raised AttributeError: a 500 and a traceback."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    assert post(server, body).status_code == 200
    assert feedback_rows(store) == []


def test_a_nan_timestamp_is_refused(store: Store, clock: FakeClock,
                                    anomaly_ids: list[str]) -> None:
    """``nan`` passed the 5-minute check (every comparison with NaN is false) and fell out of
    the replay cache at once, so the same signed request was accepted again and again."""
    app = FeedbackApp(store, SECRET, clock=clock)
    body = body_for("cxmon_not_anomaly", anomaly_ids)
    headers = {"X-Slack-Request-Timestamp": "nan",
               "X-Slack-Signature": slack_signature(SECRET, "nan", body)}
    assert app.handle("POST", "/slack/actions", headers, body).status == 401
    assert feedback_rows(store) == []


def test_a_click_records_feedback_for_the_anomalies_not_in_the_button_value(
    server: FeedbackServer, store: Store
) -> None:
    """The button's value holds the first message's anomalies (at most 20, as fit 2,000
    characters); the incident's later ones, told in thread updates without buttons, got no
    feedback, and their series kept alerting after "Not an anomaly"."""
    series = make_series(25)
    anomalies = [make_anomaly(s, NOW - timedelta(hours=i % 3)) for i, s in enumerate(series)]
    other = make_anomaly(make_series(1, metric="csat")[0], NOW)  # another incident's
    key = "journey=checkout@2026-01-05T10:00Z"
    with store.transaction() as tx:
        tx.ensure_series([*series, *make_series(1, metric="csat")])
        tx.add_anomalies([*anomalies, other])
        incident = tx.open_incident(key, journey="checkout", severity=80, at=NOW, summary={})
        tx.link_anomalies(incident, [a.id for a in anomalies])
    payload = {"type": "block_actions", "user": {"id": "U123", "username": "ana"},
               "actions": [{"action_id": "cxmon_not_anomaly", "type": "button", "value":
                            json.dumps({"incident": key, "anomalies": [anomalies[0].id]})}]}
    assert post(server, urlencode({"payload": json.dumps(payload)}).encode()).status_code == 200
    rows = feedback_rows(store)
    assert sorted(r["anomaly_id"] for r in rows) == sorted(a.id for a in anomalies)
    assert {r["label"] for r in rows} == {"not_anomaly"}


def test_a_feedback_port_in_use_is_one_clear_error_not_a_traceback(tmp_path) -> None:
    """``serve-feedback`` (and ``cxmon run``) ended in an OSError traceback when another
    process held ``alerting.feedback.listen``."""
    import socket

    from typer.testing import CliRunner

    from monitor.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        Store.open(f"sqlite:///{tmp_path / 's.db'}").close()
        config = tmp_path / "cxmon.yaml"
        config.write_text(
            f"store: sqlite:///{tmp_path / 's.db'}\n"
            "sources: {shop: {type: demo}}\n"
            "metrics: [{name: m, source: shop, query: complaints, value: complaints}]\n"
            "alerting: {feedback: {signing_secret: s3cr3t, "
            f"listen: '127.0.0.1:{port}'}}}}\n")
        result = CliRunner().invoke(app, ["serve-feedback", "-c", str(config)],
                                    env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    text = " ".join(result.output.split())
    assert f"alerting.feedback.listen: cannot listen on 127.0.0.1:{port}" in text
    assert "s3cr3t" not in text


@pytest.mark.parametrize("length", ["abc", "-1"])
def test_a_bad_content_length_is_answered_400(server: FeedbackServer, length: str) -> None:
    """``Content-Length: abc`` dropped the connection with a ValueError traceback on stderr;
    ``-1`` read until the client hung up, holding a thread, then a BrokenPipe traceback."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(f"POST {url.path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
                     "\r\n".encode())  # no body: nothing left unread to reset the line
        reply = b""
        while chunk := sock.recv(4096):  # the whole answer: the server closes after it
            reply += chunk
    assert reply.startswith(b"HTTP/1.0 400") and reply.endswith(b"bad Content-Length")


def test_a_client_hanging_up_is_no_traceback_on_stderr(
    server: FeedbackServer, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """socketserver printed a ConnectionReset / BrokenPipe traceback to stderr whenever a
    client hung up before its answer; other handler errors now reach the log."""
    import logging

    caplog.set_level(logging.DEBUG, logger="alerts.feedback_server")
    for exc in (ConnectionResetError(104, "Connection reset by peer"), ValueError("a bug")):
        try:
            raise exc
        except Exception:
            server._httpd.handle_error(None, ("127.0.0.1", 5555))
    err = capsys.readouterr().err  # (log handlers other tests installed may write here)
    assert "Exception occurred during processing of request" not in err  # socketserver's
    assert "ConnectionResetError" not in err
    assert "hung up" in caplog.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


def _signed(body: bytes, at: datetime = NOW) -> dict[str, str]:
    ts = str(int(at.timestamp()))
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": slack_signature(SECRET, ts, body)}


def _refused(app: FeedbackApp, reason: str) -> float:
    return app.refused.labels(reason)._value.get()


def test_a_replay_after_a_restart_is_refused_and_counted(
    store_url: str, clock: FakeClock, anomaly_ids: list[str]
) -> None:
    """Seen signatures were kept in memory only: after a restart, a signed request captured
    before it was accepted again for the rest of its 5 minutes (a duplicate feedback row)."""
    body = body_for("cxmon_not_anomaly", anomaly_ids)
    before = FeedbackApp(Store.open(store_url, clock=clock), SECRET, clock=clock)
    assert before.handle("POST", "/slack/actions", _signed(body), body).status == 200
    before.store.close()

    clock.advance(timedelta(minutes=2))  # the restart; the request is still inside its window
    restarted = Store.open(store_url, clock=clock)
    after = FeedbackApp(restarted, SECRET, clock=clock)
    try:
        reply = after.handle("POST", "/slack/actions", _signed(body), body)
        assert reply.status == 401
        assert _refused(after, "replay") == 1
        assert len(feedback_rows(restarted)) == len(anomaly_ids)
    finally:
        restarted.close()


def test_two_processes_on_one_store_accept_a_request_once(
    store_url: str, clock: FakeClock, anomaly_ids: list[str]
) -> None:
    """Two feedback endpoints (two engines, as two processes would have) race on the same
    signed request: the store's primary key lets exactly one of them accept it."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    body = body_for("cxmon_ack", anomaly_ids[:1])
    stores = [Store.open(store_url, clock=clock) for _ in range(2)]
    apps = [FeedbackApp(s, SECRET, clock=clock) for s in stores]
    start = threading.Barrier(8)

    def click(i: int) -> int:
        start.wait()
        return apps[i % 2].handle("POST", "/slack/actions", _signed(body), body).status

    try:
        with ThreadPoolExecutor(8) as pool:
            statuses = sorted(pool.map(click, range(8)))
        assert statuses == [200] + [401] * 7
        assert sum(_refused(a, "replay") for a in apps) == 7
        assert len(feedback_rows(stores[0])) == 1
    finally:
        for s in stores:
            s.close()


def test_seen_requests_are_purged_once_past_the_window(
    store: Store, clock: FakeClock, anomaly_ids: list[str]
) -> None:
    """The seen-request table holds one window of requests, not every click ever made."""
    app = FeedbackApp(store, SECRET, clock=clock)
    first = body_for("cxmon_ack", anomaly_ids[:1])
    assert app.handle("POST", "/slack/actions", _signed(first), first).status == 200
    clock.advance(timedelta(minutes=11))  # kept for twice the window (clock skew)
    second = body_for("cxmon_expected", anomaly_ids[1:])
    forged = {**_signed(second, clock.now()), "X-Slack-Signature": "v0=" + "0" * 64}
    assert app.handle("POST", "/slack/actions", forged, second).status == 401
    assert app.handle("POST", "/slack/actions", _signed(second, clock.now()),
                      second).status == 200
    with store.engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT request_ts FROM feedback_requests")).scalars().all()
    assert len(kept) == 1  # the first request's row went with the second one's insert
    assert _refused(app, "bad_signature") == 1
    # and the first request, replayed now, is refused as stale, not accepted
    assert app.handle("POST", "/slack/actions", _signed(first), first).status == 401
    assert _refused(app, "stale") == 1


def _click_payload(action_id: str, key: str, ids: list[str], response_url: str | None) -> bytes:
    payload: dict = {"type": "block_actions", "user": {"id": "U123", "username": "ana"},
                     "actions": [{"action_id": action_id, "type": "button", "value":
                                  json.dumps({"incident": key, "anomalies": ids})}]}
    if response_url:
        payload["response_url"] = response_url
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_a_click_is_answered_in_slack_through_its_response_url(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack shows nothing after a click: the acknowledgement is posted in the channel (the
    team sees who took it), a verdict only to the clicker, and a failing response_url is
    logged without the URL while the click stays recorded."""
    from alerts.feedback_reply import send_reply
    from tests.fakes.server import FakeServer, Response

    series = make_series(2)
    anomalies = [make_anomaly(s, NOW) for s in series]
    key = "journey=checkout@2026-01-05T12:00Z"
    with store.transaction() as tx:
        tx.ensure_series(series)
        tx.add_anomalies(anomalies)
        incident = tx.open_incident(key, journey="checkout", severity=60, at=NOW, summary={})
        tx.link_anomalies(incident, [a.id for a in anomalies])
    got: list[dict] = []
    with FakeServer() as slack:
        slack.route("POST", "/actions/T1/secret-token", lambda r: (got.append(r.json()),
                                                                   Response(200, "ok"))[1])
        url = slack.url + "/actions/T1/secret-token"
        with FeedbackServer(FeedbackApp(store, SECRET, clock=clock, responder=send_reply,
                                        reply_prefix=slack.url + "/actions/")) as srv:
            assert post(srv, _click_payload("cxmon_ack", key, [], url)).status_code == 200
            assert post(srv, _click_payload("cxmon_not_anomaly", key, [], url)
                        ).status_code == 200
            assert post(srv, _click_payload("cxmon_expected", key, [], None)).status_code == 200
            slack.fail(500, times=3)
            caplog.clear()
            assert post(srv, _click_payload("cxmon_expected", key, [anomalies[0].id], url)
                        ).status_code == 200
    ack, verdict = got
    assert ack == {"response_type": "in_channel", "replace_original": False, "text":
                   ":white_check_mark: Acknowledged by ana: no more reminders for this incident"
                   " until it gets worse (a higher severity level or new series) or resolves."}
    assert verdict["response_type"] == "ephemeral" and verdict["replace_original"] is False
    assert verdict["text"] == ("Recorded 2 anomalies of this incident as a false alarm: for 7 "
                               "days cxmon alerts on these series only for a deviation about "
                               "ten times rarer. Dismissed: the incident is closed, and whoever "
                               "was told of it (PagerDuty, this thread, webhooks) gets its "
                               "resolution.")
    (closed,) = store.incidents()  # closed, even with nobody told of it yet
    assert (closed["status"], closed["summary"]["dismissed"]["by"]) == ("resolved", "ana")
    assert len(got) == 2  # no response_url: nothing posted; the failing one: nothing taken
    assert "refused the reply (HTTP 500)" in caplog.text and "secret-token" not in caplog.text
    assert [r["label"] for r in feedback_rows(store)].count("expected") == 4  # all recorded


def test_an_acknowledge_on_a_resolved_incident_says_there_is_nothing_to_stop() -> None:
    from alerts.feedback_reply import reply_for

    text = reply_for("acknowledged", recorded=1, user="ana", acked=False)["text"]
    assert "1 anomaly marked" in text and "no longer open" in text
    assert reply_for("expected", recorded=0, user=None)["text"].startswith("Nothing recorded")


def test_replies_go_only_to_slacks_response_urls(store: Store, clock: FakeClock,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A signed click whose response_url points elsewhere (an internal address, a metadata
    endpoint) is recorded, but nothing is posted there."""
    from alerts.feedback_server import SLACK_RESPONSE_PREFIX

    posted: list[str] = []
    app = FeedbackApp(store, SECRET, clock=clock, responder=lambda url, m: posted.append(url))
    key = "journey=checkout@2026-01-05T12:00Z"
    with store.transaction() as tx:
        tx.open_incident(key, journey="checkout", severity=60, at=NOW, summary={})
    for url in ("http://169.254.169.254/latest/meta-data/", "https://hooks.slack.com.evil/x",
                SLACK_RESPONSE_PREFIX + "actions/T1/B2/token"):
        body = _click_payload("cxmon_ack", key, [], url)
        assert app.handle("POST", "/slack/actions", _signed(body), body).status == 200
    assert posted == [SLACK_RESPONSE_PREFIX + "actions/T1/B2/token"]
    assert "response_url is not under https://hooks.slack.com/" in caplog.text
