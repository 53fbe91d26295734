"""Make URLs safe to show: secrets never reach logs, messages or exceptions."""

from __future__ import annotations

import re

_SECRET_PARAM = re.compile(r"(pass|pwd|secret|token|key|auth|credential|signature)", re.I)
_USERINFO = re.compile(r"(//[^:/@]+):[^@/]*@")


def redact_url(url: object) -> str:
    """The URL with its password and secret-looking query parameters replaced by ``***``.

    >>> redact_url("postgresql+psycopg://app:s3cret@db/cx?sslmode=require&password=x")
    'postgresql+psycopg://app:***@db/cx?password=***&sslmode=require'
    >>> redact_url("not a url at all")
    '<unparsable URL>'
    """
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(str(url))
    except Exception:
        text = str(url)
        if "://" in text:
            base = _USERINFO.sub(r"\1:***@", text.split("?", 1)[0])
            return base + ("?***" if "?" in text else "")
        return "<unparsable URL>"
    query = {k: ("REDACTED" if _SECRET_PARAM.search(k) else v) for k, v in parsed.query.items()}
    text = parsed.set(query=query).render_as_string(hide_password=True)
    return text.replace("=REDACTED", "=***")
