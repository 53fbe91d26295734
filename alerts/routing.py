"""Which receivers a label set reaches. For now the route's default receiver; the full
Alertmanager route tree (matchers, nesting, ``continue``) plugs in here."""

from __future__ import annotations

from collections.abc import Mapping


class Router:
    """Resolve a label set to receiver names, in order."""

    def __init__(self, default_receiver: str | None) -> None:
        self.default_receiver = default_receiver

    def receivers(self, labels: Mapping[str, str]) -> list[str]:
        return [self.default_receiver] if self.default_receiver else []
