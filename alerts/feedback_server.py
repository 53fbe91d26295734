"""The HTTP endpoint for Slack's interactivity: the feedback buttons on alert messages.

Slack POSTs ``application/x-www-form-urlencoded`` ``payload=<JSON>`` to the app's
Interactivity Request URL, signed with the app's signing secret:
``X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<X-Slack-Request-Timestamp>:<raw body>">``.

A request is accepted only if the signature matches (constant-time compare), the timestamp is
within ``max_age`` (5 minutes) of now, and the same signature was not seen before (a replay
inside the window). Seen signatures live in the store (table ``feedback_requests``), so a
replay is refused after a restart and by every process sharing the store; rows older than
twice ``max_age`` are purged as new requests arrive. Anything else is answered 401, records
nothing and is counted in ``cxmon_feedback_requests_refused_total{reason}`` (``stale``,
``bad_signature``, ``replay``). That counter is also served by the endpoint itself, on
``GET /metrics`` (only the feedback endpoint's own metrics: no KPI reaches a listener Slack can
reach), so ``cxmon serve-feedback`` run alone can be scraped. Accepted
``block_actions`` for the buttons ``cxmon_ack`` / ``cxmon_not_anomaly`` / ``cxmon_expected``
record ``acknowledged`` / ``not_anomaly`` / ``expected`` feedback (source ``slack``, the
Slack user) for every anomaly id in the button's value and every anomaly of its incident in the
store (the value holds at most the first message's top 20); the detectors read it from the store.
``cxmon_ack`` also acknowledges the open incident (:mod:`alerts.acks`): no more reminders for it
until it changes materially or resolves. What a click did is posted back to Slack through the
click's ``response_url`` (:mod:`alerts.feedback_reply`).

What an unauthenticated client can do is bounded: a body over 1 MiB is refused (413) unread,
the whole request (line, headers, body) must arrive within :data:`READ_TIMEOUT` and at most
:data:`MAX_CONNECTIONS` are served at once (:mod:`monitor.bounded_http`: slow clients are
dropped, connections over the cap get an immediate 503), every
refusal is the same ``401 invalid signature`` (stale or forged: no hint of the server's clock),
and malformed input (non-ASCII signatures, JSON nested too deep) is a 4xx, never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, Counter, generate_latest

from alerts.acks import acknowledge
from alerts.blocks import FEEDBACK_ACTIONS
from alerts.dismiss import DISMISSING, dismiss_false_alarms
from alerts.feedback_reply import Responder, post_in_background, reply_for
from alerts.throttled_log import ThrottledWarnings
from monitor.bounded_http import BoundedHTTPServer, DeadlineHandler, Monotonic
from monitor.clock import Clock, SystemClock
from monitor.store import Store

__all__ = ["FeedbackApp", "FeedbackServer", "slack_signature"]

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
#: Seconds a client may take for its whole request (line, headers, body) before the
#: connection is dropped: a timeout per read let a client sending a byte just before each
#: timeout hold a server thread for ever, and enough of them exhausted the process.
READ_TIMEOUT = 10.0
#: Connections served at once; more get an immediate 503 (Slack retries a failed click).
MAX_CONNECTIONS = 32
#: Seconds between two logged warnings for the same kind of refused request.
WARN_EVERY = 60.0
#: Where the feedback endpoint serves its own metrics (unless the Slack path is this).
METRICS_PATH = "/metrics"
#: The classic text format that ``generate_latest`` writes (as the exporter's /metrics).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 request signature."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: str = ""
    content_type: str = "text/plain; charset=utf-8"


#: Where Slack's ``response_url``s live. Replies go nowhere else: whoever holds the signing
#: secret could otherwise make cxmon post to any address it can reach (an internal service,
#: a cloud metadata endpoint) from inside the network.
SLACK_RESPONSE_PREFIX = "https://hooks.slack.com/"


class FeedbackApp:
    """Verifies and records one request; no HTTP server needed (tests call :meth:`handle`)."""

    def __init__(self, store: Store, signing_secret: str, *, clock: Clock | None = None,
                 max_age: float = 300.0, path: str = "/slack/actions",
                 registry: CollectorRegistry | None = None,
                 responder: Responder | None = post_in_background,
                 serve_metrics: bool = True,
                 reply_prefix: str = SLACK_RESPONSE_PREFIX,
                 warn_every: float = WARN_EVERY) -> None:
        self.store = store
        self.serve_metrics = serve_metrics
        #: posts what a click did to its ``response_url`` (None: no reply)
        self.responder = responder
        #: only ``response_url``s under this prefix are posted to (see
        #: :data:`SLACK_RESPONSE_PREFIX`)
        self.reply_prefix = reply_prefix
        self._secret = signing_secret
        # the store's clock by default: a verdict's ``created_at`` and the dismissal it
        # causes must read one clock (a second, wall clock here stamped a dismissal hours
        # away from its verdict under an injected one)
        self.clock = clock or (store.clock if store is not None else SystemClock())
        self.max_age = max_age
        self.path = path
        self.refused = Counter(
            "cxmon_feedback_requests_refused",
            "Slack feedback requests answered 401, by reason: stale (timestamp outside "
            "max_age), bad_signature, replay (a signature already accepted).",
            ["reason"], registry=None,
        )
        self.busy = Counter(
            "cxmon_feedback_connections_busy",
            "Connections to the feedback endpoint answered 503 at once because "
            "max_connections were being served.", registry=None,
        )
        self.warnings_suppressed = Counter(
            "cxmon_feedback_warnings_suppressed",
            "Refusal warnings not logged (at most one per reason per warn_every seconds), "
            "by reason.", ["reason"], registry=None,
        )
        for reason in ("stale", "bad_signature", "replay"):  # 0, not absent, until one
            self.refused.labels(reason)
            self.warnings_suppressed.labels(reason)
        self.warnings_suppressed.labels("busy")
        #: refusals are logged at most once per reason per ``warn_every`` seconds: they come
        #: from whoever can reach the endpoint, as fast as they like
        self.warn = ThrottledWarnings(log, interval=warn_every, clock=self.clock,
                                      counter=self.warnings_suppressed)
        #: What ``GET /metrics`` on the endpoint serves: this app's metrics only, even when
        #: ``registry`` is the exporter's (``cxmon run``), whose series stay on its own port.
        self.metrics_registry = CollectorRegistry()
        for metric in (self.refused, self.busy, self.warnings_suppressed):
            self.metrics_registry.register(metric)
            if registry is not None:
                registry.register(metric)

    def __repr__(self) -> str:
        return f"FeedbackApp(path={self.path!r})"

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        route = path.split("?", 1)[0]
        if route == METRICS_PATH and route != self.path and self.serve_metrics:
            if method != "GET":
                return Reply(405, "GET only")
            return Reply(200, generate_latest(self.metrics_registry).decode(),
                         METRICS_CONTENT_TYPE)
        if route != self.path:
            return Reply(404, "not found")
        if method != "POST":
            return Reply(405, "POST only")
        h = {k.lower(): v for k, v in headers.items()}
        if not self._authentic(h.get("x-slack-request-timestamp", ""),
                               h.get("x-slack-signature", ""), body):
            return Reply(401, "invalid signature")
        try:
            payload = json.loads(parse_qs(body.decode())["payload"][-1])
        except (KeyError, ValueError, UnicodeDecodeError, RecursionError):
            # RecursionError: JSON nested thousands deep ended in a 500 and a traceback
            return Reply(400, "expected form field 'payload' with JSON")
        if not isinstance(payload, dict):
            return Reply(400, "payload must be a JSON object")
        self._record(payload)
        return Reply(200)

    def _authentic(self, timestamp: str, signature: str, body: bytes) -> bool:
        try:
            ts = float(timestamp)
        except ValueError:
            return False
        if not math.isfinite(ts):  # "nan" passed the age check and was never kept as seen
            return False
        now = self.clock.now().timestamp()
        if abs(now - ts) > self.max_age:
            self.warn("stale", "feedback: refused a request %.0f s away from now (replay?)",
                      now - ts)
            self.refused.labels("stale").inc()
            return False
        expected = slack_signature(self._secret, timestamp, body).encode()
        # bytes, not str: compare_digest raises TypeError for a str with a non-ASCII
        # character, so an unsigned request with "X-Slack-Signature: é" was a 500 + traceback
        if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
            self.warn("bad_signature", "feedback: refused a request with a bad signature")
            self.refused.labels("bad_signature").inc()
            return False
        return self._first_time(signature, ts, now)

    def _first_time(self, signature: str, ts: float, now: float) -> bool:
        """True the first time a verified signature is seen, in any process on the store.

        Why the store and not memory: a restart emptied the memory, and a request captured
        before it could be replayed for the rest of its 5 minutes. Rows whose request time is
        older than ``max_age`` can only be refused as stale by now, so they are purged here;
        twice ``max_age``, so a process whose clock runs up to ``max_age`` ahead of another's
        cannot forget a request the other would still accept.
        """
        request_ts = datetime.fromtimestamp(ts, UTC)
        cutoff = datetime.fromtimestamp(now, UTC) - timedelta(seconds=2 * self.max_age)
        if self.store.remember_feedback_request(signature, request_ts, purge_before=cutoff):
            return True
        self.warn("replay", "feedback: refused a replayed request")
        self.refused.labels("replay").inc()
        return False

    def refused_busy(self, serving: int) -> None:
        """A connection was answered 503: ``serving`` (the cap) were being served."""
        self.busy.inc()
        self.warn("busy", "feedback: refused a connection: %d already being served (a flood "
                  "of connections or of slow clients?)", serving)

    def _record(self, payload: Mapping[str, Any]) -> int:
        if payload.get("type") != "block_actions":
            return 0
        user_info = _mapping(payload.get("user"))
        user = user_info.get("username") or user_info.get("name") or user_info.get("id")
        recorded = 0
        replies = []
        actions = payload.get("actions")
        for action in actions if isinstance(actions, list) else []:
            action = _mapping(action)
            known = FEEDBACK_ACTIONS.get(str(action.get("action_id")))
            if known is None:
                continue  # link buttons (Grafana, runbook) also report clicks
            try:
                value = _mapping(json.loads(str(action.get("value") or "{}")))
            except (ValueError, RecursionError):
                continue
            incident = str(value.get("incident") or "")
            acked = None
            if known[1] == "acknowledged" and incident:
                acked = self._acknowledge(incident, user)
            before = recorded
            note = f"incident {incident}"
            ids = value.get("anomalies")
            ids = [str(i) for i in ids] if isinstance(ids, list) else []
            if incident:  # the button holds at most 20 ids; later ones came in the thread
                ids = list(dict.fromkeys([*ids, *self.store.incident_anomaly_ids(incident)]))
            for anomaly_id in ids:
                try:
                    self.store.add_feedback(str(anomaly_id), known[1], source="slack",
                                            user=user, note=note)
                    recorded += 1
                except KeyError:
                    log.warning("feedback: unknown anomaly %s", anomaly_id)
            reply = reply_for(known[1], recorded=recorded - before,
                              user=str(user) if user else None, acked=acked)
            if known[1] in DISMISSING and recorded > before and self._dismiss(ids, user):
                reply["text"] += (" Dismissed: the incident is closed, and whoever was told "
                                  "of it (PagerDuty, this thread, webhooks) gets its "
                                  "resolution.")
            replies.append(reply)
        log.info("feedback: %d record(s) from %s", recorded, user)
        url = payload.get("response_url")
        if self.responder is not None and isinstance(url, str):
            if not url.startswith(self.reply_prefix):
                log.warning("feedback: reply not sent: response_url is not under %s",
                            self.reply_prefix)
                return recorded
            for message in replies:
                self.responder(url, message)
        return recorded

    def _dismiss(self, ids: list[str], user: Any) -> bool:
        """A verdict that covers every anomaly of its open incident closes the page
        (:mod:`alerts.dismiss`); whether one was dismissed."""
        return bool(dismiss_false_alarms(self.store, ids, by=str(user or "slack"),
                                         now=self.clock.now()))

    def _acknowledge(self, incident: str, user: Any) -> bool:
        """"Acknowledge" also stops the incident's reminders (:mod:`alerts.acks`); False if
        the incident is no longer open."""
        try:
            acknowledge(self.store, incident, by=str(user or "slack"), source="slack",
                        now=self.clock.now())
        except KeyError:
            log.info("feedback: incident %s is not open; nothing to acknowledge", incident)
            return False
        return True


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else empty: a signed payload of an unexpected shape
    (a string ``user``, a list ``value``) ended in an AttributeError and a 500."""
    return value if isinstance(value, Mapping) else {}


