"""Budgets as admission checks them: each configured budget compiled into one ``Budget`` per period it limits."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from accounting.config import AccountingConfig
from accounting.money import to_nusd


@dataclass(frozen=True, slots=True)
class Budget:
    scope: str
    name: str
    period: str
    """``daily`` or ``monthly``."""
    limit: Decimal
    limit_nusd: int
    soft: float
    reserve_output_tokens: int | None = None
    """Output tokens reserved for a request that names no maximum (``BudgetConfig.reserve_output_tokens``)."""


def budgets_of(cfg: AccountingConfig) -> dict[tuple[str, str], list[Budget]]:
    """(scope, name) -> its budgets, a daily and a monthly one where both are set."""
    budgets: dict[tuple[str, str], list[Budget]] = {}
    for b in cfg.budgets:
        lst = budgets.setdefault((b.scope, b.name), [])
        for period, amount in (("daily", b.daily_usd), ("monthly", b.monthly_usd)):
            if amount is not None:
                lst.append(
                    Budget(
                        b.scope,
                        b.name,
                        period,
                        amount,
                        to_nusd(amount),
                        b.soft_threshold,
                        b.reserve_output_tokens,
                    )
                )
    return budgets
