"""Root cause: the localisation algorithm, exact derived measures, history-based expected
values, the generated benchmark, and root causes in incidents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product

import numpy as np
import pandas as pd
import pytest

from alerts.notifiers.console import render_panel
from alerts.payload import incident_payload
from detectors.rootcause import (
    Cube,
    RootCauseError,
    analyse,
    expected_from_history,
    localize,
    prepare,
)
from monitor.bench.rca import generate_case, run_case
from monitor.incidents import Attribution, IncidentChange, IncidentTracker, attribute
from monitor.model import Anomaly, Direction, Series, ValueKind, series_key

CH = ["web", "app", "store", "cc"]
RG = ["uk", "de", "fr", "us"]
OS = ["ios", "android", "other"]


def cube_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = list(product(CH, RG, OS))
    df = pd.DataFrame(rows, columns=["channel", "region", "os"])
    df["expected"] = rng.uniform(500, 2000, len(df))
    df["actual"] = df["expected"] * rng.normal(1.0, 0.02, len(df))
    return df


def top_elements(df: pd.DataFrame, **kw: str) -> list[dict[str, str]]:
    cube = prepare(df, ["channel", "region", "os"], **kw)  # type: ignore[arg-type]
    causes = localize(cube, top=1)
    return list(causes[0].elements) if causes else []


def test_additive_root_causes_at_different_depths_are_found_exactly() -> None:
    df = cube_frame()
    hit = (df["channel"] == "app") & (df["region"] == "uk")
    df.loc[hit, "actual"] = df.loc[hit, "expected"] * 1.8
    hit2 = df["os"] == "other"
    df.loc[hit2, "actual"] = df.loc[hit2, "expected"] * 0.5
    found = top_elements(df, actual="actual", expected="expected")
    assert sorted(found, key=len) == [{"os": "other"}, {"channel": "app", "region": "uk"}]


def test_no_answer_names_an_element_and_its_ancestor() -> None:
    """web is up 30 % everywhere and web-uk 100 %: every answer names web or some of its
    children, never both, so no leaf is counted twice and shares add up to at most 1."""
    df = cube_frame(2)
    web = df["channel"] == "web"
    df.loc[web, "actual"] *= np.where(df.loc[web, "region"] == "uk", 2.0, 1.3)
    cube = prepare(df, ["channel", "region", "os"], actual="actual", expected="expected")
    causes = localize(cube, top=5)
    assert causes
    for cause in causes:
        items = [set(e.items()) for e in cause.elements]
        assert not any(a < b for a in items for b in items), cause.elements
    assert sum(c.share for c in causes[0].contributions) <= 1.0 + 1e-9


def _small_count_cube(seed: int, hit: bool) -> pd.DataFrame:
    """32 leaves of whole counts (30-100), 3 % noise, rounded; app/r0 doubles if ``hit``."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(list(product(CH, [f"r{i}" for i in range(8)])),
                      columns=["channel", "region"])
    df["expected"] = rng.uniform(30, 100, len(df)).round()
    df["actual"] = (df["expected"] * rng.normal(1, 0.03, len(df))).round()
    if hit:
        df.loc[(df["channel"] == "app") & (df["region"] == "r0"), "actual"] *= 2
    return df


def test_small_cubes_of_counts_name_the_cause_and_not_the_noise() -> None:
    """With whole counts many leaves deviate by exactly 0, and a quantile of |deviation|
    said "no noise": every noisy leaf became a cause (up to 8 per answer). Over 10 cubes
    the cause alone is named at least 9 times, and a cube of pure noise rarely gets an
    answer."""
    exact = noise_answered = 0
    for seed in range(10):
        cube = prepare(_small_count_cube(seed, True), ["channel", "region"], actual="actual",
                       expected="expected")
        causes = localize(cube, top=1)
        exact += bool(causes) and causes[0].elements == ({"channel": "app", "region": "r0"},)
        noise = prepare(_small_count_cube(seed, False), ["channel", "region"],
                        actual="actual", expected="expected")
        noise_answered += bool(localize(noise, top=1))
    assert exact >= 9
    assert noise_answered <= 2


def test_nothing_abnormal_gives_no_root_cause() -> None:
    assert top_elements(cube_frame(1), actual="actual", expected="expected") == []


