"""pointsman's cost against an independent calculator: litellm's own ``cost_per_token`` (and its batch
calculator), used here as a test oracle only (never on the request path).

For every chat model of the bundled price table and a set of usage shapes (plain, cached reads, cache writes
with five-minute and one-hour lifetimes, reasoning, a prompt above each long-context threshold the model has,
and plain and cached usage in each service tier and batch the model lists), the usage is read by
``wire.usage.parse_usage`` and priced by ``accounting.rates.ModelPrice.cost``; the result must equal litellm's,
or the difference must be covered by an explained entry of ``price_oracle_allowlist.ALLOWED``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from accounting.price_table import PriceTable, litellm_table_path
from accounting.rates import ModelPrice
from tests.accounting.price_oracle_allowlist import ALLOWED
from wire.usage import parse_usage

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # the bundled table, no network

_TOLERANCE = Decimal("1e-9")
_SHAPES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("plain", {"prompt_tokens": 3000, "completion_tokens": 2000}),
    (
        "cached",
        {"prompt_tokens": 10000, "completion_tokens": 2000, "prompt_tokens_details": {"cached_tokens": 4000}},
    ),
    (
        "cache_write",
        {
            "prompt_tokens": 10000,
            "completion_tokens": 2000,
            "prompt_tokens_details": {
                "cached_tokens": 4000,
                "cache_creation_tokens": 3000,
                "cache_creation_token_details": {
                    "ephemeral_5m_input_tokens": 2000,
                    "ephemeral_1h_input_tokens": 1000,
                },
            },
        },
    ),
    (
        "reasoning",
        {
            "prompt_tokens": 3000,
            "completion_tokens": 2000,
            "completion_tokens_details": {"reasoning_tokens": 1500},
        },
    ),
)


def shapes(price: ModelPrice) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(shape name, service tier, OpenAI-shaped usage) for one model."""
    base = list(_SHAPES)
    for t in price.context_thresholds():
        usage = {
            "prompt_tokens": t + 1000,
            "completion_tokens": 2000,
            "prompt_tokens_details": {"cached_tokens": 1000},
        }
        base.append((f"above_{t}", usage))
    for tier in price.tiers():
        for name, usage in base:
            if tier == "standard":
                yield name, tier, usage
            elif name in ("plain", "cached"):
                yield f"{name}@{tier}", tier, usage


def litellm_cost(litellm: Any, model: str, provider: str | None, tier: str, usage: dict[str, Any]) -> Decimal:
    u = litellm.Usage(**usage, total_tokens=usage["prompt_tokens"] + usage["completion_tokens"])
    if tier == "batch":
        from litellm.cost_calculator import batch_cost_calculator

        a, b = batch_cost_calculator(u, model, provider)
    else:
        a, b = litellm.cost_per_token(
            model=model,
            custom_llm_provider=provider,
            usage_object=u,
            service_tier=None if tier == "standard" else tier,
        )
    return Decimal(str(a)) + Decimal(str(b))


def test_every_chat_model_costs_what_litellms_calculator_says_or_the_difference_is_explained(
    capsys: pytest.CaptureFixture[str],
) -> None:
    litellm = pytest.importorskip("litellm")
    path = litellm_table_path()
    assert path is not None
    raw = json.loads(path.read_text())
    table = PriceTable.load()
    models = compared = 0
    unexplained: list[str] = []
    allowed: list[str] = []
    for key, entry in raw.items():
        if not isinstance(entry, dict) or entry.get("mode") != "chat" or key not in table.prices:
            continue
        price = table.prices[key]
        models += 1
        for name, tier, usage in shapes(price):
            u = parse_usage(usage)
            assert u is not None
            u.service_tier = tier
            ours = price.cost(u)
            theirs = litellm_cost(litellm, key, entry.get("litellm_provider"), tier, usage)
            compared += 1
            if abs(ours - theirs) <= _TOLERANCE * max(Decimal(1), abs(theirs)):
                continue
            line = f"{key} {name}: pointsman {ours} litellm {theirs}"
            (allowed if any(a.covers(key, name) for a in ALLOWED) else unexplained).append(line)
    with capsys.disabled():
        print(
            f"\nprice oracle: {models} chat models, {compared} (model, usage) pairs compared; "
            f"{len(allowed)} differ, all explained in price_oracle_allowlist; {len(unexplained)} unexplained"
        )
    assert models > 1000 and compared > 10000
    assert not unexplained, "\n".join(unexplained[:50])
