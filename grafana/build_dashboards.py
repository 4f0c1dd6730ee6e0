"""Generate the Grafana dashboards in grafana/dashboards/ (run: python grafana/build_dashboards.py).

The JSON files are the product (Grafana's file provider loads them); this script is how they are kept
consistent: one datasource variable, the same task/model/backend/team variables everywhere, one grid
layout. tests/deploy/test_static.py fails when a committed JSON file differs from what this writes.

Every panel query must use only the metric names of the contract in docs/design.md (and vLLM's own
metrics), and must return data against a live Prometheus scraping a gateway under traffic
(tests/deploy/test_prometheus_live.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
SCHEMA_VERSION = 41  # Grafana 12.x
DS = {"type": "prometheus", "uid": "${datasource}"}

# Filters shared by the gateway's request metrics (labels: requested_model, upstream_model, backend,
# route, task, team). `$model` selects the upstream model: the one that served and was billed.
REQ = 'task=~"$task", team=~"$team", upstream_model=~"$model", backend=~"$backend"'
LIVE = f'shadow="false", {REQ}'  # client-facing traffic, shadow calls excluded
SLO_ERR = 'outcome=~"upstream_error|timeout|truncated"'
RI = "$__rate_interval"
RANGE = "$__range"
VLLM = 'model_name=~"$model", backend=~"$backend"'
# keeps only series of backends that have served self-hosted (priced or not) traffic
SELF_HOSTED_BACKENDS = 'max by (backend) (pointsman_cost_usd_total{hosting="self_hosted"})'
# keeps only routes that run a shadow test
SHADOW_ROUTES = 'max by (route) (pointsman_shadow_verdict{route=~"$route"})'

Panel = dict[str, Any]


def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
    }
    if table:
        t["format"] = "table"
    return t


def _panel(kind: str, title: str, desc: str, targets: list[dict[str, Any]], w: int, h: int) -> Panel:
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    return {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": targets,
        "gridPos": {"w": w, "h": h},
    }


def timeseries(
    title: str,
    desc: str,
    targets: list[dict[str, Any]],
    unit: str = "short",
    *,
    w: int = 12,
    h: int = 8,
    stack: bool = False,
    mappings: list[dict[str, Any]] | None = None,
) -> Panel:
    p = _panel("timeseries", title, desc, targets, w, h)
    p["fieldConfig"] = {
        "defaults": {
            "unit": unit,
            "custom": {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 10 if not stack else 40,
                "showPoints": "never",
                "spanNulls": False,
                "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            },
            "mappings": mappings or [],
        },
        "overrides": [],
    }
    p["options"] = {
        "legend": {
            "displayMode": "table",
            "placement": "bottom",
            "showLegend": True,
            "calcs": ["mean", "max"],
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return p


def stat(
    title: str,
    desc: str,
    expr: str,
    unit: str = "short",
    *,
    w: int = 4,
    h: int = 4,
    decimals: int | None = None,
    thresholds: list[tuple[float | None, str]] | None = None,
) -> Panel:
    p = _panel("stat", title, desc, [target(expr, instant=True)], w, h)
    steps = [{"color": c, "value": v} for v, c in (thresholds or [(None, "blue")])]
    defaults: dict[str, Any] = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}}
    if decimals is not None:
        defaults["decimals"] = decimals
    p["fieldConfig"] = {"defaults": defaults, "overrides": []}
    p["options"] = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "none",
        "textMode": "auto",
        "justifyMode": "auto",
        "orientation": "auto",
    }
    return p


def table(
    title: str,
    desc: str,
    expr: str,
    unit: str = "short",
    *,
    w: int = 12,
    h: int = 8,
    mappings: list[dict[str, Any]] | None = None,
) -> Panel:
    p = _panel("table", title, desc, [target(expr, instant=True, table=True)], w, h)
    p["fieldConfig"] = {"defaults": {"unit": unit, "mappings": mappings or []}, "overrides": []}
    p["options"] = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"]}}
    p["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True}}}]
    return p


def bargauge(
    title: str,
    desc: str,
    expr: str,
    legend: str,
    unit: str = "short",
    *,
    w: int = 12,
    h: int = 8,
    minmax: tuple[float, float] | None = None,
) -> Panel:
    p = _panel("bargauge", title, desc, [target(expr, legend, instant=True)], w, h)
    defaults: dict[str, Any] = {"unit": unit}
    if minmax:
        defaults["min"], defaults["max"] = minmax
    p["fieldConfig"] = {"defaults": defaults, "overrides": []}
    p["options"] = {
        "displayMode": "gradient",
        "orientation": "horizontal",
        "showUnfilled": True,
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    }
    return p


def piechart(
    title: str, desc: str, expr: str, legend: str, unit: str = "short", *, w: int = 8, h: int = 8
) -> Panel:
    p = _panel("piechart", title, desc, [target(expr, legend, instant=True)], w, h)
    p["fieldConfig"] = {"defaults": {"unit": unit}, "overrides": []}
    p["options"] = {
        "pieType": "donut",
        "legend": {
            "displayMode": "table",
            "placement": "right",
            "showLegend": True,
            "values": ["percent", "value"],
        },
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "tooltip": {"mode": "single"},
    }
    return p


def state_timeline(
    title: str,
    desc: str,
    expr: str,
    legend: str,
    mappings: list[dict[str, Any]],
    thresholds: list[tuple[float | None, str]],
    *,
    w: int = 12,
    h: int = 8,
) -> Panel:
    p = _panel("state-timeline", title, desc, [target(expr, legend)], w, h)
    p["fieldConfig"] = {
        "defaults": {
            "mappings": mappings,
            "thresholds": {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in thresholds]},
            "color": {"mode": "thresholds"},
        },
        "overrides": [],
    }
    p["options"] = {
        "showValue": "auto",
        "mergeValues": True,
        "rowHeight": 0.8,
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
    }
    return p


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def value_map(values: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "value",
            "options": {
                k: {"text": t, "color": c, "index": i} for i, (k, (t, c)) in enumerate(values.items())
            },
        }
    ]


CIRCUIT_MAP = value_map({"0": ("closed", "green"), "1": ("half-open", "orange"), "2": ("open", "red")})
UP_MAP = value_map({"0": ("unreachable", "red"), "1": ("up", "green")})


def query_var(name: str, label: str, metric: str, metric_label: str) -> dict[str, Any]:
    q = f"label_values({metric}, {metric_label})"
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DS,
        "definition": q,
        "query": {"qryType": 1, "query": q, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,  # on time range change
        "regex": "",
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
        "skipUrlSync": False,
    }


def variables(
    model_metric: str = "pointsman_requests_total",
    model_label: str = "upstream_model",
    extra: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    ds = {
        "type": "datasource",
        "name": "datasource",
        "label": "Data source",
        "query": "prometheus",
        "regex": "",
        "current": {"selected": False, "text": "Prometheus", "value": "prometheus"},
        "options": [],
        "refresh": 1,
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "skipUrlSync": False,
    }
    return [
        ds,
        query_var("task", "Task", "pointsman_requests_total", "task"),
        query_var("model", "Model", model_metric, model_label),
        query_var("backend", "Backend", "pointsman_requests_total", "backend"),
        query_var("team", "Team", "pointsman_requests_total", "team"),
        *(extra or []),
    ]


def layout(panels: list[Panel]) -> list[Panel]:
    """Place panels left to right on Grafana's 24-column grid, wrapping lines; rows start a new line."""
    x = y = line_h = 0
    for i, p in enumerate(panels, start=1):
        p["id"] = i
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            y, x, line_h = y + line_h, 0, 0
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        line_h = max(line_h, h)
        if p["type"] == "row":
            y, x, line_h = y + h, 0, 0
    return panels


