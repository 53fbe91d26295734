"""A local Slack Web API for tests: ``chat.postMessage``, ``chat.update``,
``conversations.history`` / ``conversations.replies`` (with message metadata) and
``auth.test``, on 127.0.0.1 with an ephemeral port. Point ``slack_sdk.WebClient(base_url=
server.api_url)`` at it.

Faults: a wrong token answers ``invalid_auth`` (HTTP 200, ``ok: false``, as Slack does);
``rate_limit(n, retry_after)`` answers the next ``n`` calls with 429 + ``Retry-After``;
``down = True`` answers 503 until set back; ``stall_on(n)`` records the n-th posted message and
then holds the response until ``release()`` (to kill a client mid-call, deterministically).
Every posted message is kept in ``messages`` (a dict per message), every edit in ``updates``.
A message beyond Slack's Block Kit limits (:func:`block_kit_problems`) is refused with
``invalid_blocks``, as Slack does, so every test that posts also checks the limits.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.server import FakeServer, Request, Response

TOKEN = "xoxb-test-token"


class SlackServer:
    """``with SlackServer() as slack: ... slack.api_url ... slack.messages``."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.http = FakeServer()
        self.messages: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.down = False
        self.lock = threading.Lock()
        self.stalled = threading.Event()
        self._release = threading.Event()
        self._stall_at: int | None = None
        self._last_ts = 0.0
        self.channels: dict[str, str] = {}
        for method, handler in {
            "chat.postMessage": self._post,
            "chat.update": self._update,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "auth.test": lambda args: {"ok": True, "team": "cxmon", "user": "cxmon-bot"},
        }.items():
            self.http.route("POST", f"/api/{method}", self._wrap(handler))

    # -- control ---------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self.http.url + "/api/"

    def rate_limit(self, times: int = 1, retry_after: int = 30) -> None:
        self.http.fail(429, times, headers={"Retry-After": str(retry_after)},
                       body={"ok": False, "error": "ratelimited"})

    def stall_on(self, n: int) -> None:
        """Hold the response to the ``n``-th ``chat.postMessage`` (1-based) until released."""
        self._stall_at = n
        self._release.clear()
        self.stalled.clear()

    def release(self) -> None:
        self._stall_at = None
        self._release.set()

    def calls(self, method: str) -> int:
        return len(self.http.requests_to(f"/api/{method}"))

    def channel_id(self, name: str) -> str:
        """The id of a channel given by #name (created on first use) or by id."""
        with self.lock:
            if name in self.channels.values():
                return name
            return self.channels.setdefault(name, f"C{len(self.channels) + 1:08d}")

    # -- API ---------------------------------------------------------------------------------------

    def _wrap(self, handler: Any) -> Any:
        def run(req: Request) -> Response:
            if self.down:
                return Response(503, "upstream connect error", {"Content-Type": "text/plain"})
            if req.headers.get("authorization") != f"Bearer {self.token}":
                return Response(200, {"ok": False, "error": "invalid_auth"})
            return Response(200, handler(_args(req)))
        return run

    def _next_ts(self) -> str:
        self._last_ts = max(time.time(), self._last_ts + 1e-6)
        return f"{self._last_ts:.6f}"

    def _post(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if problems := block_kit_problems(args):
            return {"ok": False, "error": "invalid_blocks", "errors": problems}
        channel = self.channel_id(str(args["channel"]))
        with self.lock:
            msg = {
                "channel": channel,
                "ts": self._next_ts(),
                "thread_ts": args.get("thread_ts"),
                "text": args.get("text"),
                "attachments": args.get("attachments"),
                "blocks": args.get("blocks"),
                "metadata": args.get("metadata"),
            }
            self.messages.append(msg)
            stall = self._stall_at is not None and len(self.messages) == self._stall_at
        if stall:
            self.stalled.set()
            self._release.wait(30)
        return {"ok": True, "channel": channel, "ts": msg["ts"], "message": msg}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        if problems := block_kit_problems(args):
            return {"ok": False, "error": "invalid_blocks", "errors": problems}
        with self.lock:
            msg = next((m for m in self.messages
                        if m["channel"] == args.get("channel") and m["ts"] == args.get("ts")), None)
            if msg is None:
                return {"ok": False, "error": "message_not_found"}
            self.updates.append({"channel": msg["channel"], "ts": msg["ts"],
                                 "text": args.get("text"), "attachments": args.get("attachments"),
                                 "blocks": args.get("blocks")})
        return {"ok": True, "channel": msg["channel"], "ts": msg["ts"]}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel"))
        if channel not in self.channels.values():  # an id, as Slack wants; not a #name
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(args.get("oldest") or 0)
        with self.lock:
            found = [m for m in self.messages if m["channel"] == channel
                     and not m["thread_ts"] and float(m["ts"]) >= oldest]
        return self._listing(channel, found, args)

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel"))
        with self.lock:
            found = [m for m in self.messages if m["channel"] == channel
                     and (m["ts"] == args.get("ts") or m["thread_ts"] == args.get("ts"))]
        return self._listing(channel, found, args)

    @staticmethod
    def _listing(channel: str, found: list[dict[str, Any]], args: dict[str, Any]
                 ) -> dict[str, Any]:
        limit = int(args.get("limit") or 100)
        meta = str(args.get("include_all_metadata")).lower() in ("1", "true")
        newest_first = sorted(found, key=lambda m: float(m["ts"]), reverse=True)[:limit]
        return {"ok": True, "channel": channel, "messages": [
            {"ts": m["ts"], "text": m["text"], **({"metadata": m["metadata"]} if meta else {})}
            for m in newest_first]}

    # -- context ---------------------------------------------------------------------------------

    def __enter__(self) -> SlackServer:
        self.http.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.http.__exit__(*exc)


def _args(req: Request) -> dict[str, Any]:
    """Slack accepts JSON bodies, form bodies and query strings alike."""
    args: dict[str, Any] = dict(req.query)
    ctype = req.headers.get("content-type", "")
    if req.body and "json" in ctype:
        args.update(req.json() or {})
    elif req.body:
        args.update({k: v[-1] for k, v in parse_qs(req.body.decode()).items()})
    for key in ("attachments", "blocks", "metadata"):
        if isinstance(args.get(key), str):
            args[key] = json.loads(args[key])
    return args


#: Slack's documented Block Kit limits (https://api.slack.com/reference/block-kit).
LIMITS = {"blocks": 50, "header": 150, "section_text": 3000, "fields": 10, "field": 2000,
          "context_elements": 10, "actions_elements": 25, "button_text": 75,
          "button_value": 2000, "url": 3000, "action_id": 255, "block_id": 255,
          "confirm_title": 100, "confirm_text": 300, "confirm_button": 30}


def block_kit_problems(message: dict[str, Any]) -> list[str]:
    """What in a ``chat.postMessage`` / ``chat.update`` body breaks Slack's Block Kit limits
    (the message's ``blocks`` and every attachment's); empty when it is valid."""
    attachments = message.get("attachments") or []
    if isinstance(attachments, str):
        attachments = json.loads(attachments)
    lists = [message.get("blocks")] + [a.get("blocks") for a in attachments]
    out: list[str] = []

    def over(what: str, text: Any, limit: str) -> None:
        if text is not None and len(str(text)) > LIMITS[limit]:
            out.append(f"{what}: {len(str(text))} > {LIMITS[limit]}")

    for blocks in lists:
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if not blocks:
            continue
        if len(blocks) > LIMITS["blocks"]:
            out.append(f"{len(blocks)} blocks > {LIMITS['blocks']}")
        for i, b in enumerate(blocks):
            over(f"block {i} block_id", b.get("block_id"), "block_id")
            if b["type"] == "header":
                over(f"block {i} header", b["text"]["text"], "header")
            elif b["type"] == "section":
                over(f"block {i} text", (b.get("text") or {}).get("text"), "section_text")
                fields = b.get("fields") or []
                if len(fields) > LIMITS["fields"]:
                    out.append(f"block {i}: {len(fields)} fields > {LIMITS['fields']}")
                for f in fields:
                    over(f"block {i} field", f["text"], "field")
            elif b["type"] == "context":
                if len(b["elements"]) > LIMITS["context_elements"]:
                    out.append(f"block {i}: {len(b['elements'])} context elements")
                for e in b["elements"]:
                    over(f"block {i} context", e.get("text"), "section_text")
            elif b["type"] == "actions":
                if len(b["elements"]) > LIMITS["actions_elements"]:
                    out.append(f"block {i}: {len(b['elements'])} actions")
                for e in b["elements"]:
                    over(f"block {i} button text", e["text"]["text"], "button_text")
                    over(f"block {i} button value", e.get("value"), "button_value")
                    over(f"block {i} url", e.get("url"), "url")
                    over(f"block {i} action_id", e.get("action_id"), "action_id")
                    confirm = e.get("confirm") or {}
                    for key in ("title", "text", "confirm", "deny"):
                        limit = {"title": "confirm_title", "text": "confirm_text"}.get(
                            key, "confirm_button")
                        over(f"block {i} confirm {key}",
                             (confirm.get(key) or {}).get("text"), limit)
    return out