def test_ratio_is_analysed_as_numerator_and_denominator() -> None:
    """Drop-off = abandoned / started. web traffic doubles at a normal rate (not a cause);
    android's rate rises from 30 % to 45 % (the cause). Analysing the numerator alone would
    blame web."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame(list(product(CH, RG, OS)), columns=["channel", "region", "os"])
    df["exp_started"] = rng.uniform(1000, 3000, len(df))
    df["started"] = df["exp_started"] * rng.normal(1.0, 0.02, len(df))
    df.loc[df["channel"] == "web", "started"] *= 2.0
    rate = np.where(df["os"] == "android", 0.45, 0.30)
    df["abandoned"] = df["started"] * rate * rng.normal(1.0, 0.02, len(df))
    df["exp_abandoned"] = df["exp_started"] * 0.30
    found = top_elements(df, actual="abandoned", expected="exp_abandoned",
                         denominator="started", expected_denominator="exp_started")
    assert found == [{"os": "android"}]
    naive = top_elements(df, actual="abandoned", expected="exp_abandoned")
    assert {"channel": "web"} in naive


def test_missing_leaves_zero_expected_and_zero_denominators_are_handled() -> None:
    df = cube_frame(2)
    df = df[~((df["channel"] == "cc") & (df["region"] == "us"))].copy()  # missing leaves
    new = (df["channel"] == "store") & (df["region"] == "fr")
    df.loc[new, "expected"] = 0.0  # a segment that did not exist yesterday
    df.loc[new, "actual"] = 3000.0
    found = top_elements(df, actual="actual", expected="expected")
    assert found == [{"channel": "store", "region": "fr"}]
    causes = localize(prepare(df, ["channel", "region", "os"], actual="actual",
                              expected="expected"))
    assert causes[0].contributions[0].change == float("inf")
    assert causes[0].to_dict()["contributions"][0]["change"] is None  # JSON-able
    # zero denominators: no sessions at all in a leaf, actual or expected
    df["den"], df["exp_den"] = 100.0, 100.0
    df.loc[df["channel"] == "cc", "den"] = 0.0
    df.loc[df["channel"] == "app", "exp_den"] = 0.0
    df["num"] = np.where(df["den"] > 0, 30.0, 0.0)
    df["exp_num"] = np.where(df["exp_den"] > 0, 30.0, 0.0)
    assert top_elements(df, actual="num", expected="exp_num", denominator="den",
                        expected_denominator="exp_den") == []
    with pytest.raises(RootCauseError, match="missing column"):
        prepare(df, ["channel", "nope"], actual="actual", expected="expected")


def test_expected_from_history_uses_each_leafs_own_past() -> None:
    t0 = pd.Timestamp("2026-01-05T00:00Z")
    rows = []
    for h in range(6):
        for ch, rg in product(CH, RG):
            started = 1000
            rate = 0.3 if not (h == 5 and ch == "app" and rg == "uk") else 0.6
            if h == 5 and ch == "cc" and rg == "us":
                continue  # missing at the anomalous time
            rows.append({"ts": t0 + pd.Timedelta(hours=h), "channel": ch, "region": rg,
                         "started": started, "abandoned": rate * started})
    df = pd.DataFrame(rows)
    at = t0 + pd.Timedelta(hours=5)
    leaves = expected_from_history(df, ["channel", "region"], time_column="ts", at=at,
                                   value="abandoned", denominator="started")
    assert len(leaves) == 16 and set(leaves.columns) >= {"actual", "expected", "denominator"}
    cube = prepare(leaves, ["channel", "region"], actual="actual", expected="expected",
                   denominator="denominator", expected_denominator="expected_denominator")
    assert localize(cube, top=1)[0].elements == ({"channel": "app", "region": "uk"},)
    additive = expected_from_history(df, ["channel", "region"], time_column="ts", at=at,
                                     value="started")
    assert float(additive["expected"].iloc[0]) == 1000.0
    with pytest.raises(RootCauseError, match="no rows before"):
        expected_from_history(df, ["channel"], time_column="ts", at=t0, value="started")


def test_expected_from_history_compares_the_same_time_of_day() -> None:
    """Contacts peak at noon. At noon web-uk doubles; against the median of whole days every
    leaf would look up (and web-uk's share small), against past noons only web-uk is."""
    t0 = pd.Timestamp("2026-01-05T00:00Z")
    at = t0 + pd.Timedelta(days=4, hours=12)
    rows = []
    for h in range(4 * 24 + 13):
        t = t0 + pd.Timedelta(hours=h)
        for ch, rg in product(CH, RG):
            level = 100.0 if t.hour == 12 else 10.0
            if t == at and (ch, rg) == ("web", "uk"):
                level *= 2
            rows.append({"ts": t, "channel": ch, "region": rg, "contacts": level})
    df = pd.DataFrame(rows)
    leaves = expected_from_history(df, ["channel", "region"], time_column="ts", at=at,
                                   value="contacts")
    assert leaves.attrs["history"] == "same time of day (4 points)"
    assert set(leaves["expected"]) == {100.0}
    cube = prepare(leaves, ["channel", "region"], actual="actual", expected="expected")
    best = localize(cube, top=1)[0]
    assert best.elements == ({"channel": "web", "region": "uk"},)
    assert best.share == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["additive", "ratio"])
