"""Strict configuration models for pricing, budgets, rate limits, metrics and the ledger."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class AccountingConfig(StrictModel):
    """The ``accounting:`` section."""

    task_allowlist: list[str] = Field(default_factory=list)
    """Task tag values kept as metric labels; others collapse to ``other``."""
    team_allowlist: list[str] | None = None
    """Team names kept as metric labels; None keeps teams of configured keys, others become ``other``."""
