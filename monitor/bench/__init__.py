"""Benchmarks: ``cxmon bench ...``. Speed and quality goals are measured here, never in timed
unit tests. Each benchmark prints a table, writes its figures as one JSON object with
``--json FILE``, and records its section of ``docs/benchmarks.md`` with the command line."""
