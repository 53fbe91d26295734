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


def test_unset_variables_cause_no_knock_on_problems() -> None:
    """With no environment, validate names the unset variables only: not also "api_token
    needs email", which is about the empty value the unset variable left behind. A problem
    that does not depend on them (no subdomain) is still reported."""
    from monitor.config import parse_config
    from monitor.errors import ConfigError

    text = (EXAMPLES / "zendesk.yaml").read_text()
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("sources.support.email", "environment variable ZENDESK_EMAIL is not set"),
        ("sources.support.api_token", "environment variable ZENDESK_API_TOKEN is not set"),
    ]
    with pytest.raises(ConfigError) as info:
        parse_config(text.replace("    subdomain: acme\n", ""), env={})
    assert ("sources.support", "set subdomain (https://<subdomain>.zendesk.com) or base_url") in [
        (p.path, p.message) for p in info.value.problems]
    assert not any("needs email" in p.message for p in info.value.problems)


def test_examples_end_with_a_newline() -> None:
    """Copied or concatenated (cat a.yaml b.yaml), a file without a final newline joins lines."""
    files = [*FILES, *sorted((EXAMPLES.parent / "monitor" / "examples").glob("*.yaml"))]
    assert len(files) > len(FILES)
    assert [p.name for p in files if not p.read_bytes().endswith(b"\n")] == []