def _content_length(value: str | None) -> int | None:
    """The body's length, or None if the header is not a length: ``abc`` raised in the
    handler (a traceback, no answer) and ``-1`` read until the client hung up."""
    text = (value or "0").strip()
    return int(text) if text.isdigit() else None


class _QuietServer(BoundedHTTPServer):
    """A client that hangs up before its answer (a timeout on Slack's side, a refused large
    body) is routine: socketserver printed a ConnectionReset / BrokenPipe traceback to stderr
    for it. Those go to the debug log; any other handler error to the log, with traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):  # hung up, or too slow to send
            log.debug("feedback: client %s hung up: %s", client_address, exc)
        else:
            log.error("feedback: error serving %s", client_address, exc_info=True)


class FeedbackServer:
    """Serves a :class:`FeedbackApp` over HTTP in a background thread."""

    def __init__(self, app: FeedbackApp, host: str = "127.0.0.1", port: int = 0, *,
                 max_connections: int = MAX_CONNECTIONS,
                 request_deadline: float | None = None,
                 monotonic: Monotonic = time.monotonic) -> None:
        self.app = app

        class _Handler(DeadlineHandler):

            def log_message(self, *args: Any) -> None:
                pass

            def _do(self) -> None:
                length = _content_length(self.headers.get("Content-Length"))
                if length is None:
                    reply = Reply(400, "bad Content-Length")
                elif length > MAX_BODY:
                    reply = Reply(413, "too large")
                else:
                    body = self.rfile.read(length) if length else b""
                    try:
                        reply = app.handle(self.command, self.path, dict(self.headers), body)
                    except Exception:
                        log.exception("feedback: request failed")
                        reply = Reply(500, "error")
                data = reply.body.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _do

        self._httpd = _QuietServer((host, port), _Handler, max_connections=max_connections,
                                   request_deadline=request_deadline or READ_TIMEOUT,
                                   monotonic=monotonic,
                                   on_busy=lambda: app.refused_busy(max_connections))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="cxmon-feedback")

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{self.app.path}"

    def start(self) -> FeedbackServer:
        self._thread.start()
        log.info("feedback endpoint listening on %s", self.url)
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FeedbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
