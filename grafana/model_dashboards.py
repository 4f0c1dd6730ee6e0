"""The model dashboards: shadow tests of candidate models (shadow) and the self-hosted vLLM fleet (fleet)."""

from __future__ import annotations

from typing import Any

from panel_kit import (
    LIVE,
    RANGE,
    RI,
    SELF_HOSTED_BACKENDS,
    SHADOW_ROUTES,
    VLLM,
    bargauge,
    dashboard,
    query_var,
    row,
    stat,
    table,
    target,
    timeseries,
    variables,
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
