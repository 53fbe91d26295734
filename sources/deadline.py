"""A whole-response deadline for ``requests`` sessions (the SDK-based sources).

Why: ``requests``' ``timeout`` (which simple-salesforce and the GA4 client's REST transport
pass through) bounds the connect and each socket read, never the response: a server or proxy
trickling its body a few bytes at a time held a poll, and the tick, for as long as it liked.
The http sources read their body against a deadline (:meth:`sources.http_client.HttpClient._send`);
this does the same for a ``requests.Session``: the request is sent with ``stream=True`` and
the body read in chunks against ``timeout`` on an injectable clock. Past it the response is
closed and :class:`WholeResponseTimeout` (a ``requests.Timeout``: retriable) raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

Monotonic = Callable[[], float]
CHUNK = 16 * 1024


class WholeResponseTimeout(requests.exceptions.ReadTimeout):
    """The response, body included, did not arrive within ``timeout``."""


def with_deadline(
    session: requests.Session, timeout: float, *, monotonic: Callable[[], Monotonic],
    on_response: Callable[[requests.Response], None] | None = None,
) -> None:
    """Make every request of ``session`` arrive whole within ``timeout`` seconds.

    ``monotonic`` returns the clock to use at call time (a source's clock can be swapped
    after its client was built, e.g. by tests). ``on_response`` sees each response once its
    body is read: a ``requests`` response hook runs before the body arrives, so a hook that
    reads ``response.text`` would read it outside the deadline. A caller asking for
    ``stream=True`` itself gets the response unread, as it asked."""
    send = session.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", timeout)
        if kwargs.pop("stream", False):
            return send(method, url, *args, stream=True, **kwargs)
        clock = monotonic()
        started = clock()
        response = send(method, url, *args, stream=True, **kwargs)
        if not response._content_consumed:  # else read already (a nested, wrapped call)
            chunks: list[bytes] = []
            try:
                for chunk in response.iter_content(CHUNK):
                    chunks.append(chunk)
                    if clock() - started > timeout:
                        raise WholeResponseTimeout(
                            f"the whole response took longer than timeout={timeout:g}s "
                            "(a body arriving too slowly)", response=response)
            finally:
                response.close()
            response._content = b"".join(chunks)
        if on_response is not None:
            on_response(response)
        return response

    session.request = request  # type: ignore[method-assign]
