"""The reservation bound, as properties: a reservation covers the cost of any usage within what the request asked
for, and admission against reservations never lets the embedded store's spend pass a budget when each request
costs at most what it reserved."""

from __future__ import annotations

import asyncio
import math
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.errors import BudgetExceeded
from accounting.money import to_nusd
from accounting.rates import ModelPrice
from accounting.reservation import Ask, requested_output, reserve_nusd
from tests.accounting.replicas import Request, limits_of, spend_on_two_replicas
from wire.endpoints import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES
from wire.usage import Usage

_RATE = st.decimals(min_value=0, max_value=Decimal("0.001"), places=12, allow_nan=False, allow_infinity=False)


@st.composite
def price_sheets(draw: st.DrawFn) -> ModelPrice:
    """Sheets of the price table's shapes: base rates, cache reads and writes (the one-hour write too),
    reasoning, and long-context rates at or above the base ones."""
    rates: dict[str, Any] = {
        "input_cost_per_token": draw(_RATE),
        "output_cost_per_token": draw(_RATE),
        "cache_read_input_token_cost": draw(_RATE),
    }
    for k in ("cache_creation_input_token_cost", "cache_creation_input_token_cost_above_1hr"):
        if draw(st.booleans()):
            rates[k] = draw(_RATE)
    if draw(st.booleans()):
        rates["output_cost_per_reasoning_token"] = draw(_RATE)
    if draw(st.booleans()):
        threshold = draw(st.sampled_from(["128k", "200k", "272k"]))
        for base in ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost"):
            rates[base.replace("_token", f"_token_above_{threshold}_tokens")] = rates[base] + draw(_RATE)
    return ModelPrice(rates, "table")


@st.composite
def usage_within(draw: st.DrawFn, ask: Ask, cap: int) -> Usage:
    """A usage the request could report: at most its prompt and its output bound, split into classes."""
    out_bound = ask.output_tokens if ask.output_tokens is not None else cap
    inp = draw(st.integers(0, ask.prompt_tokens))
    cached = draw(st.integers(0, inp))
    writes = draw(st.integers(0, inp - cached))
    out = draw(st.integers(0, out_bound))
    return Usage(
        input_tokens=inp,
        cached_input_tokens=cached,
        cache_write_tokens=writes,
        cache_write_1h_tokens=draw(st.integers(0, writes)),
        output_tokens=out,
        reasoning_tokens=draw(st.integers(0, out)),
    )


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_a_reservation_covers_any_usage_within_what_the_request_asked_for(data: st.DataObject) -> None:
    prices = data.draw(st.lists(st.one_of(st.none(), price_sheets()), min_size=1, max_size=4))
    output = data.draw(st.one_of(st.none(), st.integers(0, 300_000)))
    ask = Ask(data.draw(st.integers(0, 400_000)), output)
    cap = data.draw(st.integers(0, 100_000))
    served = data.draw(st.sampled_from(prices))
    usage = data.draw(usage_within(ask, cap))
    cost = served.cost(usage) if served is not None else Decimal(0)  # unpriced: charged nothing
    assert reserve_nusd(ask, prices, cap) >= to_nusd(cost)


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_a_reservation_is_the_decimal_price_of_its_ask_rounded_up_to_a_nano_dollar(
    data: st.DataObject,
) -> None:
    """The integer arithmetic ``reserve_nusd`` uses, against the same formula in ``Decimal`` (every term exact
    at these sizes): the prompt at the highest input-side rate, the output at the higher of output and reasoning,
    the most expensive sheet, rounded up."""
    prices = data.draw(st.lists(st.one_of(st.none(), price_sheets()), min_size=1, max_size=4))
    ask = Ask(data.draw(st.integers(0, 400_000)), data.draw(st.one_of(st.none(), st.integers(0, 300_000))))
    cap = data.draw(st.integers(0, 100_000))
    out = ask.output_tokens if ask.output_tokens is not None else cap
    best = Decimal(0)
    for p in prices:
        if p is not None:
            r = p.rates_for(ask.tier, ask.prompt_tokens)
            top_in = max(r.input, r.cached_input, r.cache_write, r.cache_write_1h)
            best = max(best, ask.prompt_tokens * top_in + out * max(r.output, r.reasoning))
    assert reserve_nusd(ask, prices, cap) == math.ceil(best * 10**9)


@pytest.mark.parametrize(
    ("endpoint", "doc", "want"),
    [
        (CHAT, {"max_tokens": 100}, 100),
        (CHAT, {"max_completion_tokens": 300, "max_tokens": 100}, 300),  # the larger of the two
        (CHAT, {"max_completion_tokens": 50, "n": 4}, 200),  # every choice is generated
        (CHAT, {}, None),
        (COMPLETIONS, {"max_tokens": 10, "n": 2, "best_of": 5}, 50),  # best_of are all generated
        (RESPONSES, {"max_output_tokens": 64}, 64),
        (RESPONSES, {"max_tokens": 64}, None),  # not the Responses API's name
        (MESSAGES, {"max_tokens": 1024}, 1024),
        (EMBEDDINGS, {}, 0),
        (CHAT, {"max_tokens": True}, None),  # not a count: the upstream refuses it
    ],
)
def test_what_a_request_may_generate_is_read_from_its_endpoints_own_members(
    endpoint: str, doc: dict[str, Any], want: int | None
) -> None:
    assert requested_output(endpoint, doc) == want


@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.floats(0, 1), st.booleans()),  # reserve ($), actual share, ends now
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 100),
)
@settings(max_examples=200, deadline=None)
def test_spend_never_passes_the_budget_when_no_request_costs_more_than_it_reserved(
    steps: list[tuple[int, float, bool]], budget: int
) -> None:
    limits = limits_of({"budgets": [{"scope": "key", "name": "k", "daily_usd": str(budget)}]})
    limit = to_nusd(Decimal(budget))

    async def run() -> int:
        running: list[tuple[Any, int]] = []
        spent = 0
        for reserve_usd, share, ends in steps:
            amount = to_nusd(Decimal(reserve_usd))
            try:
                r = await limits.admit("k", None, [amount])
            except BudgetExceeded:
                pass
            else:
                running.append((r, int(amount * share)))
            if ends and running:  # the oldest request in flight ends
                r, actual = running.pop(0)
                limits.commit("k", None, time.time(), actual, 0, r)
                spent += actual
            assert spent <= limit
        for r, actual in running:
            limits.commit("k", None, time.time(), actual, 0, r)
            spent += actual
        return spent

    assert asyncio.run(run()) <= limit
    assert limits.reserved == {}  # every reservation released


@pytest.mark.redis
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40), st.floats(0, 1), st.floats(0, 0.02), st.booleans()
        ),  # $, share, s, side
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 100),
)
@settings(max_examples=25, deadline=None)
def test_two_replicas_on_redis_never_pass_the_budget_when_no_request_costs_more_than_it_reserved(
    redis_server: str, requests: list[Request], budget: int
) -> None:
    spent, held, replicas = spend_on_two_replicas(redis_server, budget, requests)
    assert spent <= to_nusd(Decimal(budget))
    assert held == 0 and all(limits.reserved == {} for limits in replicas)
