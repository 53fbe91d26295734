"""Slack ``mention``: who a message notifies, on the messages that need a human only."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from alerts.notifiers.config import SlackReceiverConfig
from alerts.notifiers.slack import SlackNotifier
from tests.fakes.slack_server import TOKEN, SlackServer
from tests.test_slack import PAYLOAD, slack, update_of

__all__ = ["slack"]  # the fake Slack server fixture


def mentioning(server: SlackServer, **kw: object) -> SlackNotifier:
    cfg = SlackReceiverConfig.model_validate({"token": TOKEN, "channel": "#checkout-alerts",
                                              "api_url": server.api_url, **kw})
    return SlackNotifier("checkout", cfg)


def test_a_new_incident_pings_the_group_its_reminders_and_resolution_do_not(
        slack: SlackServer) -> None:
    n = mentioning(slack, mention=["S0123ABC", "@here"], mention_min_severity=60)
    n.deliver(PAYLOAD, "n-1")  # severity 82
    n.deliver(update_of(PAYLOAD, update=True, repeat=True, changes={"since": "x"}), "n-2")
    n.deliver(update_of(PAYLOAD, status="resolved", anomalies=[]), "n-3")
    texts = [m["text"] for m in slack.messages]
    assert texts[0].startswith("<!subteam^S0123ABC> <!here> Anomaly: ")
    assert not any("<!" in t for t in texts[1:]), texts


def test_below_the_band_no_ping_until_an_update_rises_into_it(slack: SlackServer) -> None:
    n = mentioning(slack, mention="U024BE7LH", mention_min_severity=60)
    low = update_of(PAYLOAD, severity=41)
    n.deliver(low, "n-1")
    n.deliver(update_of(low, update=True, severity=55,
                        changes={"severity": {"from": 41, "to": 55, "level": "medium"}}), "n-2")
    n.deliver(update_of(low, update=True, severity=66,
                        changes={"severity": {"from": 55, "to": 66, "level": "high"}}), "n-3")
    n.deliver(update_of(low, update=True, severity=80,
                        changes={"severity": {"from": 66, "to": 80, "level": "critical"}}), "n-4")
    pinged = ["<@U024BE7LH>" in m["text"] for m in slack.messages]
    assert pinged == [False, False, True, False]


def test_without_mention_nothing_changes(slack: SlackServer) -> None:
    mentioning(slack).deliver(PAYLOAD, "n-1")
    assert slack.messages[0]["text"].startswith("Anomaly: ")


@pytest.mark.parametrize("bad", ["@checkout-oncall", "checkout team", "<#C123>"])
def test_a_handle_that_notifies_nobody_is_a_config_error(bad: str) -> None:
    with pytest.raises(ValidationError) as err:
        SlackReceiverConfig(token=TOKEN, channel="#c", mention=[bad])
    assert "user-group id (S0123ABC" in str(err.value)


def test_every_bad_mention_is_reported_at_its_own_index() -> None:
    with pytest.raises(ValidationError) as err:
        SlackReceiverConfig(token=TOKEN, channel="#c",
                            mention=["@alice", "S0123ABC", "#checkout", "@here"])
    locs = [e["loc"] for e in err.value.errors()]
    assert locs == [("mention", 0), ("mention", 2)], locs
    ok = SlackReceiverConfig(token=TOKEN, channel="#c", mention="S0123ABC")
    assert ok.mention == ["<!subteam^S0123ABC>"]
