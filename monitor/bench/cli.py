"""``cxmon bench``: the benchmark command group. Each benchmark module registers its command
with one line below the marker."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks (results go to docs/benchmarks.md).", no_args_is_help=True)

# --- benchmark modules: one register line each, below this marker ---
__import__("monitor.bench.nab").bench.nab.register(bench_app)  # nab
__import__("monitor.bench.rca").bench.rca.register(bench_app)  # rca
__import__("monitor.bench.exporter").bench.exporter.register(bench_app)  # exporter
__import__("monitor.bench.detect").bench.detect.register(bench_app)  # detect
__import__("monitor.bench.tick").bench.tick.register(bench_app)  # tick
__import__("monitor.bench.retention").bench.retention.register(bench_app)  # retention
