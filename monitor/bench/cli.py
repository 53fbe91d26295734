"""``cxmon bench``: the benchmark command group. Each benchmark module registers its command
with one line below the marker."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks (results go to docs/benchmarks.md).", no_args_is_help=True)

# --- benchmark modules: one register line each, below this marker ---
