"""Silences: stored (SQLite and PostgreSQL), matched like Alertmanager, applied by the
dispatcher, and managed with ``cxmon silence add|query|expire``."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerts.dispatch import Dispatcher
from alerts.matchers import MatcherError
from alerts.silences import (
    active_silences,
    add_silence,
    expire_silence,
    list_silences,
    silenced_by,
)
from monitor.cli import app
from monitor.config import parse_config
from monitor.store import Store
from tests.test_inhibit_timeintervals import anomaly, change

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def test_add_match_expire(store: Store) -> None:
    s = add_silence(store, ['team="checkout"', 'journey=~"check.*"'], now=T0,
                    duration=timedelta(hours=2), comment="deploy", created_by="ana")
    (stored,) = list_silences(store)
    assert stored == s and stored.matchers == ('team="checkout"', 'journey=~"check.*"')
    assert stored.starts_at == T0 and stored.ends_at == T0 + timedelta(hours=2)
    hit = {"team": "checkout", "journey": "checkout"}
    assert silenced_by(active_silences(store, T0), hit, T0) == s
    assert silenced_by(active_silences(store, T0), {"team": "checkout"}, T0) is None
    assert active_silences(store, T0 + timedelta(hours=2)) == []  # ends_at is exclusive
    assert expire_silence(store, s.id, T0 + timedelta(minutes=5))
    assert not expire_silence(store, s.id, T0 + timedelta(minutes=6))  # already ended
    assert list_silences(store)[0].state(T0 + timedelta(minutes=5)) == "expired"
    assert active_silences(store, T0 + timedelta(minutes=5)) == []


def test_rejects_bad_silences(store: Store) -> None:
    with pytest.raises(MatcherError):
        add_silence(store, ['team=~"("'], now=T0)
    with pytest.raises(ValueError, match="empty string"):
        add_silence(store, ['team=~".*"'], now=T0)  # would silence everything
    with pytest.raises(ValueError, match="end after"):
        add_silence(store, ["team=a"], now=T0, duration=timedelta(0))
    assert list_silences(store) == []


def test_dispatcher_drops_silenced_notifications_and_records_them(store: Store) -> None:
    cfg = parse_config("""