def dashboard(
    uid: str,
    title: str,
    description: str,
    tags: list[str],
    panels: list[Panel],
    templating: list[dict[str, Any]],
    time_from: str = "now-6h",
) -> dict[str, Any]:
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [
            {
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "tags": ["pointsman"],
                "title": "pointsman",
                "type": "dashboards",
            }
        ],
        "panels": layout(panels),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["pointsman", *tags],
        "templating": {"list": templating},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# --------------------------------------------------------------------------------------------- cost
def cost() -> dict[str, Any]:
    c = "pointsman_cost_usd_total"
    r = "pointsman_requests_total"
    panels = [
        row("Spend"),
        stat(
            "Spend in range",
            "Client traffic spend (USD) over the dashboard's time range; shadow tests excluded.",
            f"sum(increase({c}{{{LIVE}}}[{RANGE}]))",
            "currencyUSD",
            decimals=2,
        ),
        stat(
            "Spend rate (USD/hour)",
            "Current spend rate of client traffic, extrapolated to an hour.",
            f"sum(rate({c}{{{LIVE}}}[{RI}])) * 3600",
            "currencyUSD",
            decimals=2,
        ),
        stat(
            "Cost per 1,000 requests",
            "Spend per 1,000 client requests over the range (all outcomes).",
            f"1000 * sum(increase({c}{{{LIVE}}}[{RANGE}])) / sum(increase({r}{{{LIVE}}}[{RANGE}]))",
            "currencyUSD",
            decimals=3,
        ),
        stat(
            "Self-hosted share of spend",
            "Share of the range's spend on self-hosted (vLLM) models.",
            f'sum(increase({c}{{hosting="self_hosted", {LIVE}}}[{RANGE}])) / sum(increase({c}{{{LIVE}}}[{RANGE}]))',
            "percentunit",
            decimals=1,
        ),
        stat(
            "Shadow-test spend in range",
            "What shadow (candidate) calls cost over the range, on top of client traffic.",
            f'sum(increase({c}{{shadow="true", {REQ}}}[{RANGE}]))',
            "currencyUSD",
            decimals=2,
        ),
        stat(
            "Requests in range",
            "Client requests over the range, all outcomes.",
            f"sum(increase({r}{{{LIVE}}}[{RANGE}]))",
            "short",
            decimals=0,
        ),
        piechart(
            "Frontier vs self-hosted spend",
            "Spend over the range by hosting: frontier APIs vs self-hosted models.",
            f"sum by (hosting) (increase({c}{{{LIVE}}}[{RANGE}]))",
            "{{hosting}}",
            "currencyUSD",
        ),
        table(
            "Spend in range by task and team",
            "Who spends what, on which task, over the range.",
            f"sort_desc(sum by (task, team) (increase({c}{{{LIVE}}}[{RANGE}])))",
            "currencyUSD",
            w=8,
        ),
        table(
            "Spend in range by model and backend",
            "Spend per upstream model and backend over the range.",
            f"sort_desc(sum by (upstream_model, backend, hosting) (increase({c}{{{LIVE}}}[{RANGE}])))",
            "currencyUSD",
            w=8,
        ),
        row("Spend rate by dimension"),
        timeseries(
            "Spend rate by task (USD/hour)",
            "",
            [target(f"sum by (task) (rate({c}{{{LIVE}}}[{RI}])) * 3600", "{{task}}")],
            "currencyUSD",
            stack=True,
        ),
        timeseries(
            "Spend rate by team (USD/hour)",
            "",
            [target(f"sum by (team) (rate({c}{{{LIVE}}}[{RI}])) * 3600", "{{team}}")],
            "currencyUSD",
            stack=True,
        ),
        timeseries(
            "Spend rate by model (USD/hour)",
            "Upstream model: the one that served and was billed.",
            [target(f"sum by (upstream_model) (rate({c}{{{LIVE}}}[{RI}])) * 3600", "{{upstream_model}}")],
            "currencyUSD",
            stack=True,
        ),
        timeseries(
            "Spend rate by backend (USD/hour)",
            "",
            [
                target(
                    f"sum by (backend, hosting) (rate({c}{{{LIVE}}}[{RI}])) * 3600",
                    "{{backend}} ({{hosting}})",
                )
            ],
            "currencyUSD",
            stack=True,
        ),
        row("Unit cost and volume"),
        timeseries(
            "Cost per 1,000 requests by model",
            "",
            [
                target(
                    f"1000 * sum by (upstream_model) (rate({c}{{{LIVE}}}[{RI}]))"
                    f" / sum by (upstream_model) (rate({r}{{{LIVE}}}[{RI}]))",
                    "{{upstream_model}}",
                )
            ],
            "currencyUSD",
        ),
        timeseries(
            "Cost per 1,000 requests by task",
            "",
            [
                target(
                    f"1000 * sum by (task) (rate({c}{{{LIVE}}}[{RI}])) / sum by (task) (rate({r}{{{LIVE}}}[{RI}]))",
                    "{{task}}",
                )
            ],
            "currencyUSD",
        ),
        timeseries(
            "Cost per 1M tokens by model",
            "Spend divided by input + output tokens.",
            [
                target(
                    f"1e6 * sum by (upstream_model) (rate({c}{{{LIVE}}}[{RI}]))"
                    f' / sum by (upstream_model) (rate(gen_ai_client_token_usage_sum{{gen_ai_token_type=~"input|output", {LIVE}}}[{RI}]))',
                    "{{upstream_model}}",
                )
            ],
            "currencyUSD",
        ),
        timeseries(
            "Tokens/s by type",
            "Input, output, cached input and reasoning tokens per second.",
            [
                target(
                    f"sum by (gen_ai_token_type) (rate(gen_ai_client_token_usage_sum{{{LIVE}}}[{RI}]))",
                    "{{gen_ai_token_type}}",
                )
            ],
            "short",
        ),
        row("Budgets"),
        bargauge(
            "Budget remaining",
            "USD left in each key and team budget for its current period.",
            "min by (scope, name, period) (pointsman_budget_remaining_usd)",
            "{{scope}} {{name}} ({{period}})",
            "currencyUSD",
        ),
        timeseries(
            "Team budget: hours left at the last hour's burn rate",
            "Remaining team budget divided by the team's spend rate over the last hour (client traffic).",
            [
                target(
                    'min by (name, period) (pointsman_budget_remaining_usd{scope="team", name=~"$team"})'
                    " / on (name) group_left () (label_replace(sum by (team) "
                    f'(rate({c}{{shadow="false", team=~"$team"}}[1h])), "name", "$1", "team", "(.*)") * 3600)',
                    "{{name}} ({{period}})",
                )
            ],
            "h",
        ),
        timeseries(
            "Budget remaining over time",
            "",
            [
                target(
                    "min by (scope, name, period) (pointsman_budget_remaining_usd)",
                    "{{scope}} {{name}} ({{period}})",
                )
            ],
            "currencyUSD",
        ),
        timeseries(
            "Budget held by requests in flight",
            "USD that requests still running have reserved against each budget (what they may cost at most); "
            "a new request is admitted only if spent + held + its own reservation fits.",
            [
                target(
                    "sum by (scope, name, period) (pointsman_budget_reserved_usd)",
                    "{{scope}} {{name}} ({{period}})",
                )
            ],
            "currencyUSD",
        ),
        table(
            "Requests refused over budget (range)",
            "Requests answered 429 because a budget was exhausted.",
            "sum by (scope, name, period) (increase(pointsman_budget_exceeded_total[$__range]))",
            "short",
        ),
        table(
            "Self-hosted models without a price",
            "Self-hosted models served at no configured price: their spend shows as $0 until priced. Should be empty.",
            "max by (model) (pointsman_model_unpriced) == 1",
            "short",
            w=12,
        ),
    ]
    return dashboard(
        "pointsman-cost",
        "pointsman / Cost",
        "What inference costs, by task, team, model and backend; frontier vs self-hosted; budgets.",
        ["cost"],
        panels,
        variables(),
    )


