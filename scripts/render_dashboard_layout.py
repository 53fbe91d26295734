"""Draw the layout of a generated Grafana dashboard (its JSON model) as a PNG: the variables
bar, annotation toggles, rows and panels at their grid positions; band panels show an
illustrative series with its expected band and anomaly annotations.

    python scripts/render_dashboard_layout.py grafana/dashboards/cxmon-journey-checkout.json \
        docs/img/journey-dashboard.png

Needs matplotlib (not a cxmon dependency: ``pip install matplotlib``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyBboxPatch, Rectangle

ROW_H = 0.42  # figure units per grid row
BG, PANEL, TEXT, MUTED = "#111217", "#181b1f", "#d8d9da", "#8e8e8e"


def _band_plot(ax, x0, y0, w, h, seed):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 4 * np.pi, 200)
    expected = 1 + 0.4 * np.sin(t) + 0.15 * np.sin(3 * t)
    value = expected + rng.normal(0, 0.05, t.size)
    spike = slice(140, 152)
    value[spike] += 0.6
    xs = x0 + 0.6 + (w - 1.2) * (t - t.min()) / (t.max() - t.min())

    def ys(v):  # the grid's y axis points down
        return y0 + h - 0.4 - (h - 1.6) * (v - 0.2) / 1.9

    ax.fill_between(xs, ys(expected - 0.2), ys(expected + 0.2), color="#73bf69", alpha=0.25,
                    lw=0)
    ax.plot(xs, ys(expected), color="#56a64b", lw=1, ls="--")
    ax.plot(xs, ys(value), color="#5794f2", lw=1.4)
    for i in (140, 146):
        ax.plot([xs[i], xs[i]], [y0 + 1.0, y0 + h - 0.3], color="#f2495c", lw=1, alpha=0.9)
        ax.plot(xs[i], y0 + h - 0.3, marker="^", color="#f2495c", ms=5)
    legend = (("value", "#5794f2"), ("expected (dashed)", "#56a64b"),
              ("lower..upper band", "#73bf69"), ("anomaly annotation", "#f2495c"))
    lx = x0 + w - 0.4
    for text, color in reversed(legend):
        ax.text(lx, y0 + 0.55, f"■ {text}", color=color, fontsize=6.5, ha="right", va="center")
        lx -= 0.075 * len(text) + 0.7


def _severity_plot(ax, x0, y0, w, h, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(200)
    sev = np.clip(rng.gamma(1.2, 4, t.size), 0, 100)
    sev[140:152] = np.linspace(60, 85, 12)
    xs = x0 + 0.6 + (w - 1.2) * t / t.max()

    def ys(v):  # the grid's y axis points down
        return y0 + h - 0.4 - (h - 1.6) * v / 100

    ax.plot(xs, ys(sev), color="#ff9830", lw=1.2)
    for level, color in ((25, "#ff9830"), (75, "#f2495c")):
        ax.plot([xs[0], xs[-1]], [ys(level)] * 2, color=color, lw=0.8, ls=":")


def render(model: dict, out: Path) -> None:
    panels = model.get("panels") or []
    bottom = max((p["gridPos"]["y"] + p["gridPos"]["h"]) for p in panels)
    header = 3.2
    total = bottom + header
    fig = plt.figure(figsize=(14, total * ROW_H), facecolor=BG)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 24)
    ax.set_ylim(total, 0)
    ax.axis("off")
    ax.text(0.2, 0.8, model["title"], color=TEXT, fontsize=13, weight="bold", va="center")
    ax.text(23.8, 0.8, f"uid {model['uid']} · last 7 days · refresh 1m", color=MUTED,
            fontsize=8, ha="right", va="center")
    x = 0.2
    for v in model.get("templating", {}).get("list", []):
        label = v.get("label") or v["name"]
        value = "Prometheus" if v["type"] == "datasource" else "All (= roll-up total)"
        text = f"{label}: {value}"
        width = 0.11 * len(text) + 0.5
        ax.add_patch(FancyBboxPatch((x, 1.5), width, 0.8, boxstyle="round,pad=0.02",
                                    fc=PANEL, ec="#2c3235"))
        ax.text(x + 0.2, 1.9, text, color=TEXT, fontsize=7.5, va="center")
        x += width + 0.3
    for a in model.get("annotations", {}).get("list", []):
        text = f"● {a['name']}"
        ax.text(x + 0.2, 1.9, text, color=a.get("iconColor", "red"), fontsize=7.5, va="center")
        x += 0.1 * len(text) + 0.6
    for i, p in enumerate(panels):
        g = p["gridPos"]
        x0, y0, w, h = g["x"], g["y"] + header, g["w"], g["h"]
        if p["type"] == "row":
            ax.text(x0 + 0.2, y0 + 0.5, "▾ " + p["title"], color=TEXT, fontsize=10, weight="bold",
                    va="center")
            continue
        ax.add_patch(Rectangle((x0 + 0.08, y0 + 0.08), w - 0.16, h - 0.16, fc=PANEL,
                               ec="#2c3235", lw=0.8))
        ax.text(x0 + 0.4, y0 + 0.55, p.get("title", ""), color=TEXT, fontsize=8, va="center")
        targets = p.get("targets") or []
        if p["type"] == "stat":
            ax.text(x0 + w / 2, y0 + h / 2 + 0.2, "123", color="#73bf69", fontsize=16,
                    ha="center", va="center", weight="bold")
            expr = targets[0]["expr"] if targets else ""
            ax.text(x0 + w / 2, y0 + h - 0.5, expr[:70], color=MUTED, fontsize=5.5,
                    ha="center", va="center", family="monospace")
        elif [t.get("legendFormat") for t in targets] == ["value", "expected", "lower", "upper"]:
            _band_plot(ax, x0, y0, w, h, i)
        else:
            _severity_plot(ax, x0, y0, w, h, i)
    fig.text(0.995, 0.004, "layout from the generated JSON; illustrative data", color=MUTED,
             fontsize=7, ha="right")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, facecolor=BG)


if __name__ == "__main__":
    render(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
