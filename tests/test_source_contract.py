"""The source contract, generated for every registered source type.

Each type has a case in :mod:`tests.fakes.contract` (a backend: a local fake server, a
database file, files, or the real service started by the test). The checks: config validation
(strict keys), a successful poll, pagination, retry on 429 (honouring Retry-After) and 5xx,
fatal on 401 without leaking the secret, cursor advance (adjacent ranges partition the rows)
and idempotent re-polls. A type registered without a case fails :func:`test_every_type_has_a_case`.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from pydantic import ValidationError

import sources
from sources.base import FatalSourceError, PollRequest, RetriableSourceError, Source
from sources.http import HttpSource
from sources.registry import config_class, create, source_types
from tests.fakes.contract import CASES, SECRET, T0, Case, Env

TYPES = sorted(source_types())


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_every_type_has_a_case() -> None:
    missing = [t for t in TYPES if t not in CASES]
    assert not missing, f"registered source types without a contract case: {missing}"
    assert set(sources.source_types()) == set(TYPES)


@pytest.fixture(params=TYPES)
def case(request: pytest.FixtureRequest) -> Case:
    if request.param not in CASES:
        pytest.fail(f"no contract case for source type {request.param!r}")
    return CASES[request.param]


@pytest.fixture
def env(case: Case, tmp_path) -> Env:
    with case.start(tmp_path) as e:
        yield e


def make(case: Case, env: Env, sleeps: Sleeps | None = None, **overrides) -> Source:
    cfg = config_class(case.type).model_validate({**env.config, **overrides})
    src = create(f"{case.type}_src", cfg)
    if isinstance(src, HttpSource):
        src.set_sleep(sleeps or Sleeps(), monotonic=lambda: 0.0)
    elif hasattr(src, "set_sleep"):
        src.set_sleep(sleeps or Sleeps())
    return src


def poll(src: Source, req: PollRequest) -> pd.DataFrame:
    try:
        return src.fetch(req)
    finally:
        src.close()


def canonical(df: pd.DataFrame, ts: str) -> pd.DataFrame:
    out = df.copy()
    out[ts] = pd.to_datetime(out[ts], utc=True, format="mixed")
    out = out[sorted(out.columns)]
    return out.sort_values(list(out.columns), ignore_index=True).astype(str)


def test_config_validation(case: Case, env: Env) -> None:
    cls = config_class(case.type)
    cfg = cls.model_validate(env.config)
    assert cfg.type == case.type
    with pytest.raises(ValidationError) as info:
        cls.model_validate({**env.config, "no_such_key": 1})
    assert any(e["type"] == "extra_forbidden" for e in info.value.errors())
    with pytest.raises(ValidationError):
        cls.model_validate({**env.config, "type": "not_" + case.type})


def test_successful_poll(case: Case, env: Env) -> None:
    df = poll(make(case, env), env.request)
    assert isinstance(df, pd.DataFrame)
    assert env.request.timestamp_column in df.columns
    assert len(df) == env.expected_rows
    ts = pd.to_datetime(df[env.request.timestamp_column], utc=True, format="mixed")
    assert ts.min() >= pd.Timestamp(env.request.since)
    assert ts.max() < pd.Timestamp(env.request.until)


def test_pagination(case: Case, env: Env) -> None:
    if not case.paginated:
        pytest.skip(f"{case.type} does not paginate ({case.notes or 'one result set'})")
    assert env.server is not None
    df = poll(make(case, env), env.request)
    assert len(df) == env.expected_rows
    assert len(env.server.log) >= 2, "all rows came in one page: the fake must paginate"


def test_retry_on_429_and_5xx(case: Case, env: Env) -> None:
    if not case.http:
        if case.unreachable is None:
            pytest.skip(f"{case.type}: no remote backend ({case.notes})")
        src = make(case, env, **case.unreachable(env.config))
        with pytest.raises(RetriableSourceError) as info:
            poll(src, env.request)
        assert src.name in str(info.value)
        return
    assert env.fail is not None
    sleeps = Sleeps()
    env.fail("429", 1)
    env.fail("503", 2)
    df = poll(make(case, env, sleeps), env.request)
    assert len(df) == env.expected_rows
    assert sleeps.calls[0] == pytest.approx(2.0)  # Retry-After honoured
    assert len(sleeps.calls) == 3
    assert sleeps.calls[2] > sleeps.calls[1]  # exponential backoff without Retry-After
    # Down for longer than the retries: retriable, for the pipeline to retry on a later tick.
    env.fail("503", 50)
    with pytest.raises(RetriableSourceError) as info:
        poll(make(case, env), env.request)
    assert "503" in str(info.value)


def test_fatal_on_401(case: Case, env: Env) -> None:
    if not case.http:
        if case.bad_credentials is None:
            pytest.skip(f"{case.type}: no credentials ({case.notes or 'not applicable'})")
        src = make(case, env, **case.bad_credentials(env.config))
    else:
        assert env.fail is not None
        env.fail("401", 50)
        src = make(case, env)
    with pytest.raises(FatalSourceError) as info:
        poll(src, env.request)
    message = str(info.value)
    assert src.name in message
    assert "credentials" in message
    assert SECRET not in message
    assert "PromQL" not in message and "metric's query" not in message  # not a query problem


def test_cursor_advance_partitions_rows(case: Case, env: Env) -> None:
    """Polling [a, m) then [m, b) returns exactly the rows of [a, b): cursors lose nothing
    and duplicate nothing."""
    req = env.request
    mid = T0 + (req.until - req.since) / 2
    first = poll(make(case, env), dataclasses.replace(req, until=mid))
    second = poll(make(case, env), dataclasses.replace(req, since=mid))
    whole = poll(make(case, env), req)
    assert len(first) > 0 and len(second) > 0
    ts = req.timestamp_column
    assert pd.to_datetime(first[ts], utc=True, format="mixed").max() < pd.Timestamp(mid)
    assert pd.to_datetime(second[ts], utc=True, format="mixed").min() >= pd.Timestamp(mid)
    both = pd.concat([first, second], ignore_index=True)
    pd.testing.assert_frame_equal(canonical(both, ts), canonical(whole, ts))


def test_idempotent_repoll(case: Case, env: Env) -> None:
    src = make(case, env)
    try:
        a = src.fetch(env.request)
        b = src.fetch(env.request)
    finally:
        src.close()
    ts = env.request.timestamp_column
    pd.testing.assert_frame_equal(canonical(a, ts), canonical(b, ts))


@pytest.mark.parametrize("cls,extra", [
    ("sources.sql:SqlSourceConfig", {"type": "sql", "url": "sqlite://"}),
    ("sources.http:HttpSourceConfig", {"type": "http", "base_url": "https://api.example.com"}),
])
def test_source_timeouts_take_durations_or_seconds(cls: str, extra: dict) -> None:
    """``timeout: 2m`` is two minutes, a plain number is seconds, and a typo is a config
    error naming the field (not a timeout of zero)."""
    import importlib

    from pydantic import ValidationError

    module, name = cls.split(":")
    config_cls = getattr(importlib.import_module(module), name)
    assert config_cls.model_validate({**extra, "timeout": "2m"}).timeout == 120.0
    assert config_cls.model_validate({**extra, "timeout": 5}).timeout == 5.0
    with pytest.raises(ValidationError) as err:
        config_cls.model_validate({**extra, "timeout": "2 minutes"})
    assert err.value.errors()[0]["loc"] == ("timeout",)