# ------------------------------------------------------------------------------------------ latency
def latency() -> dict[str, Any]:
    r = "pointsman_requests_total"
    d = "gen_ai_client_operation_duration_seconds_bucket"
    t = "gen_ai_server_time_to_first_token_seconds_bucket"
    tpot = "gen_ai_server_time_per_output_token_seconds_bucket"
    ov = "pointsman_gateway_overhead_seconds_bucket"

    def q(p: float, metric: str, by: str, sel: str = LIVE) -> str:
        return (
            f"histogram_quantile({p}, sum by (le{', ' + by if by else ''}) (rate({metric}{{{sel}}}[{RI}])))"
        )

    pct = [(p, f"p{int(p * 100)}") for p in (0.5, 0.95, 0.99)]
    panels = [
        row("Traffic"),
        stat(
            "Requests/s",
            "Client requests per second (shadow calls excluded).",
            f"sum(rate({r}{{{LIVE}}}[{RI}]))",
            "reqps",
            decimals=1,
        ),
        stat(
            "Error ratio",
            "Share of requests failing upstream (upstream_error, timeout): the error SLO's measure.",
            f"sum(rate({r}{{{SLO_ERR}, {LIVE}}}[{RI}])) / sum(rate({r}{{{LIVE}}}[{RI}]))",
            "percentunit",
            decimals=2,
            thresholds=[(None, "green"), (0.005, "orange"), (0.05, "red")],
        ),
        stat(
            "Availability in range",
            "1 - error ratio over the whole range (SLO target 99.5%).",
            f"1 - sum(increase({r}{{{SLO_ERR}, {LIVE}}}[{RANGE}])) / sum(increase({r}{{{LIVE}}}[{RANGE}]))",
            "percentunit",
            decimals=3,
            thresholds=[(None, "red"), (0.99, "orange"), (0.995, "green")],
        ),
        stat("p95 duration", "95th percentile of total request duration.", q(0.95, d, ""), "s", decimals=2),
        stat(
            "p95 time to first token",
            "95th percentile of time to first token (streamed requests).",
            q(0.95, t, ""),
            "s",
            decimals=2,
        ),
        stat(
            "In-flight requests",
            "Requests being served right now, all replicas.",
            'sum(pointsman_in_flight_requests{backend=~"$backend"})',
            "short",
            decimals=0,
        ),
        timeseries(
            "Requests/s by outcome",
            "",
            [target(f"sum by (outcome) (rate({r}{{{LIVE}}}[{RI}]))", "{{outcome}}")],
            "reqps",
            stack=True,
        ),
        timeseries(
            "Requests/s by model and backend",
            "",
            [
                target(
                    f"sum by (upstream_model, backend) (rate({r}{{{LIVE}}}[{RI}]))",
                    "{{upstream_model}} @ {{backend}}",
                )
            ],
            "reqps",
            stack=True,
        ),
        row("Latency"),
        timeseries(
            "Request duration by model (p50/p95/p99)",
            "Total duration, from request to last byte.",
            [target(q(p, d, "upstream_model"), f"{name} {{{{upstream_model}}}}") for p, name in pct],
            "s",
        ),
        timeseries(
            "Request duration p95 by backend", "", [target(q(0.95, d, "backend"), "{{backend}}")], "s"
        ),
        timeseries(
            "Time to first token by model (p50/p95/p99)",
            "",
            [target(q(p, t, "upstream_model"), f"{name} {{{{upstream_model}}}}") for p, name in pct],
            "s",
        ),
        timeseries(
            "Time to first token p95 by backend", "", [target(q(0.95, t, "backend"), "{{backend}}")], "s"
        ),
        timeseries(
            "Time per output token p50 by model",
            "Decode speed seen by clients.",
            [target(q(0.5, tpot, "upstream_model"), "{{upstream_model}}")],
            "s",
        ),
        timeseries(
            "Gateway overhead by backend (p50/p99)",
            "Time spent inside pointsman itself, upstream excluded.",
            [
                target(q(p, ov, "backend", 'backend=~"$backend"'), f"{name} {{{{backend}}}}")
                for p, name in pct[::2]
            ],
            "s",
        ),
        row("Errors and resilience"),
        timeseries(
            "Error ratio by outcome",
            "Share of client requests per non-ok outcome.",
            [
                target(
                    f'sum by (outcome) (rate({r}{{outcome!="ok", {LIVE}}}[{RI}]))'
                    f" / ignoring (outcome) group_left () sum(rate({r}{{{LIVE}}}[{RI}]))",
                    "{{outcome}}",
                )
            ],
            "percentunit",
            stack=True,
        ),
        timeseries(
            "Upstream errors/s by backend and type",
            "Connect, timeout, 4xx, 429, 5xx, protocol errors.",
            [
                target(
                    f'sum by (backend, error_type) (rate(pointsman_upstream_errors_total{{backend=~"$backend"}}[{RI}]))',
                    "{{backend}} {{error_type}}",
                )
            ],
            "reqps",
            stack=True,
        ),
        timeseries(
            "Fallbacks/s by route",
            "A failed target (backend) handed the request to the next fallback.",
            [
                target(
                    f'sum by (route, backend, reason) (rate(pointsman_fallbacks_total{{backend=~"$backend"}}[{RI}]))',
                    "{{route}}: {{backend}} ({{reason}})",
                )
            ],
            "reqps",
            stack=True,
        ),
        state_timeline(
            "Circuit-breaker state by endpoint",
            "closed / half-open / open per backend endpoint.",
            'max by (backend, endpoint) (pointsman_circuit_state{backend=~"$backend"})',
            "{{backend}} {{endpoint}}",
            CIRCUIT_MAP,
            [(None, "green"), (1, "orange"), (2, "red")],
        ),
        timeseries(
            "In-flight requests by backend",
            "",
            [target('sum by (backend) (pointsman_in_flight_requests{backend=~"$backend"})', "{{backend}}")],
            "short",
        ),
        timeseries(
            "Rate-limited requests/s by key",
            "Requests refused by a key's requests/min or tokens/min limit.",
            [
                target(
                    f"sum by (key, limit) (rate(pointsman_rate_limited_total[{RI}]))", "{{key}} ({{limit}})"
                )
            ],
            "reqps",
        ),
        state_timeline(
            "Redis reachable, per replica",
            "Shared state (limits, budgets, policy) in Redis; 0 = unreachable.",
            "min by (instance, component) (pointsman_redis_up)",
            "{{instance}} {{component}}",
            UP_MAP,
            [(None, "red"), (1, "green")],
        ),
    ]
    return dashboard(
        "pointsman-latency",
        "pointsman / Latency and reliability",
        "How fast and how reliably requests are served: rates, percentiles, TTFT, gateway overhead, "
        "errors, fallbacks, circuit breakers.",
        ["latency", "reliability"],
        panels,
        variables(),
        time_from="now-3h",
    )


