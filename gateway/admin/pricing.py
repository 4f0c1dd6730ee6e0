"""``GET /admin/pricing``: what each configured model will be charged, where the price comes from, which models
have none, and the price table in force (``accounting.pricing_report``), with the measured self-hosted prices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from accounting.pricing_report import pricing_report
from gateway.deps import State


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get(
        "/pricing",
        summary="Prices in force per configured model",
        description=(
            "For each configured model: whether it has a price, where it comes from (the price table in force "
            "and its entry, an accounting.pricing override, GPU hours over configured or measured throughput) "
            "and USD per million tokens of each token class, per service tier and above each long-context "
            "threshold. Also the price table in force (path, origin, version, sha256), the unpriced models and "
            "the glob models (priced per requested name)."
        ),
    )
    async def pricing(st: State) -> dict[str, Any]:
        doc = pricing_report(st.accountant.pricing)
        doc["self_hosted_pricing"] = st.accountant.measured.report()
        return doc

    return router
