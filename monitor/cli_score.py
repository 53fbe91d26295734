"""``cxmon score`` (one series through one detector, from a CSV) and ``cxmon feedback``."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

SCORE_HELP = """Score one series with one detector, streaming, without look-ahead.

Reads INPUT (CSV with columns timestamp,value; timestamps in any ISO format, naive = UTC),
feeds the rows in time order and writes OUTPUT with columns timestamp,value,anomaly_score.
Row i's score uses rows <= i only. anomaly_score = 1 - p, p the detector's tail probability
(0 while the detector is still warming up). Points the default post-rules would flag
(severity >= 25) are learned cautiously, as in `cxmon run`.

Every detector type works with its defaults; --param k=v (repeatable, YAML values) sets
its options, e.g. `--detector river --param model=HalfSpaceTrees --param calibration=300`.
The interval is the median step of the timestamps unless --interval is given.
"""


def score_frame(frame: pd.DataFrame, detector: str, params: dict[str, Any],
                interval: timedelta | None = None) -> pd.DataFrame:
    """Score ``frame`` (timestamp, value) point by point; returns it with ``anomaly_score``."""
    import detectors  # noqa: F401  (registers the built-in types)
    from detectors.base import TickBatch
    from detectors.postrules import score_for_severity
    from detectors.registry import create

    ts = pd.to_datetime(frame["timestamp"], utc=True, format="mixed")
    order = np.argsort(ts.to_numpy(), kind="stable")
    ts_ns = ts.dt.as_unit("ns").astype("int64").to_numpy()[order]
    values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(np.float64)[order]
    if interval is None:
        steps = np.diff(ts_ns)
        steps = steps[steps > 0]
        interval = timedelta(microseconds=float(np.median(steps)) / 1e3) if len(steps) else \
            timedelta(hours=1)
    det = create({"type": detector, **params}, interval=interval)
    flag_at = score_for_severity(25.0)
    key = np.array(["series"], dtype=object)
    nan = np.array([math.nan])
    scores = np.zeros(len(values))
    for i in range(len(values)):
        batch = TickBatch(key, ts_ns[i:i + 1], values[i:i + 1], nan)
        s = float(det.score(batch).score[0])
        scores[i] = s if math.isfinite(s) else 0.0
        det.learn(batch, np.array([math.isfinite(s) and s >= flag_at]))
    out = pd.DataFrame({"timestamp": frame["timestamp"].to_numpy()[order],
                        "value": frame["value"].to_numpy()[order], "anomaly_score": scores})
    return out


def register(app: typer.Typer) -> None:
    """Add ``score`` and ``feedback`` to the ``cxmon`` app."""

    @app.command("score", help=SCORE_HELP)
    def score(
        detector: Annotated[str, typer.Option("--detector", "-d", help="Detector type, e.g. "
                                              "robust_seasonal, seasonal_baseline, prophet, "
                                              "river.")] = "robust_seasonal",
        param: Annotated[list[str] | None, typer.Option(
            "--param", "-p", help="Detector option k=v (repeatable).")] = None,
        input: Annotated[Path, typer.Option("--input", "-i", help="CSV: timestamp,value.",
                                            exists=True, dir_okay=False)] = Path("-"),
        output: Annotated[Path, typer.Option("--output", "-o", help="CSV to write: "
                                             "timestamp,value,anomaly_score.")] = Path("-"),
        interval: Annotated[str | None, typer.Option(
            "--interval", help="Series interval (e.g. 5m, 1h); default: median step.")] = None,
    ) -> None:
        from pydantic import ValidationError

        import detectors  # noqa: F401
        from detectors.registry import detector_types
        from monitor.bench.nab import parse_params
        from monitor.durations import parse_duration

        if detector not in detector_types():
            valid = ", ".join(sorted(detector_types()))
            raise typer.BadParameter(f"unknown detector {detector!r}; valid: {valid}",
                                     param_hint="--detector")
        frame = pd.read_csv(input)
        missing = {"timestamp", "value"} - set(frame.columns)
        if missing:
            raise typer.BadParameter(f"{input} lacks column(s) {', '.join(sorted(missing))}",
                                     param_hint="--input")
        step = parse_duration(interval) if interval else None
        try:
            out = score_frame(frame, detector, parse_params(param or []), step)
        except ValidationError as exc:
            raise typer.BadParameter(str(exc), param_hint="--param") from None
        out.to_csv(output, index=False)
        typer.echo(f"scored {len(out)} rows -> {output}", err=True)

    @app.command("feedback")
    def feedback(
        anomaly_id: Annotated[str, typer.Argument(help="Anomaly id (as in alerts and the store).")],
        label: Annotated[str, typer.Argument(help="not_anomaly | expected | confirmed")],
        config: Annotated[Path, typer.Option("--config", "-c", help="cxmon YAML config.")] = Path(
            "cxmon.yaml"),
        note: Annotated[str | None, typer.Option("--note", help="Why.")] = None,
        user: Annotated[str | None, typer.Option("--user", help="Who.")] = None,
    ) -> None:
        """Mark an anomaly: not_anomaly / expected make that series need a rarer point before
        it alerts again (a week; for expected: that day and the same hour of the week for 4
        weeks); confirmed cancels earlier such verdicts."""
        from monitor.cli import _load, _open_store

        if label not in ("not_anomaly", "expected", "confirmed"):
            raise typer.BadParameter("expected not_anomaly, expected or confirmed",
                                     param_hint="LABEL")
        store = _open_store(_load(config))
        try:
            fid = store.add_feedback(anomaly_id, label, source="cli", user=user, note=note)
        except KeyError as exc:
            typer.echo(str(exc).strip("'\""), err=True)
            raise typer.Exit(1) from None
        finally:
            store.close()
        typer.echo(f"feedback {fid}: {anomaly_id} marked {label}")
