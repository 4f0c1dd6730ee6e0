"""The ledger against the provider's bill: per UTC day and model, what pointsman counted and what the provider
charged (``pointsman spend reconcile FILE``).

Provider exports read (the format is recognised by the header row):

- **OpenAI** — platform.openai.com → Usage → Export → *Cost data*, grouped by *Line item*, 1-day interval,
  CSV (the same fields as the Costs API, ``GET /v1/organization/costs?group_by=line_item``): ``start_time``
  (unix seconds, UTC day start) or ``start_time_iso``, ``amount_value`` (USD), ``amount_currency``,
  ``line_item`` (``"gpt-4o-mini-2024-07-18, input"``: the model, then the token class), and optionally
  ``end_time``, ``project_id``, ``project_name``, ``organization_id``, ``organization_name``.
- **Anthropic** — the cost report (Claude Console → Cost → Export, or ``GET /v1/organizations/cost_report``
  with ``group_by=description`` written as CSV): a day column ``starting_at`` (RFC 3339), ``date`` or
  ``usage_date_utc``; ``model``; the amount as ``cost_usd`` (USD) or as the Admin API's ``amount`` (the
  currency's minor units, cents, with ``currency``); optionally ``token_type``, ``service_tier``,
  ``context_window``, ``cost_type``, ``workspace_id``, ``description``.

Rows of one (day, model) are summed (token classes, tiers, projects, workspaces). Model names are compared
without a date suffix (``gpt-4o-mini-2024-07-18`` and ``claude-3-5-haiku-20241022`` match the ledger's
``gpt-4o-mini`` and ``claude-3-5-haiku``). Rows that are not token costs of a model (web search, storage, code
execution) are listed under the model ``(other)``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
_CENT = Decimal("0.01")
OTHER = "(other)"


class ExportError(ValueError):
    """The file is not a provider export this module reads (the message says what was expected)."""


def model_key(name: str) -> str:
    """A model name without a dated-snapshot suffix or a provider prefix, for matching."""
    name = name.strip().split("/")[-1]
    return _DATE_SUFFIX.sub("", name)


@dataclass(frozen=True, slots=True)
class Drift:
    day: str
    model: str
    ledger_usd: Decimal
    provider_usd: Decimal

    @property
    def drift_usd(self) -> Decimal:
        return self.ledger_usd - self.provider_usd

    @property
    def drift_pct(self) -> Decimal | None:
        if self.provider_usd == 0:
            return None
        return (self.drift_usd / self.provider_usd * 100).quantize(_CENT)


def read_export(text: str) -> tuple[str, dict[tuple[str, str], Decimal]]:
    """(provider, {(day, model): USD}) from a provider export's CSV text."""
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows:
        raise ExportError("the export has no rows")
    header = set(rows[0])
    if "amount_value" in header and "line_item" in header:
        return "openai", _sum(_openai(rows))
    if "model" in header and header & {"cost_usd", "amount"}:
        return "anthropic", _sum(_anthropic(rows))
    raise ExportError(
        "not a provider cost export: expected OpenAI's (start_time, amount_value, line_item) or Anthropic's "
        f"(starting_at or date, model, cost_usd or amount) columns; got {', '.join(sorted(header))}"
    )


def _sum(items: Iterable[tuple[str, str, Decimal]]) -> dict[tuple[str, str], Decimal]:
    out: dict[tuple[str, str], Decimal] = {}
    for day, model, usd in items:
        out[(day, model)] = out.get((day, model), Decimal(0)) + usd
    return out


def _money(v: str | None, where: str) -> Decimal:
    try:
        d = Decimal((v or "0").strip() or "0")
    except InvalidOperation:
        raise ExportError(f"{where}: {v!r} is not an amount") from None
    if not d.is_finite():
        raise ExportError(f"{where}: {v!r} is not an amount")
    return d


def _day(v: str | None, where: str) -> str:
    s = (v or "").strip()
    if not s:
        raise ExportError(f"{where}: no date")
    try:
        if s.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(s), UTC).strftime("%Y-%m-%d")
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        dt = datetime.fromisoformat(s)
    except (ValueError, OverflowError):
        raise ExportError(f"{where}: {v!r} is not a date") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%d")


def _openai(rows: list[dict[str, str]]) -> Iterable[tuple[str, str, Decimal]]:
    for i, r in enumerate(rows, start=2):
        where = f"line {i}"
        currency = (r.get("amount_currency") or "usd").strip().lower()
        if currency != "usd":
            raise ExportError(f"{where}: amounts in {currency!r}; only USD is read")
        day = _day(r.get("start_time") or r.get("start_time_iso"), where)
        item = (r.get("line_item") or "").strip()
        model = item.split(",", 1)[0].strip() if "," in item else ""
        yield day, model_key(model) if model else OTHER, _money(r.get("amount_value"), where)


def _anthropic(rows: list[dict[str, str]]) -> Iterable[tuple[str, str, Decimal]]:
    for i, r in enumerate(rows, start=2):
        where = f"line {i}"
        day = _day(r.get("starting_at") or r.get("date") or r.get("usage_date_utc"), where)
        if r.get("cost_usd") not in (None, ""):
            usd = _money(r.get("cost_usd"), where)
        else:
            currency = (r.get("currency") or "USD").strip().upper()
            if currency != "USD":
                raise ExportError(f"{where}: amounts in {currency!r}; only USD is read")
            usd = _money(r.get("amount"), where) / 100  # the Admin API's amounts are in cents
        model = (r.get("model") or "").strip()
        yield day, model_key(model) if model else OTHER, usd


def reconcile(
    ledger: Mapping[tuple[str, str], Decimal], provider: Mapping[tuple[str, str], Decimal]
) -> list[Drift]:
    """Drift per (day, model) over the days the export covers: the ledger's cost minus the provider's."""
    days = {d for d, _ in provider}
    mine: dict[tuple[str, str], Decimal] = {}
    for (day, model), usd in ledger.items():
        if day in days:
            k = (day, model_key(model))
            mine[k] = mine.get(k, Decimal(0)) + usd
    keys = sorted(set(mine) | set(provider))
    return [Drift(d, m, mine.get((d, m), Decimal(0)), provider.get((d, m), Decimal(0))) for d, m in keys]