sources: {s: {type: sql, url: "sqlite://"}}
metrics: [{name: m, source: s, value: v}]
alerting: {receivers: [{name: ops}]}
""", env={})
    d = Dispatcher(cfg.alerting, silences=lambda now: active_silences(store, now))
    s = add_silence(store, ['journey="checkout"', 'severity="critical"'], now=T0,
                    duration=timedelta(hours=1))
    loud = change(anomaly("checkout", severity=90))
    assert d.receivers(loud, T0) == []
    assert d.muted[-1].reason == f"silenced by {s.id}"
    assert d.receivers(change(anomaly("checkout", severity=60)), T0) == ["ops"]  # high
    assert d.receivers(loud, T0 + timedelta(hours=1)) == ["ops"]  # silence over
    quiet = change(anomaly("search", severity=90))
    assert d.receivers(quiet, T0) == ["ops"]
    add_silence(store, ['journey="search"'], now=T0)
    hushed = change(anomaly("returns", severity=90))
    add_silence(store, ['journey="returns"'], now=T0)
    assert d.receivers(hushed, T0) == []
    resolved = change(anomaly("returns"), "resolved")
    assert d.receivers(resolved, T0) == []  # never announced: resolves silently
    assert d.receivers(change(anomaly("search"), "resolved"), T0) == ["ops"]


def test_silence_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"""
store: sqlite:///{tmp_path / 's.db'}
sources: {{s: {{type: sql, url: "sqlite://"}}}}
metrics: [{{name: m, source: s, value: v}}]
""")
    Store.open(f"sqlite:///{tmp_path / 's.db'}").close()  # `cxmon run` made it
    run = CliRunner().invoke
    out = run(app, ["silence", "add", "-c", str(path), 'team="checkout"', "region!~us.*",
                    "--duration", "2h", "--comment", "deploy", "--author", "ana"])
    assert out.exit_code == 0, out.output
    sid = out.stdout.strip()  # stderr: the metric has no team label, which is warned
    out = run(app, ["silence", "query", "-c", str(path)])
    assert sid in out.output and 'team="checkout" region!~"us.*"' in out.output
    assert "ana" in out.output and "deploy" in out.output
    # times as README shows them (amtool's format): UTC, whole seconds
    header, row = out.output.splitlines()
    assert "Ends At" in header
    assert re.search(r"  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  ", row), row
    assert "+00:00" not in row and not re.search(r":\d\d\.\d", row)
    assert run(app, ["silence", "query", "-c", str(path), "-q", "team=other"]).output == ""
    # the first characters of an id will do, and the command says what it ended; a prefix
    # shared by two silences is refused, naming both
    twins = iter([uuid.UUID(f"{sid[:8]}-0000-4000-8000-00000000000{i}") for i in (1, 2)])
    monkeypatch.setattr("alerts.silences.uuid.uuid4", lambda: next(twins))
    a, b = (run(app, ["silence", "add", "-c", str(path), f'team="t{i}"']).stdout.strip()
            for i in (1, 2))
    twice = run(app, ["silence", "expire", "-c", str(path), sid[:8]])
    assert twice.exit_code == 1 and "matches 3 silences" in twice.output
    assert all(i in twice.output for i in (sid, a, b)) and "give more characters" in twice.output
    assert run(app, ["silence", "expire", "-c", str(path), a, b]).exit_code == 0
    out = run(app, ["silence", "expire", "-c", str(path), sid[:8]])
    assert out.exit_code == 0 and out.output.strip() == f"expired silence {sid}"
    assert run(app, ["silence", "query", "-c", str(path), "-q"]).output == ""
    assert sid in run(app, ["silence", "query", "-c", str(path), "-q", "--expired"]).output
    assert run(app, ["silence", "expire", "-c", str(path), sid]).exit_code == 1
    bad = run(app, ["silence", "add", "-c", str(path), 'team=~"("'])
    assert bad.exit_code != 0


@pytest.mark.parametrize("args", [["add", 'team="checkout"'], ["query"], ["expire", "x"]])
def test_silence_cli_does_not_create_a_missing_store(tmp_path: Path, args: list[str]) -> None:
    """Like ``alerts status``: a mistyped store path is an error, not a new empty store (a
    silence written there would silence nothing, a query there would show none)."""
    db = tmp_path / "no" / "such" / "dir" / "s.db"
    path = tmp_path / "c.yaml"
    path.write_text(f"""
store: sqlite:///{db}
sources: {{s: {{type: sql, url: "sqlite://"}}}}
metrics: [{{name: m, source: s, value: v}}]
""")
    out = CliRunner().invoke(app, ["silence", args[0], "-c", str(path), *args[1:]],
                             env={"COLUMNS": "300"})
    assert out.exit_code == 1
    assert f"nostoreat{db}" in "".join(out.output.split())  # however rich wraps it
    assert not (tmp_path / "no").exists()


def test_pipeline_drops_silenced_incident_and_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_sources_pipeline import T0 as START
    from tests.test_sources_pipeline import run, setup

    p, store, clock, shop = setup(tmp_path)
    s = add_silence(store, ['journey="checkout"', 'metric="orders"'], now=START,
                    duration=timedelta(hours=3), comment="planned outage")
    run(p, clock, START + timedelta(minutes=30))
    shop.down = True  # "no data" incident for journey=checkout
    run(p, clock, START + timedelta(hours=1))
    assert store.incidents()  # the incident exists ...
    (row,) = store.notifications()  # ... nobody was told, and the outbox says why
    assert (row.status, row.reason) == ("suppressed", f"silenced by {s.id}")
    assert row.receiver == "console" and row.incident_key == store.incidents()[0]["key"]
    assert store.outbox_counts() == {"pending": 0, "sent": 0, "dead": 0, "suppressed": 1}
    assert p.deliver().sent == 0  # the worker never picks up a suppressed row
    from tests.test_sources_pipeline import CONFIG

    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "s.db", extra=""))
    from monitor import cli

    monkeypatch.setattr(cli.console, "width", 250)  # one line per row, whatever the terminal
    out = CliRunner().invoke(app, ["alerts", "status", "-c", str(path)])
    assert out.exit_code == 0, out.output
    assert "pending 0 · sent 0 · dead 0 · suppressed 1" in out.output
    assert "suppressed" in out.output.split("\n", 1)[1] and f"silenced by {s.id}" in out.output
    p.close()
    store.close()


def _minimal_config(tmp_path: Path) -> Path:
    """A config file with a migrated SQLite store, for the silence commands."""
    path = tmp_path / "c.yaml"
    path.write_text(f"""
