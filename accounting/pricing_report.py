"""What each configured model will be charged, and why: the data behind ``pointsman pricing`` and
``GET /admin/pricing`` (and the unpriced list of ``pointsman check-config``).

For each configured model: its backend and upstream id, whether it has a price, where the price comes from
(the price table in force and the entry, an ``accounting.pricing`` override, or GPU hours over a configured or
measured throughput), and USD per million tokens of every token class in each service tier it has prices for,
and above each long-context threshold. Glob models are listed apart: each name they let through is priced
when first requested. Amounts are decimal strings.
"""

from __future__ import annotations

from typing import Any

from accounting.pricing import Pricing, unpriced_message


def pricing_report(pricing: Pricing) -> dict[str, Any]:
    models: list[dict[str, Any]] = []
    globs: list[dict[str, Any]] = []
    for m in pricing.catalog.models.values():
        facts = pricing.catalog.backends.get(m.backend)
        self_hosted = facts is not None and facts.self_hosted
        if m.upstream_model is None and any(c in m.name for c in "*?["):
            globs.append(
                {
                    "model": m.name,
                    "backend": m.backend,
                    "note": "each name this glob lets through is priced from the price table when first "
                    "requested (a name the table lacks is flagged unpriced then)",
                }
            )
            continue
        upstream = m.upstream_model or m.name
        price = pricing.lookup(m.backend, upstream, m.name)
        item: dict[str, Any] = {
            "model": m.name,
            "backend": m.backend,
            "upstream_model": upstream,
            "hosting": "self_hosted" if self_hosted else "frontier",
            "priced": price is not None,
            "source": price.source if price is not None else None,
            "from": pricing.origin(m.backend, upstream, m.name) or None,
        }
        if price is None:
            item["fix"] = unpriced_message(m.name, self_hosted)
        else:
            item["per_mtok"] = {tier: price.rates_for(tier).per_mtok() for tier in price.tiers()}
            item["long_context"] = {
                str(t): price.rates_for("standard", t + 1).per_mtok() for t in price.context_thresholds()
            }
        models.append(item)
    return {
        "object": "pricing",
        "table": pricing.table.info,
        "on_unpriced": pricing.cfg.on_unpriced,
        "data": models,
        "unpriced": [i["model"] for i in models if not i["priced"]],
        "globs": globs,
    }
