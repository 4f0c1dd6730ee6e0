"""Strict configuration models for pricing, budgets, rate limits, metrics and the ledger."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from wire.config_model import StrictModel

_NonNegDecimal = Field(default=None, ge=0, le=1_000_000)


class ModelPriceConfig(StrictModel):
    """Price of one model, overriding the bundled price table (all amounts USD per million tokens)."""

    input_per_mtok: Decimal | None = _NonNegDecimal
    """USD per million uncached input (prompt) tokens."""
    output_per_mtok: Decimal | None = _NonNegDecimal
    """USD per million output (completion) tokens, reasoning tokens included."""
    cached_input_per_mtok: Decimal | None = _NonNegDecimal
    """USD per million cached input tokens (cache reads); defaults to the input price when not given."""
    cache_write_per_mtok: Decimal | None = _NonNegDecimal
    """USD per million tokens written to the prompt cache (five-minute lifetime); default: the table's, else the
    input price."""
    cache_write_1h_per_mtok: Decimal | None = _NonNegDecimal
    """USD per million tokens written to the one-hour prompt cache; default: the table's, else the cache-write
    price."""
    gpu_hour_usd: Decimal | None = _NonNegDecimal
    """Self-hosted: price of one GPU hour (overrides the vLLM backend's ``gpu_hour_usd``)."""
    gpu_count: int | None = Field(default=None, ge=1, le=100_000)
    """Self-hosted: GPUs serving this model (overrides the vLLM backend's ``gpu_count``)."""
    throughput_tokens_per_s: float | None = Field(default=None, gt=0)
    """Self-hosted: tokens per second the GPUs sustain (input + output); with ``gpu_hour_usd`` it derives a
    per-token price of ``gpu_hour_usd * gpu_count / 3600 / throughput`` for every token type."""


_GLOB = re.compile(r"[*?\[]")
"""What makes a name look like a glob (budgets and rate limits name keys and teams exactly)."""


class BudgetConfig(StrictModel):
    """A spending cap for one key or team, per UTC day and/or calendar month (UTC)."""

    scope: Literal["key", "team"]
    """What the budget applies to: a client key (by name) or a team."""
    name: str = Field(min_length=1, max_length=128)
    """The key's or team's name."""
    daily_usd: Decimal | None = Field(default=None, ge=0)
    """USD allowed per UTC day; None for no daily cap."""
    monthly_usd: Decimal | None = Field(default=None, ge=0)
    """USD allowed per calendar month (UTC); None for no monthly cap."""
    soft_threshold: float = Field(default=0.8, gt=0, le=1)
    """Fraction of a cap at which a warning is logged and ``pointsman_budget_remaining_usd`` is watched."""
    reserve_output_tokens: int | None = Field(default=None, ge=0, le=10_000_000)
    """Output tokens held against this budget, while it runs, for a request that names no maximum
    (``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``), priced at the route's output price. A
    request's reservation (its prompt and its maximum output, at the highest price of the models that could
    serve it) is refused when it does not fit in what is left of the budget, and released when the request
    ends. None reserves no output for such requests: what they generate can pass the budget (docs/accounting.md,
    "How far spend can pass a budget")."""

    @field_validator("name")
    @classmethod
    def _one_name(cls, v: str) -> str:
        if _GLOB.search(v):
            raise ValueError(
                f"a budget names one key or team; {v!r} looks like a pattern, which is not matched here"
            )
        return v

    @model_validator(mode="after")
    def _some_cap(self) -> BudgetConfig:
        if self.daily_usd is None and self.monthly_usd is None:
            raise ValueError("give daily_usd, monthly_usd or both")
        return self


class ReservationConfig(StrictModel):
    """How budget reservations are estimated and kept (``accounting.reservations``)."""

    prompt_bytes_per_token: float = Field(default=1.0, gt=0, le=16)
    """A request's prompt is reserved as ``ceil(body bytes / prompt_bytes_per_token)`` input tokens (no
    tokenizer on the request path). At 1 it is an upper bound for text: every token of a byte-level tokenizer is
    at least one byte of the body; 4 is close to the mean for English but can under-reserve code, numbers and
    non-Latin scripts by up to ~3x."""
    ttl_s: float = Field(default=60.0, ge=5, le=3600)
    """With Redis: how long a reservation outlives its replica. Each replica renews the reservations it holds
    every ``ttl_s / 3``; those of a replica that died (or stayed unreachable or frozen that long) expire after at
    most ``ttl_s`` and no longer hold budget back."""


class RateLimitConfig(StrictModel):
    """Per-key request and token rate limits (sliding one-minute window)."""

    key: str = Field(min_length=1, max_length=128)
    """Client key name, or ``*`` for every key without its own entry."""
    requests_per_min: int | None = Field(default=None, ge=1)
    """Requests admitted per minute."""
    tokens_per_min: int | None = Field(default=None, ge=1)
    """Tokens (input + output) per minute; a request is refused once the window's tokens reach it."""

    @field_validator("key")
    @classmethod
    def _one_key(cls, v: str) -> str:
        if v != "*" and _GLOB.search(v):
            raise ValueError(
                f"a rate limit names one key, or '*' for every key without its own entry; {v!r} looks like a "
                "pattern, which is not matched here"
            )
        return v


class LedgerConfig(StrictModel):
    """The durable spend ledger: one row per request."""

    enabled: bool = True
    """Write the ledger at all."""
    path: str | None = None
    """SQLite file; defaults to ``<server.data_dir>/ledger.sqlite3``."""
    flush_interval_s: float = Field(default=0.5, gt=0, le=1.0)
    """Pending records are written at least this often (and on shutdown)."""
    batch_size: int = Field(default=2000, ge=1, le=100_000)
    """Records per write transaction at most."""
    max_pending: int = Field(default=200_000, ge=100)
    """Records held in memory waiting for the writer; beyond it records are dropped and counted (never blocks)."""
    shared: Literal["auto", "off"] = "auto"
    """With ``redis.url`` set (``auto``), records are also published to a Redis stream that every replica
    copies into its own SQLite file, so ``/admin/spend`` on any replica covers all of them."""
    stream_maxlen: int = Field(default=2_000_000, ge=1000)
    """Approximate cap on the shared Redis stream's length, in rows (an entry holds one publish batch)."""
    backend: Literal["sqlite", "postgres"] = "sqlite"
    """``sqlite``: the embedded ledger (per replica; with Redis, shared through the stream above).
    ``postgres``: every replica ships its own rows to the PostgreSQL database at ``dsn`` (the local SQLite file
    is the outbox while the database is unreachable) and reports read its hourly rollups; the Redis stream copy
    is not used. Needs the ``postgres`` extra and ``pointsman db migrate``."""
    dsn: str | None = None
    """PostgreSQL connection string (``postgresql://user:pass@host:5432/db``), for ``backend: postgres``."""
    outbox_max_rows: int = Field(default=5_000_000, ge=1000)
    """``postgres``: rows the local outbox may hold while the database is unreachable; beyond it new rows are
    refused (counted as dropped) until it is back."""
    retention_days: int | None = Field(default=None, ge=1)
    """``postgres``: daily partitions of raw rows older than this are dropped (rollups and budget totals stay);
    None keeps every row."""
    partitions_ahead_days: int = Field(default=3, ge=1, le=60)
    """``postgres``: daily partitions created this many days ahead."""
    call_timeout_s: float = Field(default=30.0, ge=1, le=3600)
    """``postgres``: a database call (shipping a batch, a budget lookup, a report) not answered within this is
    abandoned: the server's ``statement_timeout``, and the connection closed by the client when the server does
    not answer at all (a frozen host, which TCP notices only after many minutes). Shipping then retries (rows
    wait in the outbox, its bound enforced); a report answers 503 ``ledger_unavailable``."""

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> LedgerConfig:
        if self.backend == "postgres" and not self.dsn:
            raise ValueError("backend postgres needs dsn")
        return self

    def file(self, data_dir: str) -> str:
        """The local SQLite file (the ledger, or with ``postgres`` its outbox)."""
        return self.path or str(Path(data_dir) / "ledger.sqlite3")

    def describe(self, data_dir: str) -> str:
        """Where rows go, for the startup report: the database without credentials and the outbox bound."""
        if not self.enabled:
            return "ledger: off (no spend reports, budgets count in memory only)"
        if self.backend == "postgres":
            assert self.dsn is not None
            return (
                f"ledger: PostgreSQL at {dsn_target(self.dsn)}; outbox {self.file(data_dir)} holds up to "
                f"{self.outbox_max_rows:,} unshipped rows (ledger.outbox_max_rows) while the database is "
                "unreachable, then refuses new rows"
            )
        return f"ledger: SQLite at {self.file(data_dir)}"


def dsn_target(dsn: str) -> str:
    """``host:port/database`` of a PostgreSQL connection string (URL or ``key=value`` form), never the user or
    password: what logs and status pages may show."""
    if "://" in dsn:
        u = urlsplit(dsn)
        host = u.hostname or "localhost"
        return f"{host}:{u.port or 5432}{u.path or '/'}"
    kv = dict(re.findall(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn))
    kv = {k: v.strip("'") for k, v in kv.items()}
    return f"{kv.get('host', 'localhost')}:{kv.get('port', '5432')}/{kv.get('dbname', '')}"


class EstimationConfig(StrictModel):
    """Token counting when an upstream reports no usage."""

    chars_per_token: float = Field(default=4.0, gt=0)
    """Heuristic for model families without a known tokenizer (estimated records are flagged)."""
    tiktoken_dir: str | None = None
    """Directory with tiktoken encoding files (named as tiktoken caches them); default: ``TIKTOKEN_CACHE_DIR``,
    then the copies bundled with the installed litellm package."""
    vllm_tokenize: bool = True
    """Count self-hosted models' tokens with the vLLM server's own ``/tokenize``."""


class AccountingConfig(StrictModel):
    """The ``accounting:`` section."""

    task_allowlist: list[str] = Field(default_factory=list)
    """Task tag values kept as metric labels; others collapse to ``other``. Task values named in routes' match
    rules and keys' default tags are kept too."""
    team_allowlist: list[str] | None = None
    """Team names kept as metric labels; None keeps teams of configured keys, others become ``other``."""
    model_allowlist: list[str] = Field(default_factory=list)
    """Extra model names kept as ``requested_model``/``upstream_model`` labels (exact names; configured exact
    model names and priced names are always kept)."""
    price_table: str | None = None
    """JSON price table in litellm's format; default: the one bundled with the installed litellm package."""
    pricing: dict[str, ModelPriceConfig] = Field(default_factory=dict)
    """Per-model prices by model name (as configured, or the upstream model id); override the price table."""
    budgets: list[BudgetConfig] = Field(default_factory=list)
    """Spending caps per key and team."""
    on_unpriced: Literal["reject", "allow"] = "reject"
    """A request that a model without a price would serve, from a key or team with a dollar budget: ``reject``
    answers 403 ``model_unpriced`` naming the model (an unpriced model would pass any budget for free);
    ``allow`` serves it, recorded as unpriced. Requests without a budget are always served (and flagged)."""
    rate_limits: list[RateLimitConfig] = Field(default_factory=list)
    """Per-key request/token rate limits."""
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    """Durable spend ledger."""
    estimation: EstimationConfig = Field(default_factory=EstimationConfig)
    """Token counting when the upstream reports no usage."""
    reservations: ReservationConfig = Field(default_factory=ReservationConfig)
    """Budget reservations: the estimate of a request's cost held against its budgets while it runs."""

    @field_validator("budgets")
    @classmethod
    def _budgets_unique(cls, v: list[BudgetConfig]) -> list[BudgetConfig]:
        seen: set[tuple[str, str]] = set()
        for b in v:
            if (b.scope, b.name) in seen:
                raise ValueError(f"duplicate budget for {b.scope} {b.name!r}")
            seen.add((b.scope, b.name))
        return v

    @field_validator("rate_limits")
    @classmethod
    def _limits_unique(cls, v: list[RateLimitConfig]) -> list[RateLimitConfig]:
        names = [r.key for r in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate rate limits for keys {dup}")
        return v
