"""Who a Slack message notifies (``mention`` on a Slack receiver), and when.

Why: a message in a busy channel notifies nobody; on-call people mute such channels and learn
of an incident from a customer. A mention pings the owning user group (or ``@here``) on the
messages that need a human: a new incident at or above ``mention_min_severity``, and an update
whose severity rises into that band. Reminders, updates below the band and resolutions never
ping: a team pinged for every reminder mutes the channel again.

Slack mentions need ids (``<@U024BE7LH>``, ``<!subteam^S0123ABC>``): a ``@handle`` is shown as
text and notifies nobody, so the config accepts ids and the special ``@here`` / ``@channel``
only, each normalized to Slack's syntax.

>>> normalize_mention("S0123ABC"), normalize_mention("@here"), normalize_mention("<@U024BE7LH>")
('<!subteam^S0123ABC>', '<!here>', '<@U024BE7LH>')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["mention_prefix", "normalize_mention"]

_SPECIAL = {"here": "<!here>", "channel": "<!channel>", "everyone": "<!everyone>"}
_USER = re.compile(r"^<?@?([UW][A-Z0-9]{4,})>?$")
_GROUP = re.compile(r"^(?:<!subteam\^)?(S[A-Z0-9]{4,})(?:\|[^>]*)?>?$")


def normalize_mention(value: str) -> str:
    """Slack's syntax for a user id, a user-group id or ``@here``/``@channel``/``@everyone``;
    ``ValueError`` (with what to use instead) for anything else."""
    text = value.strip()
    special = text.removeprefix("<!").removeprefix("@").removesuffix(">").lower()
    if special in _SPECIAL:
        return _SPECIAL[special]
    if m := _USER.match(text):
        return f"<@{m.group(1)}>"
    if m := _GROUP.match(text):
        return f"<!subteam^{m.group(1)}>"
    raise ValueError(
        f"{value!r} is not a Slack mention Slack can notify: use a user id (U024BE7LH, from "
        "the profile's 'Copy member ID'), a user-group id (S0123ABC, from the group's 'Copy "
        "group ID'), @here or @channel; a @handle is shown as text and notifies nobody")


def mention_prefix(payload: Mapping[str, Any], mentions: Sequence[str],
                   min_severity: int) -> str:
    """The mentions to put before a message's text (``""`` when it should ping nobody).

    >>> first = {"status": "firing", "severity": 62}
    >>> mention_prefix(first, ["<!here>"], 50)
    '<!here> '
    >>> mention_prefix({**first, "repeat": True}, ["<!here>"], 50)
    ''
    >>> rose = {"status": "firing", "update": True, "severity": 62,
    ...         "changes": {"severity": {"from": 41, "to": 62}}}
    >>> mention_prefix(rose, ["<!here>"], 50), mention_prefix(rose, ["<!here>"], 30)
    ('<!here> ', '')
    """
    if not mentions or payload.get("status") == "resolved":
        return ""
    severity = int(payload.get("severity") or 0)
    if severity < min_severity:
        return ""
    if payload.get("update") or payload.get("repeat"):
        change = (payload.get("changes") or {}).get("severity")
        before = int(change.get("from") or 0) if isinstance(change, Mapping) else severity
        if before >= min_severity:  # already pinged for this band (or nothing rose)
            return ""
    return " ".join(mentions) + " "
