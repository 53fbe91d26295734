"""The converted config as a YAML file, and the self-check that it passes ``cxmon validate``."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import yaml

from monitor.config import MonitorConfig, parse_config
from monitor.durations import format_duration
from monitor.errors import ConfigError
from monitor.lookout.model import Conversion, Note


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


def check(conv: Conversion) -> MonitorConfig:
    """Validate the document through cxmon's own config loader (``cxmon validate``'s rules)
    with stand-in values for its variables: a failure is a bug of the converter."""
    try:
        return parse_config(render_yaml(conv), stand_ins(conv.env), source="converted config")
    except ConfigError as exc:  # pragma: no cover - the converter's own bug
        raise RuntimeError(f"the converted config does not validate: {exc}") from exc


def fill_history(conv: Conversion) -> None:
    """Give each metric a ``history:`` as long as its detectors' warm-up.

    Lookout trained on the metric set's past (``HistoricalDataPathList`` or the table's rows)
    before it alerted; without ``history`` cxmon's first run starts from nothing and stays
    silent for the warm-up (a week for robust_seasonal), which ``cxmon validate`` warns about.
    Read from the detectors themselves, so it follows their warm-up if that changes.
    """
    from monitor.detection import MetricDetectors
    from monitor.pipeline import post_rules

    assert conv.config is not None
    cfg = check(conv)
    longest = timedelta(0)
    for entry, m in zip(conv.config["metrics"], cfg.metrics, strict=True):
        dets = MetricDetectors(m.name, m.interval,
                               {n: cfg.detector(n) for n in m.detectors}, post_rules(m))
        warmup = max(dets.warmup_periods().values(), default=timedelta(0))
        if warmup > m.history:
            entry["history"] = format_duration(warmup)
            longest = max(longest, warmup)
    if longest:
        conv.notes.append(Note(
            "mapped", "history",
            f"each metric reads {format_duration(longest)} back on its first run (history:), "
            "the warm-up of cxmon's detector, as Lookout learned from past data first: that "
            "past must be in the source (sync the older S3 folders too)"))


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (SQL queries) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_yaml(conv: Conversion) -> str:
    """The config as YAML, headed by a comment listing the variables it needs and the report's
    to-do items (manual steps, settings not converted): the stderr report scrolls away, the
    file is what the team reviews and keeps."""
    assert conv.config is not None
    head = ["# Converted from Amazon Lookout for Metrics by `cxmon import lookout`."]
    if conv.env:
        head.append("# Set these environment variables, then run `cxmon validate -c <this "
                    "file>`:")
        head += [f"#   {var}: {what}" for var, what in conv.env.items()]
    todo = [n for n in conv.notes if n.kind in ("manual", "unsupported")]
    if todo:
        head.append("# To do before going live (manual: a step; unsupported: not converted):")
        for n in todo:
            head += textwrap.wrap(f"{n.kind}: {n.setting}: {n.message}", width=98,
                                  initial_indent="# - ", subsequent_indent="#   ",
                                  break_on_hyphens=False)
    body = yaml.dump(conv.config, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     width=100)
    return "\n".join(head) + "\n" + body