store: sqlite:///{tmp_path / 's.db'}
sources: {{s: {{type: sql, url: "sqlite://"}}}}
metrics: [{{name: m, source: s, value: v}}]
""")
    Store.open(f"sqlite:///{tmp_path / 's.db'}").close()
    return path


@pytest.mark.parametrize("matcher", ['team=~"("', 'team="x'])
def test_silence_query_with_a_bad_matcher_says_why(tmp_path: Path, matcher: str) -> None:
    """``silence query 'team=~"("'`` ended in a MatcherError traceback."""
    path = _minimal_config(tmp_path)
    out = CliRunner().invoke(app, ["silence", "query", "-c", str(path), matcher])
    assert out.exit_code == 2, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)
    assert "Invalid value" in out.output


def test_silence_add_with_an_absurd_duration_says_why(tmp_path: Path) -> None:
    """``--duration 1000000w`` ended in an OverflowError traceback."""
    path = _minimal_config(tmp_path)
    out = CliRunner().invoke(app, ["silence", "add", "-c", str(path), 'team="x"',
                                   "--duration", "1000000w"])
    assert out.exit_code == 2 and "out of range" in out.output


def test_silence_add_and_routes_test_name_the_bad_argument(tmp_path: Path) -> None:
    """``--duration 2x`` said only ``Invalid value:``, without naming the option."""
    path = _minimal_config(tmp_path)
    out = CliRunner().invoke(app, ["silence", "add", "-c", str(path), 'team="x"',
                                   "--duration", "2x"])
    assert out.exit_code == 2 and "Invalid value for '--duration'" in out.output
    out = CliRunner().invoke(app, ["routes", "test", "-c", str(path), "team=~x"])
    assert out.exit_code == 2 and "Invalid value for LABELS" in out.output


def test_silence_add_schedules_a_maintenance_window_ahead(tmp_path: Path) -> None:
    """--start/--end: a Saturday-night silence made on Friday is pending, then holds."""
    path = tmp_path / "c.yaml"
    path.write_text(f"""
store: sqlite:///{tmp_path / 's.db'}
sources: {{s: {{type: sql, url: "sqlite://"}}}}
metrics: [{{name: m, source: s, value: v}}]
""")
    Store.open(f"sqlite:///{tmp_path / 's.db'}").close()
    run = CliRunner().invoke
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    out = run(app, ["silence", "add", "-c", str(path), 'journey="checkout"',
                    "--start", start.strftime("%Y-%m-%dT%H:%M:%S"),   # naive = UTC
                    "--end", (start + timedelta(hours=4)).isoformat()])
    assert out.exit_code == 0, out.output
    sid = out.stdout.strip()  # stderr: m has no journey label, which is warned
    def stored() -> list:
        st = Store.open(f"sqlite:///{tmp_path / 's.db'}")
        try:
            return list_silences(st)
        finally:
            st.close()

    (s,) = stored()
    assert s.id == sid and s.starts_at.replace(tzinfo=UTC) == start
    assert s.ends_at.replace(tzinfo=UTC) - s.starts_at.replace(tzinfo=UTC) == timedelta(hours=4)
    assert s.state(datetime.now(UTC)) == "pending"
    assert s.active(start + timedelta(hours=1)) and not s.active(start + timedelta(hours=4))
    listed = run(app, ["silence", "query", "-c", str(path)]).output
    assert "Starts At" in listed and start.strftime("%Y-%m-%d %H:%M:%S UTC") in listed
    # --start alone takes --duration from it
    out = run(app, ["silence", "add", "-c", str(path), 'journey="search"', "--start",
                    start.isoformat(), "--duration", "30m"])
    assert out.exit_code == 0, out.output
    (_, t) = stored()
    assert t.ends_at.replace(tzinfo=UTC) == start + timedelta(minutes=30)
    # an --end already past, or not a time, is a usage error naming the option
    for bad in (["--end", "2020-01-01T00:00Z"], ["--start", "saturday"]):
        out = run(app, ["silence", "add", "-c", str(path), 'journey="x"', *bad])
        assert out.exit_code == 2 and bad[0] in out.output, out.output
