"""Every connector has an example config in ``examples/`` and ``cxmon validate`` passes on it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import load_config
from sources.registry import source_types

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


#: Variables whose value validate checks (a sql source's url must be a SQLAlchemy URL).
REALISTIC = {"WAREHOUSE_URL": "postgresql+psycopg://reader@warehouse.internal/dw"}


def env_for(path: Path) -> dict[str, str]:
    return {name: REALISTIC.get(name, f"example-{name.lower()}")
            for name in VAR.findall(path.read_text())}


def test_every_connector_has_an_example() -> None:
    covered = {load_config(p, env=env_for(p)).sources[k].type
               for p in FILES for k in load_config(p, env=env_for(p)).sources}
    assert set(source_types()) - {"demo"} <= covered


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_cxmon_validate_passes(path: Path) -> None:
    out = CliRunner().invoke(app, ["validate", "-c", str(path)], env=env_for(path))
    assert out.exit_code == 0, out.output
    assert "✓" in out.output
