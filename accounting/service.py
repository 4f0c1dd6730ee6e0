"""The accountant: admission (budgets, rate limits), pricing, metrics and the ledger for every request.

The request path calls ``admit`` before dispatch and ``price`` + ``finish`` after; ``finish`` never blocks
(records are queued and written in batches in the background).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from accounting.config import AccountingConfig
from accounting.record import RequestRecord


class Accountant:
    def __init__(self, cfg: AccountingConfig, data_dir: str) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.registry = CollectorRegistry()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def admit(self, key: str, team: str | None, model: str) -> None:
        return None

    def price(self, rec: RequestRecord) -> Decimal:
        return rec.cost_usd

    def finish(
        self,
        rec: RequestRecord,
        request_body: dict[str, Any] | None = None,
        output_events: Sequence[bytes] | None = None,
    ) -> None:
        return None

    def track_in_flight(self, backend: str, delta: int) -> None:
        return None

    def metrics_payload(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
