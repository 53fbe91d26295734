"""Record benchmark results in ``docs/benchmarks.md``, one section per benchmark, each with
the exact command that produced it, so the numbers can be reproduced and compared."""

from __future__ import annotations

import json
import platform
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[2]


def default_doc() -> Path | None:
    """``docs/benchmarks.md`` of the cxmon checkout this code runs from, whatever the current
    directory; ``None`` for an installed package (no checkout: pass ``--doc FILE``)."""
    if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "docs").is_dir():
        return _ROOT / "docs" / "benchmarks.md"
    return None
_HEADER = (
    "# Benchmarks\n\n"
    "Every section is written by the `cxmon bench` command it names, on the machine it names.\n"
    "Re-run the command to refresh it. Ratios are measured side by side in one run.\n"
)


def machine() -> str:
    """A one-line description of where the numbers came from."""
    import os

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()}"
    )


def command_line() -> str:
    """The command as typed (``cxmon bench ...``)."""
    args = sys.argv[1:]
    return "cxmon " + " ".join(args) if args else "cxmon bench"


def update_section(name: str, body_markdown: str, doc: Path | None = None) -> Path | None:
    """Replace (or append) the section ``name`` of the benchmarks document: ``doc``, else the
    checkout's ``docs/benchmarks.md``; says on stderr what was written (or why nothing)."""
    doc = doc or default_doc()
    if doc is None:
        print("docs not updated: not running from a cxmon checkout (pass --doc FILE)",
              file=sys.stderr)
        return None
    doc.parent.mkdir(parents=True, exist_ok=True)
    text = doc.read_text() if doc.exists() else _HEADER
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"<!-- bench:{name} -->\n## {name}\n\n"
        f"Command: `{command_line()}`  \nRun: {stamp} on {machine()}\n\n"
        f"{body_markdown.strip()}\n<!-- /bench:{name} -->\n"
    )
    tag = re.escape(name)
    pattern = re.compile(rf"<!-- bench:{tag} -->.*?<!-- /bench:{tag} -->\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block
    doc.write_text(text)
    print(f"docs: section {name!r} of {doc} updated", file=sys.stderr)
    return doc


def publish(name: str, body_markdown: str, doc: Path | None, run: Mapping[str, int],
            published: Mapping[str, int]) -> Path | None:
    """:func:`update_section`, unless no ``--doc`` was given and the run is smaller than the
    published one in any option (``run`` and ``published``: option name -> value): a quick
    try-out must not replace the published figures with a toy run's."""
    if doc is None and any(run[k] < v for k, v in published.items()):
        sizes = " ".join(f"--{k} {v:,}" for k, v in published.items())
        print(f"docs not updated: the published figures are for {sizes} (pass --doc FILE to "
              "write a smaller run)", file=sys.stderr)
        return None
    return update_section(name, body_markdown, doc)


def write_json(path: Path | None, figures: dict[str, Any]) -> None:
    """``--json FILE``: the benchmark's figures as one JSON object."""
    if path is not None:
        path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
