"""Inhibition: a firing alert matching a rule's source matchers mutes the alerts matching its
target matchers that have the same values of the ``equal`` labels (Alertmanager's
``inhibit/inhibit.go``; a label missing on both sides counts as equal).

An alert that matches both sides of a rule is not inhibited by alerts that also match both
sides (so a rule cannot make alerts inhibit each other). In cxmon the alerts are the open
incidents; e.g. a journey-level incident (no ``channel`` label) mutes the per-channel ones::

    inhibit_rules:
      - source_matchers: ['channel=""']
        target_matchers: ['channel=~".+"']
        equal: [journey, metric]

>>> from alerts.am_config import InhibitRuleConfig
>>> rule = InhibitRule.from_config(InhibitRuleConfig.model_validate(
...     {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
...      "equal": ["journey"]}))
>>> inh = Inhibitor([rule])
>>> firing = [{"journey": "checkout", "severity": "critical"}]
>>> inh.inhibited({"journey": "checkout", "severity": "warning"}, firing)
True
>>> inh.inhibited({"journey": "search", "severity": "warning"}, firing)
False
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alerts.matchers import Matcher, matches_all

if TYPE_CHECKING:
    from alerts.am_config import InhibitRuleConfig

__all__ = ["InhibitRule", "Inhibitor"]


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: InhibitRuleConfig) -> InhibitRule:
        return cls(tuple(cfg.source()), tuple(cfg.target()), tuple(cfg.equal))

    def inhibits(self, labels: Mapping[str, str], firing: Iterable[Mapping[str, str]]) -> bool:
        if not matches_all(self.target, labels):
            return False
        two_sided = matches_all(self.source, labels)
        for src in firing:
            if not matches_all(self.source, src):
                continue
            if any(src.get(n, "") != labels.get(n, "") for n in self.equal):
                continue
            if two_sided and matches_all(self.target, src):
                continue
            return True
        return False


class Inhibitor:
    """All inhibition rules of a config."""

    def __init__(self, rules: Sequence[InhibitRule]) -> None:
        self.rules = list(rules)

    @classmethod
    def from_config(cls, rules: Iterable[InhibitRuleConfig]) -> Inhibitor:
        return cls([InhibitRule.from_config(r) for r in rules])

    def inhibited(self, labels: Mapping[str, str], firing: Sequence[Mapping[str, str]]) -> bool:
        """Whether ``labels`` is muted by any rule given the ``firing`` alerts' labels."""
        return any(rule.inhibits(labels, firing) for rule in self.rules)