def test_generated_benchmark_cases_are_solved(kind: str) -> None:
    """A small slice of ``cxmon bench rca`` (the full run is the benchmark)."""
    rng = np.random.default_rng(11)
    scores = [run_case(generate_case(rng, kind=kind, n_causes=n, depth=d, n_leaves=2000))[0]
              for n, d in [(1, 1), (2, 2), (3, 1), (1, 2)]]
    assert np.mean(scores) >= 0.75, scores


# --- incidents ------------------------------------------------------------------------------

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
H = timedelta(hours=1)


def _anomaly(metric: str, at: datetime, labels: dict[str, str], sev: int = 40) -> Anomaly:
    return Anomaly(series=series_key(metric, labels), metric=metric, labels=labels,
                   timestamp=at, value=2.0, expected=1.0, lower=0.5, upper=1.5,
                   score=0.9999, severity=sev, direction=Direction.UP, detector="default")


def _leaf_tick(metric: str, at: datetime) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A ratio measure frame (leaves + total) and scores where app/uk's rate doubled."""
    series: dict[str, Series] = {}
    frame, scores = [], []
    for ch, rg in product(CH, RG):
        labels = {"journey": "checkout", "channel": ch, "region": rg}
        key = series_key(metric, labels)
        series[key] = Series(metric, labels, ("channel", "region"))
        rate = 0.6 if (ch, rg) == ("app", "uk") else 0.3
        frame.append({"timestamp": pd.Timestamp(at), "series": key, "value": rate,
                      "numerator": 1000 * rate, "denominator": 1000.0})
        scores.append({"timestamp": pd.Timestamp(at), "series": key, "expected": 0.3,
                       "lower": 0.27, "upper": 0.33})
    total = series_key(metric, {"journey": "checkout"})
    series[total] = Series(metric, {"journey": "checkout"}, ())
    frame.append({"timestamp": pd.Timestamp(at), "series": total, "value": 0.31875,
                  "numerator": 5100.0, "denominator": 16000.0})
    return pd.DataFrame(frame), pd.DataFrame(scores), series


def test_attribute_uses_leaf_rows_and_detector_expectations() -> None:
    frame, scores, series = _leaf_tick("dropoff", T0)
    a = _anomaly("dropoff", T0, {"journey": "checkout"})
    out = attribute(frame, scores, series, [a], kind=ValueKind.RATIO,
                    dimensions=["channel", "region"])
    assert len(out) == 1 and out[0].labels == {"journey": "checkout"}
    assert out[0].causes[0].elements == ({"channel": "app", "region": "uk"},)
    assert out[0].causes[0].share == pytest.approx(1.0)
    assert attribute(frame, scores, series, [], kind=ValueKind.RATIO,
                     dimensions=["channel", "region"]) == []


