"""Make URLs safe to show: secrets never reach logs, messages or exceptions."""

from __future__ import annotations

import logging
import re

#: words of a parameter name that say it carries a credential; a name is split into words
#: at ``_``, ``-``, ``.`` and camelCase (``api_key``, ``apiKey``, ``X-Api-Key``: ``key``)
SECRET_WORDS = frozenset({
    "key", "apikey", "token", "accesstoken", "apitoken", "authtoken", "secret",
    "clientsecret", "password", "passwd", "pass", "pwd", "passphrase", "sig", "signature",
    "auth", "authorization", "credential", "credentials", "jwt",
    # run-together compounds (``privatekey``), which a split into words cannot see
    "privatekey", "secretkey", "accesskey", "appkey", "authkey", "clientkey", "consumerkey",
    "routingkey", "sessionkey", "signingkey", "refreshtoken", "idtoken", "sessiontoken",
    "bearertoken", "usertoken", "apppassword", "appsecret", "consumersecret",
    "webhooksecret", "signingsecret", "sharedsecret",
})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def is_secret_name(name: str) -> bool:
    """Whether a query parameter named ``name`` carries a credential, by whole words: not
    ``keyword``, ``design``, ``author`` or ``passenger``, which merely contain one.

    >>> [n for n in ("api_key", "apiKey", "apikey", "access_token", "X-Api-Key", "sig",
    ...              "password", "keyword", "design", "author", "monkey", "page")
    ...  if is_secret_name(n)]
    ['api_key', 'apiKey', 'apikey', 'access_token', 'X-Api-Key', 'sig', 'password']
    """
    words = [w.lower() for w in _WORD.findall(name)]
    return any(w in SECRET_WORDS for w in words)


_USERINFO = re.compile(r"(//[^:/@]+):[^@/]*@")
_MANY_AT = re.compile(r"^([\w+.-]+://[^:/@\s]*):[^/?\s]*@(?=[^/?\s]*@)[^/?\s]*@")


def redact_url(url: object) -> str:
    """The URL with its password and secret-looking query parameters replaced by ``***``.

    >>> redact_url("postgresql+psycopg://app:s3cret@db/cx?sslmode=require&password=x")
    'postgresql+psycopg://app:***@db/cx?password=***&sslmode=require'
    >>> redact_url("postgresql+psycopg://app:pa@ss#1@db/cx")
    'postgresql+psycopg://app:***@db/cx'
    >>> redact_url("not a url at all")
    '<unparsable URL>'
    """
    from sqlalchemy.engine import make_url

    # a password with a raw ``@`` (``pa@ss``, not ``pa%40ss``): parsers split at its first
    # ``@`` and left the rest of it in the host; mask up to the last ``@`` of the authority
    url = _MANY_AT.sub(r"\1:***@", str(url), count=1)
    try:
        parsed = make_url(str(url))
    except Exception:
        text = str(url)
        if "://" in text:
            base = _USERINFO.sub(r"\1:***@", text.split("?", 1)[0])
            return base + ("?***" if "?" in text else "")
        return "<unparsable URL>"
    query = {k: ("REDACTED" if is_secret_name(k) else v) for k, v in parsed.query.items()}
    text = parsed.set(query=query).render_as_string(hide_password=True)
    return text.replace("=REDACTED", "=***")


_TEXT_PARAM = re.compile(r"([?&;]([\w.-]+)=)([^&\s\"'#]+)")
_TEXT_USERINFO = re.compile(r"(\w+://[^:/@\s]+):[^/?\s]*@")  # to the authority's last @
_SLACK_HOOK = re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[\w/]+")


def redact_text(text: str) -> str:
    """Scrub URL secrets anywhere in a free text (log lines of third-party libraries).

    >>> redact_text('POST http://h/cx?token=abc&x=1&keyword=refund "400"')
    'POST http://h/cx?token=***&x=1&keyword=refund "400"'
    >>> redact_text("https://bob:pw@db/x and https://hooks.slack.com/services/T0/B1/xyz")
    'https://bob:***@db/x and https://hooks.slack.com/services/***'
    >>> redact_text("connect to postgresql://app:pa@ss@db/cx failed")
    'connect to postgresql://app:***@db/cx failed'
    """
    text = _TEXT_PARAM.sub(
        lambda m: m.group(1) + "***" if is_secret_name(m.group(2)) else m.group(0), text)
    text = _TEXT_USERINFO.sub(r"\1:***@", text)
    return _SLACK_HOOK.sub(r"\1***", text)


class SecretFilter(logging.Filter):
    """A log filter that scrubs URL secrets from every record it sees, whoever logged it:
    the last line of defence behind cxmon's own redaction."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