# ------------------------------------------------------------------------------------------- shadow
def shadow() -> dict[str, Any]:
    pairs = "pointsman_shadow_pairs_total"
    sel = 'route=~"$route", task=~"$task"'
    d = "gen_ai_client_operation_duration_seconds_bucket"
    t = "gen_ai_server_time_to_first_token_seconds_bucket"
    c = "pointsman_cost_usd_total"
    r = "pointsman_requests_total"
    route_var = query_var("route", "Route", pairs, "route")

    def side_q(p: float, metric: str) -> str:
        return (
            f"histogram_quantile({p}, sum by (le, route, shadow) (rate({metric}{{{sel}}}[{RI}])))"
            f" and on (route) {SHADOW_ROUTES}"
        )

    panels = [
        row("Pairs"),
        stat(
            "Pairs in range",
            "Sampled requests that became a primary/candidate pair, all outcomes.",
            f"sum(increase({pairs}{{{sel}}}[{RANGE}]))",
            "short",
            decimals=0,
        ),
        stat(
            "Candidate failure ratio",
            "Pairs whose candidate failed, among pairs whose primary succeeded.",
            f'sum(increase({pairs}{{outcome="candidate_failed", {sel}}}[{RANGE}]))'
            f' / sum(increase({pairs}{{outcome=~"paired|candidate_failed", {sel}}}[{RANGE}]))',
            "percentunit",
            decimals=1,
            thresholds=[(None, "green"), (0.05, "orange"), (0.2, "red")],
        ),
        stat(
            "Dropped shadows in range",
            "Shadows not sent (queue full, budget, concurrency): counted, not paired.",
            f'sum(increase(pointsman_shadow_dropped_total{{route=~"$route"}}[{RANGE}]))',
            "short",
            decimals=0,
        ),
        stat(
            "Projected monthly saving",
            "If every shadowed route moved to its candidate, at the observed volume.",
            'sum(max by (route) (pointsman_shadow_projected_monthly_saving_usd{route=~"$route"}))',
            "currencyUSD",
            decimals=0,
        ),
        table(
            "Verdict per route",
            "Current verdict from each route's promote_when criteria.",
            'max by (route, verdict) (pointsman_shadow_verdict{route=~"$route"}) == 1',
            "short",
            w=8,
        ),
        timeseries(
            "Pairs/s by outcome",
            "paired, candidate_failed, primary_failed (excluded from quality), dropped.",
            [target(f"sum by (route, outcome) (rate({pairs}{{{sel}}}[{RI}]))", "{{route}} {{outcome}}")],
            "reqps",
            stack=True,
        ),
        timeseries(
            "Dropped shadows/s by reason",
            "",
            [
                target(
                    f'sum by (route, reason) (rate(pointsman_shadow_dropped_total{{route=~"$route"}}[{RI}]))',
                    "{{route}} {{reason}}",
                )
            ],
            "reqps",
            stack=True,
        ),
        row("Quality"),
        timeseries(
            "Mean comparator score",
            "Mean score per comparator (1 = candidate agrees with primary).",
            [
                target(
                    f'sum by (route, comparator) (rate(pointsman_shadow_score_sum{{route=~"$route"}}[{RI}]))'
                    f' / sum by (route, comparator) (rate(pointsman_shadow_score_count{{route=~"$route"}}[{RI}]))',
                    "{{route}} {{comparator}}",
                )
            ],
            "percentunit",
        ),
        bargauge(
            "Mean comparator score over the range",
            "",
            f'sum by (route, comparator) (increase(pointsman_shadow_score_sum{{route=~"$route"}}[{RANGE}]))'
            f' / sum by (route, comparator) (increase(pointsman_shadow_score_count{{route=~"$route"}}[{RANGE}]))',
            "{{route}} {{comparator}}",
            "percentunit",
            minmax=(0, 1),
        ),
        row("Verdict evidence and judges"),
        bargauge(
            "Evidence per criterion (anytime-valid)",
            "log(e-value) / log(1/alpha) of each promote_when criterion: at 1 or more it is shown at the "
            "anytime-valid level (valid however often the verdict is looked at). Below 0: the data lean the other way.",
            'max by (route, criterion) (pointsman_shadow_evidence{route=~"$route"})',
            "{{route}} {{criterion}}",
            "short",
            minmax=(0, 1),
        ),
        timeseries(
            "Judge order consistency",
            "Share of pairs the order-swapped judge judged the same way both ways round. Below "
            "promote_when.judge_min_consistency (default 60%) the verdict is judge_unreliable.",
            [
                target(
                    'max by (route, comparator) (pointsman_shadow_judge_consistency{route=~"$route"})',
                    "{{route}} {{comparator}}",
                )
            ],
            "percentunit",
        ),
        timeseries(
            "Judge position bias",
            "Answers naming the first slot minus those naming the second: 0 for a judge that reads content, "
            '100% for one that always answers "1".',
            [
                target(
                    'max by (route, comparator) (pointsman_shadow_judge_position_bias{route=~"$route"})',
                    "{{route}} {{comparator}}",
                )
            ],
            "percentunit",
        ),
        row("Latency and cost: primary vs candidate"),
        timeseries(
            "Latency ratio candidate/primary (p50)",
            "Below 1: the candidate is faster.",
            [target('max by (route) (pointsman_shadow_latency_ratio{route=~"$route"})', "{{route}}")],
            "short",
        ),
        timeseries(
            "Duration p50/p95: primary vs candidate",
            "shadow=true is the candidate.",
            [
                target(side_q(0.5, d), "p50 {{route}} shadow={{shadow}}"),
                target(side_q(0.95, d), "p95 {{route}} shadow={{shadow}}"),
            ],
            "s",
        ),
        timeseries(
            "Time to first token p95: primary vs candidate",
            "Streamed primaries get streamed shadows.",
            [target(side_q(0.95, t), "{{route}} shadow={{shadow}}")],
            "s",
        ),
        timeseries(
            "Cost per 1,000 requests: primary vs candidate",
            "",
            [
                target(
                    f"1000 * sum by (route, shadow) (rate({c}{{{sel}}}[{RI}]))"
                    f" / sum by (route, shadow) (rate({r}{{{sel}}}[{RI}])) and on (route) {SHADOW_ROUTES}",
                    "{{route}} shadow={{shadow}}",
                )
            ],
            "currencyUSD",
        ),
        timeseries(
            "Projected monthly saving by route",
            "",
            [
                target(
                    'max by (route) (pointsman_shadow_projected_monthly_saving_usd{route=~"$route"})',
                    "{{route}}",
                )
            ],
            "currencyUSD",
        ),
        timeseries(
            "Shadow spend rate by route (USD/hour)",
            "What running the shadow test costs.",
            [target(f'sum by (route) (rate({c}{{shadow="true", {sel}}}[{RI}])) * 3600', "{{route}}")],
            "currencyUSD",
            stack=True,
        ),
    ]
    return dashboard(
        "pointsman-shadow",
        "pointsman / Shadow tests",
        "Is the candidate model ready to take over the task? Pairs, scores, latency, cost, verdict.",
        ["shadow"],
        panels,
        variables(extra=[route_var]),
    )