def test_related_measures_of_a_journey_form_one_incident_with_order_and_root_cause() -> None:
    tr = IncidentTracker(["journey"], gap=3 * H, renotify=H, quiet_ticks=2)
    frame, scores, series = _leaf_tick("dropoff", T0)
    first = _anomaly("dropoff", T0, {"journey": "checkout"}, 60)
    rca = attribute(frame, scores, series, [first], kind=ValueKind.RATIO,
                    dimensions=["channel", "region"])
    opened = tr.observe([first], T0 + H, rca)
    later = _anomaly("complaints", T0 + H, {"journey": "checkout", "channel": "app"})
    updated = tr.observe([later], T0 + 2 * H + H)
    other = tr.observe([_anomaly("csat", T0 + H, {"journey": "support"})], T0 + 3 * H)
    inc = opened[0].incident
    assert updated[0].incident is inc and updated[0].notify  # a new measure joined
    assert other[0].incident is not inc
    assert inc.measure_order() == ["dropoff", "complaints"]
    payload = incident_payload(updated[0])
    assert [m["metric"] for m in payload["measures"]] == ["dropoff", "complaints"]
    assert payload["root_cause"][0]["elements"] == [{"channel": "app", "region": "uk"}]
    assert payload["root_cause"][0]["share"] == pytest.approx(1.0)
    assert payload["contributors"][0]["element"] == {"channel": "app", "region": "uk"}
    text = render_panel(payload)
    from rich.console import Console

    console = Console(width=100, record=True)
    console.print(text)
    assert "root cause · dropoff: channel=app, region=uk (100% of change)" in console.export_text()
    # resolves only after the quiet gap AND two normal ticks
    tr2 = IncidentTracker(["journey"], gap=H, quiet_ticks=2)
    tr2.observe([first], T0 + H, [Attribution("dropoff", {"journey": "checkout"}, T0, 60, ())])
    assert tr2.resolve_quiet(T0 + 5 * H) == []  # the tick that saw the anomaly is not quiet
    assert tr2.resolve_quiet(T0 + 6 * H) == []  # one normal tick
    assert [c.status for c in tr2.resolve_quiet(T0 + 7 * H)] == ["resolved"]


def test_a_root_cause_from_before_the_incident_is_not_attached() -> None:
    """A first tick that learns history finds the root cause of an old, unalerted change;
    the incident opened later (here by another anomaly of the journey) must not show it."""
    tr = IncidentTracker(["journey"], gap=3 * H, renotify=H, quiet_ticks=2)
    frame, scores, series = _leaf_tick("dropoff", T0)
    old = _anomaly("dropoff", T0, {"journey": "checkout"}, 60)
    rca = attribute(frame, scores, series, [old], kind=ValueKind.RATIO,
                    dimensions=["channel", "region"])
    assert rca and rca[0].causes
    now = _anomaly("complaints", T0 + 30 * H, {"journey": "checkout"})
    inc = tr.observe([now], T0 + 31 * H, rca)[0].incident
    assert inc.root_causes == {}


def test_an_incident_of_silence_is_titled_no_data() -> None:
    from dataclasses import replace

    tr = IncidentTracker(["journey"], gap=3 * H)
    silent = replace(_anomaly("contacts", T0, {"journey": "support"}), kind="no_data",
                     detector="no_data", value=9.0, expected=0.0)
    change = tr.observe([silent], T0 + H)[0]
    assert incident_payload(change)["title"] == "journey=support: contacts has no data"
    loud = _anomaly("csat", T0 + H, {"journey": "support"})
    assert incident_payload(tr.observe([loud], T0 + 2 * H)[0])["title"].endswith("anomalous")


def test_incident_root_causes_survive_a_restart() -> None:
    """What the pipeline stores in the incident summary restores the in-memory incident."""
    import json

    from monitor.incidents import OpenIncident, incident_summary, restore_summary

    frame, scores, series = _leaf_tick("dropoff", T0)
    first = _anomaly("dropoff", T0, {"journey": "checkout"}, 60)
    rca = attribute(frame, scores, series, [first], kind=ValueKind.RATIO,
                    dimensions=["channel", "region"])
    tr = IncidentTracker(["journey"])
    inc = tr.observe([first], T0 + H, rca)[0].incident
    stored = json.loads(json.dumps(incident_summary(inc)))
    assert stored["root_cause"][0]["elements"] == [{"channel": "app", "region": "uk"}]
    back = OpenIncident(inc.key, inc.group, inc.opened_at, inc.last_anomaly_at, inc.severity)
    restore_summary(back, stored)
    assert back.measures == inc.measures and back.root_causes == inc.root_causes


