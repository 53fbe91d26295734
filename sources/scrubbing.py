"""Keeping credentials out of source messages: which config values are secrets, and
scrubbing them (as written or URL-encoded) from every text a source shows.

Shared by the HTTP client and the vendor-SDK sources, so both hide the same values."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from pydantic import BaseModel, SecretStr

from monitor.redact import is_secret_name

#: a ``headers`` value shorter than this is scrubbed only when its header's name says it is
#: a credential: ``X-Account: 42`` scrubbed turned every "429" and "1420" into "***9"
MIN_HEADER_SECRET = 6
_CREDENTIAL_HEADER = re.compile(r"auth|token|key|secret|pass|pwd|cookie|signature|credential",
                                re.I)


def header_is_secret(name: str, value: str) -> bool:
    """Whether a ``headers`` value is scrubbed from messages: always for a header whose name
    says it is a credential (``Authorization``, ``X-Api-Key``, ``X-Auth-Token``, ...),
    otherwise only from :data:`MIN_HEADER_SECRET` characters on.

    >>> [header_is_secret(*h) for h in [("X-Account", "42"), ("X-Api-Key", "k1"),
    ...                                 ("X-Tenant", "tenant-7f3a"), ("Authorization", "x")]]
    [False, True, True, True]
    """
    return bool(value) and (len(value) >= MIN_HEADER_SECRET
                            or bool(_CREDENTIAL_HEADER.search(name)))


def secrets_of(model: BaseModel) -> list[str]:
    """Every secret value in a config (SecretStr anywhere, nested models and dicts included;
    a short ``headers`` value only when its name says it is a credential,
    :func:`header_is_secret`)."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, BaseModel) and isinstance(headers := getattr(value, "headers",
                                                                          None), Mapping):
            for name, v in headers.items():
                secret = v.get_secret_value() if isinstance(v, SecretStr) else v
                if isinstance(secret, str) and header_is_secret(str(name), secret):
                    out.append(secret)
        if isinstance(value, SecretStr):
            out.append(value.get_secret_value())
        elif isinstance(value, str) and "@" in value and "://" in value:
            try:  # a password inside a URL (https://user:pw@host/) is a secret too
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:  # as written and decoded (a client or log may print either)
                out.extend(dict.fromkeys([password, unquote(password)]))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                if name != "headers" or not isinstance(getattr(value, name), Mapping):
                    walk(getattr(value, name))
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(model)
    return [s for s in out if s]


#: Characters of an unexpected error body (a proxy's page, a vendor's JSON) in a message.
EXCERPT = 160


def body_excerpt(text: str, scrub: Callable[[str], str] | None = None) -> str:
    """A short, one-line excerpt of a body (HTML tags dropped) for an error message; empty
    for an empty body. ``scrub`` removes secrets *before* the cut: scrubbed after it, a
    secret cut in two is no longer found and its first characters are shown.

    >>> body_excerpt("<html><h1>503</h1> <p>Service   Unavailable</p></html>")
    '503 Service Unavailable'
    """
    flat = " ".join(re.sub(r"<[^>]*>", " ", text).split())
    if scrub is not None:
        flat = scrub(flat)
    return flat if len(flat) <= EXCERPT else flat[:EXCERPT] + "..."


def query_secrets(url: httpx.URL | str) -> list[str]:
    """The values of ``url``'s secret-looking query parameters (``api_key``, ``token``, ...),
    longest first, for :func:`scrub_secrets`.

    Names are matched by whole words (:func:`monitor.redact.is_secret_name`): a
    ``keyword=refund`` or ``design=blue`` is no secret, and scrubbing its value garbled
    every message that contained it.

    >>> query_secrets("https://h/x?since=2026-01-01&api_key=k3y&apiToken=t%2Fk3n&keyword=ref")
    ['t/k3n', 'k3y']
    """
    values = [v for k, v in httpx.URL(str(url)).params.multi_items()
              if is_secret_name(k) and v]
    return sorted(dict.fromkeys(values), key=len, reverse=True)


def scrub_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, as written or URL-encoded (an SDK or a gateway may echo
    either), replaced by ``***``.

    >>> scrub_secrets("token=a%2Fb and a/b", ["a/b"])
    'token=*** and ***'
    """
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, "***")
        quoted = quote(secret, safe="")
        if quoted != secret:
            text = text.replace(quoted, "***")
    return text


def basic_credentials(auth: Any) -> list[str]:
    """The base64 ``user:password`` a basic-auth header carries: a proxy or vendor that
    echoes the request's ``Authorization`` in its 401 body would otherwise put the
    password, barely encoded, into the error message and the logs."""
    if not isinstance(auth, tuple) or not auth[1]:
        return []
    user, password = auth
    return [base64.b64encode(f"{user}:{password}".encode()).decode()]
