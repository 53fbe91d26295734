"""Check a SQLAlchemy database URL at config load, so ``cxmon validate`` refuses what
``cxmon run`` would refuse later (an unparsable URL, an unknown dialect or driver).

Messages never quote the URL: it may hold a password or come from the environment.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Databases the store supports (monitor/store/); a ``sql`` source takes any dialect.
STORE_BACKENDS = ("sqlite", "postgresql")
STORE_EXAMPLES = "use sqlite:///path.db or postgresql+psycopg://..."


def url_problem(url: str, backends: Iterable[str] | None = None) -> str | None:
    """Why SQLAlchemy cannot use ``url`` (None when it can); ``backends`` limits the database.

    Loads the dialect (``make_url(url).get_dialect()``), not the DBAPI driver: a config may be
    validated on a machine without the production database's driver.

    >>> url_problem("sqlite:///cxmon.db") is None
    True
    >>> url_problem("notaurl")
    'not a SQLAlchemy URL (expected dialect+driver://user:password@host/database)'
    >>> url_problem("mysqlx://u:p@h/db")
    "unknown database dialect 'mysqlx' (no SQLAlchemy dialect of that name is installed)"
    >>> url_problem("mysql+pymysql://h/db", ["sqlite", "postgresql"])
    "unsupported database 'mysql'; supported: sqlite, postgresql"
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return "not a SQLAlchemy URL (expected dialect+driver://user:password@host/database)"
    allowed = list(backends) if backends is not None else None
    backend = parsed.get_backend_name()
    if allowed is not None and backend not in allowed:
        return f"unsupported database {backend!r}; supported: {', '.join(allowed)}"
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        if "+" in parsed.drivername:
            return (f"unknown driver {parsed.get_driver_name()!r} for {backend} (SQLAlchemy has "
                    f"no dialect {parsed.drivername!r})")
        return f"unknown database dialect {backend!r} (no SQLAlchemy dialect of that name is " \
            "installed)"
    except Exception as exc:  # a third-party dialect that fails to import
        return f"cannot load the SQLAlchemy dialect {parsed.drivername!r}: {type(exc).__name__}"
    return None
