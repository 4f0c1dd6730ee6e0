"""The traffic dashboards: what requests cost (cost) and how fast they are served (latency)."""

from __future__ import annotations

from typing import Any

from panel_kit import (
    CIRCUIT_MAP,
    LIVE,
    RANGE,
    REQ,
    RI,
    SLO_ERR,
    UP_MAP,
    bargauge,
    dashboard,
    piechart,
    row,
    stat,
    state_timeline,
    table,
    target,
    timeseries,
    variables,
)


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