def _even_cube(noise: bool) -> Cube:
    """4 x 4 leaves that all rose by 30 % (give or take the noise): no value is the culprit."""
    wobble = [3.0, -2.0, 1.0, -3.0, 2.0, 0.0, -1.0, 4.0, -4.0, 1.0, 2.0, -2.0, 0.0, 3.0, -1.0, 1.0]
    rows = [{"channel": c, "region": r, "actual": 130.0 + wobble[4 * i + j], "expected": 100.0,
             "noise": 3.0}
            for i, c in enumerate(["app", "web", "store", "phone"])
            for j, r in enumerate(["uk", "de", "fr", "us"])]
    return prepare(pd.DataFrame(rows), ["channel", "region"], actual="actual",
                   expected="expected", noise="noise" if noise else None)


def test_a_change_spread_over_everything_names_no_culprit() -> None:
    # with the detectors' noise (as in alerts) every channel was named, "100% of the change"
    # (in an alert from a real tick: region=us and region=de, 67%), for a rise all shared
    found = analyse(_even_cube(noise=True))
    assert found.causes == [] and found.spread
    assert localize(_even_cube(noise=True)) == []
    # noise estimated from the leaves takes the shared rise for noise: still no culprit
    assert localize(_even_cube(noise=False)) == []


def test_one_culprit_on_top_of_noise_is_still_named_not_spread() -> None:
    rows = [{"channel": c, "region": r, "expected": 100.0, "noise": 3.0,
             "actual": 200.0 if r == "uk" else 100.0 + (2.0 if c == "app" else -1.0)}
            for c in ["app", "web", "store", "phone"] for r in ["uk", "de", "fr", "us"]]
    cube = prepare(pd.DataFrame(rows), ["channel", "region"], actual="actual",
                   expected="expected", noise="noise")
    found = analyse(cube, top=1)
    assert not found.spread
    assert [c.elements for c in found.causes] == [({"region": "uk"},)]


def test_each_split_group_keeps_its_own_root_cause_named_with_its_split_value() -> None:
    """split_by [channel], dimensions [region]: app's drop-off rose in the UK, web's in
    Germany. Before, the incident kept one root cause per metric, `region=uk` (app's, with
    app's share) and no channel: the message blamed the UK for everything, web's cause lost."""
    series: dict[str, Series] = {}
    frame, scores = [], []
    hit = {("app", "uk"), ("web", "de")}
    for ch, rg in product(CH, RG):
        labels = {"journey": "checkout", "channel": ch, "region": rg}
        key = series_key("dropoff", labels)
        series[key] = Series("dropoff", labels, ("region",))
        rate = 0.6 if (ch, rg) in hit else 0.3
        frame.append({"timestamp": pd.Timestamp(T0), "series": key, "value": rate,
                      "numerator": 1000 * rate, "denominator": 1000.0})
        scores.append({"timestamp": pd.Timestamp(T0), "series": key, "expected": 0.3,
                       "lower": 0.27, "upper": 0.33})
    anomalies = [_anomaly("dropoff", T0, {"journey": "checkout", "channel": ch}, sev)
                 for ch, sev in (("app", 50), ("web", 40))]
    rca = attribute(pd.DataFrame(frame), pd.DataFrame(scores), series, anomalies,
                    kind=ValueKind.RATIO, dimensions=["region"], split_by=["channel"])
    assert [a.split for a in rca] == [{"channel": "app"}, {"channel": "web"}]
    inc = IncidentTracker(["journey"]).observe(anomalies, T0 + H, rca)[0].incident
    causes = incident_payload(IncidentChange(inc, "opened", tuple(anomalies), True, T0 + H))
    got = [(c["metric"], c["elements"], c["share"]) for c in causes["root_cause"]]
    assert got == [("dropoff", [{"channel": "app", "region": "uk"}], pytest.approx(1.0)),
                   ("dropoff", [{"channel": "web", "region": "de"}], pytest.approx(1.0))]
    assert causes["contributors"][0]["element"] in ({"channel": "app", "region": "uk"},
                                                    {"channel": "web", "region": "de"})


