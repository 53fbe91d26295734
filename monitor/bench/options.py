"""The options every ``cxmon bench`` command shares, declared once so they read the same in
every ``--help`` (the issue asks each benchmark for ``--json FILE``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOut = Annotated[Path | None, typer.Option("--json", metavar="<path>",
                                              help="Write figures here.")]
DocOut = Annotated[Path | None, typer.Option("--doc", metavar="<path>",
                                                    help="Benchmarks document to update.")]
Postgres = Annotated[str | None, typer.Option(
    metavar="<url>",
    help="Also run on this PostgreSQL database (in a schema created and dropped), e.g. "
         "postgresql+psycopg://postgres@127.0.0.1/test.")]