# -------------------------------------------------------------------------------------------- fleet
def fleet() -> dict[str, Any]:
    def q(p: float, metric: str) -> str:
        return f"histogram_quantile({p}, sum by (le, model_name) (rate({metric}{{{VLLM}}}[{RI}])))"

    panels = [
        row("vLLM fleet"),
        stat(
            "Waiting requests",
            "Requests queued in vLLM, all endpoints.",
            f"sum(vllm:num_requests_waiting{{{VLLM}}})",
            "short",
            decimals=0,
            thresholds=[(None, "green"), (5, "orange"), (50, "red")],
        ),
        stat(
            "Running requests",
            "Requests being decoded, all endpoints.",
            f"sum(vllm:num_requests_running{{{VLLM}}})",
            "short",
            decimals=0,
        ),
        stat(
            "KV-cache use (max)",
            "Fullest endpoint's KV cache; near 100% means preemptions and queueing.",
            f"max(vllm:kv_cache_usage_perc{{{VLLM}}})",
            "percentunit",
            decimals=1,
            thresholds=[(None, "green"), (0.8, "orange"), (0.95, "red")],
        ),
        stat(
            "Generation tokens/s",
            "",
            f"sum(rate(vllm:generation_tokens_total{{{VLLM}}}[{RI}]))",
            "short",
            decimals=0,
        ),
        stat(
            "Prompt tokens/s", "", f"sum(rate(vllm:prompt_tokens_total{{{VLLM}}}[{RI}]))", "short", decimals=0
        ),
        stat(
            "Cost per 1M tokens (self-hosted)",
            "Configured or measured from GPU price and throughput.",
            'max(pointsman_selfhosted_cost_per_mtok_usd{model=~"$model"})',
            "currencyUSD",
            decimals=3,
        ),
        timeseries(
            "Queue depth by endpoint",
            "vllm:num_requests_waiting; the gateway routes away from long queues.",
            [
                target(
                    f"sum by (instance, model_name) (vllm:num_requests_waiting{{{VLLM}}})",
                    "{{instance}} {{model_name}}",
                )
            ],
            "short",
        ),
        timeseries(
            "Running requests by endpoint",
            "",
            [
                target(
                    f"sum by (instance, model_name) (vllm:num_requests_running{{{VLLM}}})",
                    "{{instance}} {{model_name}}",
                )
            ],
            "short",
        ),
        timeseries(
            "KV-cache use by endpoint",
            "",
            [target(f"max by (instance) (vllm:kv_cache_usage_perc{{{VLLM}}})", "{{instance}}")],
            "percentunit",
        ),
        timeseries(
            "Tokens/s by endpoint",
            "",
            [
                target(
                    f"sum by (instance) (rate(vllm:generation_tokens_total{{{VLLM}}}[{RI}]))",
                    "generation {{instance}}",
                ),
                target(
                    f"sum by (instance) (rate(vllm:prompt_tokens_total{{{VLLM}}}[{RI}]))",
                    "prompt {{instance}}",
                ),
            ],
            "short",
        ),
        timeseries(
            "vLLM time to first token (p50/p95)",
            "Measured inside vLLM, without network or gateway.",
            [
                target(q(0.5, "vllm:time_to_first_token_seconds_bucket"), "p50 {{model_name}}"),
                target(q(0.95, "vllm:time_to_first_token_seconds_bucket"), "p95 {{model_name}}"),
            ],
            "s",
        ),
        timeseries(
            "vLLM end-to-end request latency (p50/p95)",
            "",
            [
                target(q(0.5, "vllm:e2e_request_latency_seconds_bucket"), "p50 {{model_name}}"),
                target(q(0.95, "vllm:e2e_request_latency_seconds_bucket"), "p95 {{model_name}}"),
            ],
            "s",
        ),
        row("Gateway view of self-hosted backends"),
        timeseries(
            "Requests/s to self-hosted backends by task",
            "",
            [
                target(
                    f"sum by (task, backend) (rate(pointsman_requests_total{{{LIVE}}}[{RI}]))"
                    f" and on (backend) {SELF_HOSTED_BACKENDS}",
                    "{{task}} @ {{backend}}",
                )
            ],
            "reqps",
            stack=True,
        ),
        timeseries(
            "Self-hosted spend rate by task (USD/hour)",
            "",
            [
                target(
                    f'sum by (task) (rate(pointsman_cost_usd_total{{hosting="self_hosted", {LIVE}}}[{RI}])) * 3600',
                    "{{task}}",
                )
            ],
            "currencyUSD",
            stack=True,
        ),
        timeseries(
            "Self-hosted cost per 1M tokens by model",
            "",
            [target('max by (model) (pointsman_selfhosted_cost_per_mtok_usd{model=~"$model"})', "{{model}}")],
            "currencyUSD",
        ),
        timeseries(
            "Gateway time to first token p95 on self-hosted backends",
            "Includes network and gateway.",
            [
                target(
                    f"histogram_quantile(0.95, sum by (le, backend) (rate(gen_ai_server_time_to_first_token_seconds_bucket{{{LIVE}}}[{RI}])))"
                    f" and on (backend) {SELF_HOSTED_BACKENDS}",
                    "{{backend}}",
                )
            ],
            "s",
        ),
        timeseries(
            "In-flight requests to self-hosted backends",
            "",
            [
                target(
                    f'sum by (backend) (pointsman_in_flight_requests{{backend=~"$backend"}}) and on (backend) '
                    f"{SELF_HOSTED_BACKENDS}",
                    "{{backend}}",
                )
            ],
            "short",
        ),
    ]
    return dashboard(
        "pointsman-fleet",
        "pointsman / Self-hosted fleet",
        "vLLM queue depth, running requests, KV-cache use and throughput, from vLLM's own metrics.",
        ["vllm", "fleet"],
        panels,
        variables(model_metric="vllm:num_requests_running", model_label="model_name"),
        time_from="now-3h",
    )


DASHBOARDS = {"cost": cost, "latency": latency, "shadow": shadow, "fleet": fleet}


def render() -> dict[str, str]:
    return {
        f"{name}.json": json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
        sys.stdout.write(f"wrote {OUT / name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