def test_a_leaf_that_sent_no_rows_is_named_from_its_filled_score() -> None:
    """A count whose phone channel sent no rows at all (``missing: zero`` scores it as 0): the
    total fell by a quarter. Before, the root cause read only the tick's rows, so the one
    leaf that explains it was not there and the alert named nothing (or a noise leaf)."""
    series: dict[str, Series] = {}
    frame, scores = [], []
    for ch, rg in product(CH, RG):
        labels = {"journey": "support", "channel": ch, "region": rg}
        key = series_key("contacts", labels)
        gone = (ch, rg) == ("cc", "uk")
        if not gone:  # the pipeline's series and frame come from the rows polled
            series[key] = Series("contacts", labels, ("channel", "region"))
            frame.append({"timestamp": pd.Timestamp(T0), "series": key, "value": 100.0,
                          "numerator": np.nan, "denominator": np.nan})
        scores.append({"timestamp": pd.Timestamp(T0), "series": key,
                       "value": 0.0 if gone else 100.0, "expected": 100.0,
                       "lower": 94.0, "upper": 106.0})
    a = _anomaly("contacts", T0, {"journey": "support"})
    out = attribute(pd.DataFrame(frame), pd.DataFrame(scores), series, [a],
                    kind=ValueKind.SUM, dimensions=["channel", "region"])
    assert [c.elements for c in out[0].causes[:1]] == [({"channel": "cc", "region": "uk"},)]
    assert out[0].causes[0].contributions[0].actual == 0.0
    assert out[0].metric == "contacts" and out[0].labels == {"journey": "support"}


def test_an_alert_for_a_change_every_value_shares_says_so_in_slack_and_console() -> None:
    """Every leaf's drop-off rate rose 30 %. Before, the alert blamed a few values; a bare
    'no root cause' would send the team hunting for one: the message says it is spread."""
    from rich.console import Console

    from alerts.blocks import render_message

    wobble = [3.0, -2.0, 1.0, -3.0, 2.0, 0.0, -1.0, 4.0, -4.0, 1.0, 2.0, -2.0, 0.0, 3.0, -1.0, 1.0]
    series: dict[str, Series] = {}
    frame, scores = [], []
    for n, (ch, rg) in enumerate(product(CH, RG)):
        labels = {"journey": "checkout", "channel": ch, "region": rg}
        key = series_key("dropoff", labels)
        series[key] = Series("dropoff", labels, ("channel", "region"))
        num = 390.0 + wobble[n]  # expected 300 of 1000 (0.3), sd 3 abandoned
        frame.append({"timestamp": pd.Timestamp(T0), "series": key, "value": num / 1000,
                      "numerator": num, "denominator": 1000.0})
        scores.append({"timestamp": pd.Timestamp(T0), "series": key, "expected": 0.3,
                       "lower": 0.291, "upper": 0.309})
    a = _anomaly("dropoff", T0, {"journey": "checkout"})
    rca = attribute(pd.DataFrame(frame), pd.DataFrame(scores), series, [a],
                    kind=ValueKind.RATIO, dimensions=["channel", "region"])
    assert rca[0].spread and rca[0].causes == ()
    change = IncidentTracker(["journey"]).observe([a], T0 + H, rca)[0]
    payload = incident_payload(change)
    assert payload["root_cause"][0]["spread"] and payload["root_cause"][0]["elements"] == []
    texts = [b["text"]["text"] for b in render_message(payload)["blocks"]
             if b["type"] == "section" and "text" in b]
    assert "• *dropoff*: spread over all dimension values alike (no single culprit)" in "\n".join(
        texts)
    console = Console(width=120, record=True)
    console.print(render_panel(payload))
    assert "root cause · dropoff: spread over all dimension values alike" in console.export_text()


def test_a_split_value_the_incident_group_says_is_not_repeated() -> None:
    """split_by [journey] grouped by journey (the demo): the cause stays `channel=app,
    region=uk` under the metric's own key, as before split groups kept their own causes."""
    frame, scores, series = _leaf_tick("dropoff", T0)
    a = _anomaly("dropoff", T0, {"journey": "checkout"})
    rca = attribute(frame, scores, series, [a], kind=ValueKind.RATIO,
                    dimensions=["channel", "region"], split_by=["journey"])
    assert rca[0].split == {"journey": "checkout"}
    inc = IncidentTracker(["journey"]).observe([a], T0 + H, rca)[0].incident
    assert list(inc.root_causes) == ["dropoff"]
    payload = incident_payload(IncidentChange(inc, "opened", (a,), True, T0 + H))
    assert payload["root_cause"][0]["elements"] == [{"channel": "app", "region": "uk"}]
