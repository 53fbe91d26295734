"""The effective config, as ``cxmon validate --show`` prints it: the merged document
(``include:`` files in, ``${VAR}`` replaced, defaults filled) as plain YAML-ready data, with
every secret masked.

Why: with team files, shared defaults and environment variables, what the monitor runs with
is in no single file; an operator checking "which URL, which history, which detector" must
see it without seeing a password. Masking is by what a value is, not only where it is, and a
last pass scrubs every secret value the config holds (:func:`sources.scrubbing.secrets_of`)
from the text, so a secret in an unexpected key is masked too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from enum import Enum
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

from monitor.redact import is_secret_name, redact_text, redact_url

MASK = "***"
#: Keys whose whole value is a credential however it is named (a webhook URL is its own
#: secret: Slack's, Teams' and most chat webhooks authenticate by the URL's path).
_URL_IS_SECRET = frozenset({("webhook", "url")})


class ShowPathError(KeyError):
    """``--show a.b``: no such section; the message names the keys there are."""


def effective_config(config: BaseModel) -> dict[str, Any]:
    """``config`` as plain data (durations as ``1h``, None values left out), secrets
    masked."""
    data = _plain(config, ())
    assert isinstance(data, dict)
    return data


def effective_yaml(config: BaseModel, path: str | None = None) -> str:
    """The effective config (or the section at the dotted ``path``: ``metrics.checkout``,
    ``sources.shop``, ``alerting.receivers.oncall``) as YAML, with every secret masked."""
    import yaml

    from sources.scrubbing import scrub_secrets, secrets_of

    data: Any = effective_config(config)
    if path:
        try:
            data = select(data, path)
        except ShowPathError:
            # an option left unset (``metrics.csat.unit``) is a field all the same: its
            # effective value is null; only a key no model has stays an error
            data = select(_plain(config, (), keep_none=True), path)
    # the last line of defence: any secret value of the config, wherever it ended up
    secrets = sorted(_all_secrets(config, secrets_of(config)), key=len, reverse=True)
    data = _scrubbed(data, lambda text: scrub_secrets(text, secrets))
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    # a bare scalar (``--show metrics.csat.min_volume``) ends in YAML's document-end marker
    return text.removesuffix("...\n") if not isinstance(data, dict | list) else text


def _scrubbed(data: Any, scrub: Callable[[str], str]) -> Any:
    """``data`` with ``scrub`` applied to every string, keys included (before the YAML is
    written, so a masked value is quoted as it must be)."""
    if isinstance(data, dict):
        return {scrub(str(k)): _scrubbed(v, scrub) for k, v in data.items()}
    if isinstance(data, list):
        return [_scrubbed(v, scrub) for v in data]
    return scrub(data) if isinstance(data, str) else data


def _dumper() -> Any:
    import yaml

    class Dumper(yaml.SafeDumper):
        """Block style, except a list of plain values on one line (``[channel, region]``), as
        the examples write them."""

        def represent_list(self, data: list[Any]) -> Any:
            flat = all(isinstance(v, str | int | float | bool) for v in data)
            return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)

    Dumper.add_representer(list, Dumper.represent_list)
    return Dumper


_Dumper = _dumper()


_MISSING = object()


def select(data: Any, path: str) -> Any:
    """The part of ``data`` at a dotted path; a list item by its ``name`` or index, also
    written as a problem's path writes it (``metrics[0].detectors[1]``, copied from one).

    >>> select({"metrics": [{"name": "m", "detectors": ["a", "b"]}]}, "metrics[0].detectors[1]")
    'b'
    """
    node, walked = data, []
    for key in re.sub(r"\[(\d+)\]", r".\1", path).split("."):
        if isinstance(node, list):
            names = [str(i.get("name")) for i in node if isinstance(i, dict) and "name" in i]
            found = [i for i in node if isinstance(i, dict) and str(i.get("name")) == key]
            if not found and key.isdigit() and int(key) < len(node):
                found = [node[int(key)]]
            keys = names or [str(i) for i in range(len(node))]
            node = found[0] if found else _MISSING
        elif isinstance(node, dict):
            keys = [str(k) for k in node]
            node = node.get(key, _MISSING)
        else:
            keys = []
            node = _MISSING
        if node is _MISSING:
            where = ".".join(walked) or "the config"
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            shown = ", ".join(keys) if keys else "none: it is a value"
            raise ShowPathError(f"{where} has no {key!r}{hint}; there: {shown}")
        walked.append(key)
    return node


def _plain(value: Any, loc: tuple[str, ...], keep_none: bool = False) -> Any:
    """YAML-ready data; ``loc`` is the keys above, to tell what a value is. A field that is
    None is left out unless ``keep_none`` (to show one unset option by its path)."""
    key = loc[-1] if loc else ""
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        # a database URL is worth seeing with its password masked; any other secret is not
        return redact_url(secret) if key == "url" and "://" in secret else MASK
    if isinstance(value, BaseModel):
        out: dict[str, Any] = {}
        for name, field in type(value).model_fields.items():
            item = getattr(value, name)
            if item is None and not keep_none:
                continue
            shown = field.alias or name
            out[shown] = _plain(item, (*loc, shown), keep_none)
        return out
    if isinstance(value, Mapping):
        return {str(k): _plain(v, (*loc, str(k)), keep_none) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [_plain(v, loc, keep_none) for v in items]
    if isinstance(value, bool | int | float) or value is None:
        if key and _secret_key(key) and not isinstance(value, bool) and value is not None:
            return MASK  # a numeric PIN or key is a secret too
        return value
    if isinstance(value, timedelta):
        from monitor.durations import format_duration

        return format_duration(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return _plain(value.value, loc, keep_none)
    if isinstance(value, PurePath):
        return str(value)
    text = str(value)
    if key and _secret_key(key):
        return MASK
    if tuple(loc[-2:]) in _URL_IS_SECRET:
        return _url_origin(text)
    return redact_url(text) if _is_url(text) and "@" in text else redact_text(text)


def _secret_key(key: str) -> bool:
    """A key whose value is a credential: ``secret``, ``api_key``, ``aws_session_token``;
    not ``credentials_file``, which says where one is (worth seeing, resolved)."""
    return is_secret_name(key) and not key.endswith(("_file", "_path", "_dir"))


def _is_url(text: str) -> bool:
    return "://" in text and " " not in text.strip()


def _url_origin(url: str) -> str:
    """``https://hooks.example.com/***``: where it goes, not the path that authenticates."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    if not parts.scheme or not host:
        return MASK
    rest = MASK if (parts.path.strip("/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}/{rest}"


def _url_without_credentials(text: str) -> bool:
    """Whether ``text`` is a URL with no password and no secret-looking query parameter:
    scrubbing it whole printed a source's ``postgresql+psycopg://reader@db/dw`` as ``***``.

    >>> [_url_without_credentials(u) for u in ("postgresql+psycopg://reader@db/dw",
    ...  "postgresql+psycopg://reader:pw@db/dw", "snowflake://u@acct/db?private_key=k", "k3y")]
    [True, False, False, False]
    """
    if "://" not in text or " " in text.strip():
        return False
    from sqlalchemy.engine import make_url

    try:
        url = make_url(text)
    except Exception:
        return False
    return not url.password and not any(is_secret_name(k) for k in url.query)


def _all_secrets(value: Any, found: list[str], key: str = "") -> set[str]:
    """:func:`secrets_of`'s values plus every value under a secret-looking key (the
    ``secret`` of a files source's ``storage_options``, a plain ``dict``)."""
    # a 1-3 character "secret" would garble the text; a URL with no credential in it (a sql
    # source's url is a SecretStr whatever it holds) is shown with them masked, not as ***
    out = {s for s in found if len(s) >= 4 and not _url_without_credentials(s)}
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            out |= _all_secrets(getattr(value, name), [], name)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            out |= _all_secrets(v, [], str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            out |= _all_secrets(v, [], key)
    elif isinstance(value, str) and key and _secret_key(key) and len(value) >= 4:
        out.add(value)
    return out
