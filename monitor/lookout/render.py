"""The converted config as a YAML file, and the self-check that it passes ``cxmon validate``."""

from __future__ import annotations

import yaml

from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.lookout.model import Conversion


def stand_ins(env: dict[str, str]) -> dict[str, str]:
    """A value for each referenced variable that validation accepts (URLs where needed)."""
    out = {}
    for var in env:
        if var.endswith("DB_URL"):
            out[var] = "sqlite://"
        elif var.endswith("WEBHOOK_URL"):
            out[var] = "https://hooks.example.invalid/lookout"
        else:
            out[var] = "/tmp/lookout-data"
    return out


def check(conv: Conversion) -> None:
    """Validate the document through cxmon's own config loader (``cxmon validate``'s rules)
    with stand-in values for its variables: a failure is a bug of the converter."""
    try:
        parse_config(render_yaml(conv), stand_ins(conv.env), source="converted config")
    except ConfigError as exc:  # pragma: no cover - the converter's own bug
        raise RuntimeError(f"the converted config does not validate: {exc}") from exc


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (SQL queries) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_yaml(conv: Conversion) -> str:
    """The config as YAML, headed by a comment listing the variables it needs."""
    assert conv.config is not None
    head = ["# Converted from Amazon Lookout for Metrics by `cxmon import lookout`.",
            "# Set these environment variables, then run `cxmon validate -c <this file>`:"]
    head += [f"#   {var}: {what}" for var, what in conv.env.items()]
    body = yaml.dump(conv.config, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     width=100)
    return "\n".join(head) + "\n" + body
