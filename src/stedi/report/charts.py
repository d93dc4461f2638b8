"""The report's pictures, as Plotly figures (plain JSON the page hands to plotly.js).

Plotly, because its Python package carries plotly.js itself (the page inlines it and opens with no
network), and it draws a Sankey, which the zone funnel is. No value from the data becomes a label:
Plotly reads a few HTML tags in labels, so labels are stedi's own words, table names and
pseudonymous keys, never a field name or a line from a feed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import plotly.graph_objects as go

from stedi.report.facts import Facts

LOSS = "#d62728"
KEPT = "#2ca02c"
FLOW = "rgba(120, 120, 120, 0.35)"


def _json(figure: go.Figure) -> dict:
    figure.update_layout(margin={"l": 50, "r": 20, "t": 40, "b": 40}, height=360, template="plotly_white")
    return json.loads(figure.to_json())


def _sankey(title: str, flows: list[tuple[str, str, int]], kept: set[str]) -> dict:
    """A Sankey of (from, to, rows) flows; nodes in `kept` stay in the zones, the others are losses."""
    flows = [flow for flow in flows if flow[2] > 0]
    nodes = list(dict.fromkeys(name for source, target, _ in flows for name in (source, target)))
    colours = [KEPT if name in kept else LOSS for name in nodes]
    sankey = go.Sankey(
        node={"label": nodes, "color": colours, "pad": 18},
        link={
            "source": [nodes.index(source) for source, _, _ in flows],
            "target": [nodes.index(target) for _, target, _ in flows],
            "value": [rows for _, _, rows in flows],
            "color": FLOW,
        },
    )
    return _json(go.Figure(sankey, layout={"title": {"text": title}}))


def funnel_charts(facts: Facts) -> dict[str, dict]:
    """A Sankey per feed: landing → trusted (→ curated), and why the other rows went."""
    charts = {}
    customer = facts.funnel.get("customer")
    if customer:
        superseded = customer["landing_records"] - customer["distinct_customers"]
        no_readings = customer["customer_trusted"] - customer.get("customers_curated", 0)
        charts["funnel-customer"] = _sankey(
            "customer records → customers",
            [
                ("customer lines", "rejected (quarantine)", customer["rejected_lines"]),
                ("customer lines", "customer_landing", customer["landing_records"]),
                ("customer_landing", "older record of a customer", superseded),
                ("customer_landing", "no consent", customer["no_consent"]),
                ("customer_landing", "revoked", customer["revoked"]),
                ("customer_landing", "customer_trusted", customer["customer_trusted"]),
                ("customer_trusted", "customers_curated", customer.get("customers_curated", 0)),
                ("customer_trusted", "no phone readings", no_readings),
            ],
            {"customer lines", "customer_landing", "customer_trusted", "customers_curated"},
        )
    for feed in ("accelerometer", "step_trainer"):
        steps = facts.funnel.get(feed)
        if not steps:
            continue
        landing, trusted = f"{feed}_landing", f"{feed}_trusted"
        losses = [
            ("ambiguous_serial", "ambiguous serial number"),
            ("no_consent", "no consent"),
            ("out_of_scope", "before consent"),
            ("duplicates", "duplicate"),
        ]
        charts[f"funnel-{feed}"] = _sankey(
            f"{feed} readings",
            [(f"{feed} lines", "rejected (quarantine)", steps["rejected_lines"]), (f"{feed} lines", landing, steps["landing_rows"])]
            + [(landing, label, steps.get(key, 0)) for key, label in losses]
            + [(landing, trusted, steps.get(trusted, 0))],
            {f"{feed} lines", landing, trusted},
        )
    return charts


def history_charts(facts: Facts) -> dict[str, dict]:
    """Rows per table per run, each run's duration, and its checks."""
    if not facts.runs:
        return {}
    runs = [r["run_id"] for r in facts.runs]
    rows = go.Figure(layout={"title": {"text": "rows per table after each run"}, "xaxis": {"type": "category"}, "yaxis": {"title": {"text": "rows"}}})
    for table, counts in facts.rows_per_run.items():
        rows.add_trace(go.Scatter(x=runs, y=counts, mode="lines+markers", name=table))
    durations = go.Figure(
        go.Bar(x=runs, y=[r["duration_s"] for r in facts.runs], marker_color="#1f77b4"),
        layout={"title": {"text": "duration of each run (s)"}, "xaxis": {"type": "category"}},
    )
    checks = go.Figure(layout={"title": {"text": "checks of each run"}, "barmode": "stack", "xaxis": {"type": "category"}})
    checks.add_trace(go.Bar(x=runs, y=[r["checks_passed"] for r in facts.runs], name="passed", marker_color=KEPT))
    checks.add_trace(go.Bar(x=runs, y=[r["checks_failed"] for r in facts.runs], name="failed", marker_color=LOSS))
    return {"rows-per-run": _json(rows), "run-durations": _json(durations), "checks-per-run": _json(checks)}


def consent_chart(facts: Facts) -> dict[str, dict]:
    """Consenting customers over time, and the revocations of each day."""
    if not facts.consent.get("day"):
        return {}
    figure = go.Figure(layout={"title": {"text": "consent over time"}, "yaxis": {"title": {"text": "consenting customers"}}})
    figure.add_trace(go.Scatter(x=facts.consent["day"], y=facts.consent["consenting"], name="consenting customers", line={"color": KEPT}))
    figure.add_trace(go.Bar(x=facts.consent["day"], y=facts.consent["revocations"], name="revocations that day", marker_color=LOSS, yaxis="y2"))
    step = max(1, max(facts.consent["revocations"]) // 4)  # whole customers on the axis
    figure.update_layout(yaxis2={"overlaying": "y", "side": "right", "title": {"text": "revocations"}, "rangemode": "tozero", "dtick": step})
    return {"consent-chart": _json(figure)}


def trace_chart(facts: Facts) -> dict[str, dict]:
    """One pseudonymous customer's training rows: x, y, z and the distance against time."""
    if not facts.trace.get("timestamp"):
        return {}
    time = [datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds") for ms in facts.trace["timestamp"]]
    figure = go.Figure(
        layout={"title": {"text": f"sensor trace of customer {facts.trace['customer_key'][0][:12]}…"}, "xaxis": {"title": {"text": "time (UTC)"}}}
    )
    for axis in ("x", "y", "z"):
        figure.add_trace(go.Scatter(x=time, y=facts.trace[axis], mode="lines", name=axis))
    figure.add_trace(go.Scatter(x=time, y=facts.trace["distanceFromObject"], mode="lines", name="distanceFromObject", yaxis="y2", line={"dash": "dot"}))
    figure.update_layout(yaxis={"title": {"text": "acceleration"}}, yaxis2={"overlaying": "y", "side": "right", "title": {"text": "distance"}})
    return {"trace-chart": _json(figure)}


def all_charts(facts: Facts) -> dict[str, dict]:
    """Every chart of the page, by the id of the element it is drawn in."""
    return {**funnel_charts(facts), **history_charts(facts), **consent_chart(facts), **trace_chart(facts)}
