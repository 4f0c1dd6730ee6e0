"""The building blocks of the generated dashboards (``build_dashboards.py``): the datasource, the label filters
every query shares, panels of each kind, template variables, the grid layout and the dashboard frame."""

from __future__ import annotations

from typing import Any

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
