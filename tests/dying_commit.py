"""A store whose next tick dies at its commit (a ``kill -9`` at the worst moment): the
tick's transaction runs all its writes, then fails at the tick record and rolls back."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.store import Store


class _Wrap:
    """A context manager yielding ``tx`` and closing ``cm`` (rolled back on an error)."""

    def __init__(self, cm: Any, tx: Any) -> None:
        self.cm, self.tx = cm, tx

    def __enter__(self) -> Any:
        return self.tx

    def __exit__(self, *exc: Any) -> Any:
        return self.cm.__exit__(*exc)


def die_at_commit(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``store``'s transactions fail at ``record_tick`` until ``monkeypatch.undo()``."""
    real = store.transaction

    def dying() -> _Wrap:
        cm = real()
        tx = cm.__enter__()

        def boom(**_: object) -> None:
            raise RuntimeError("killed")

        tx.record_tick = boom
        return _Wrap(cm, tx)

    monkeypatch.setattr(store, "transaction", dying)
