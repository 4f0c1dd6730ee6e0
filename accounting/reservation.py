"""Budget reservations: what a request may cost, held against its budgets from admission until it ends.

A request covered by a dollar budget reserves its prompt (estimated from the body's size, no tokenizer on the
request path: ``accounting.reservations.prompt_bytes_per_token``) at the input price plus the most it may
generate (``max_tokens``, ``max_completion_tokens`` or ``max_output_tokens`` per endpoint, times the choices it
asks for; the budget's ``reserve_output_tokens`` when it names none) at the output price, of the most expensive
model that could serve it (its target, fallbacks and retries). ``accounting.limits`` admits it only while
spent + reserved + this reservation fits in each budget, holds the amount in the budget counters' store (this
process, or Redis for a fleet) and releases it when the request's actual cost is added. Models without a price
reserve nothing, as they are charged nothing (``accounting.on_unpriced``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from accounting.rates import ModelPrice
from wire.endpoints import CHAT, COMPLETIONS, EMBEDDINGS, OUTPUT_LIMIT
from wire.route_defaults import added
from wire.usage import service_tier

if TYPE_CHECKING:
    from accounting.leases import Lease


_CHOICES: dict[str, tuple[str, ...]] = {CHAT: ("n",), COMPLETIONS: ("n", "best_of")}
"""The members that multiply it: choices asked for (``best_of`` are all generated and paid for)."""


def _count(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def requested_output(endpoint: str, doc: dict[str, Any]) -> int | None:
    """The most output tokens the request lets its model generate (all choices), or None when it names no
    maximum. Embeddings generate nothing (0)."""
    if endpoint == EMBEDDINGS:
        return 0
    best = None
    for f in OUTPUT_LIMIT.get(endpoint, ()):
        v = doc.get(f)
        if v is not None and (n := _count(v)) is not None and (best is None or n > best):
            best = n
    if best is None:
        return None
    choices = 1
    for f in _CHOICES.get(endpoint, ()):
        v = doc.get(f)
        if v is not None and (c := _count(v)) is not None and c > choices:
            choices = c
    return best * choices


class Ask:
    """What one request may use: the reserved size of its prompt and of its output."""

    __slots__ = ("prompt_tokens", "output_tokens", "tier")

    prompt_tokens: int
    output_tokens: int | None
    """None: the request names no maximum (the budget's ``reserve_output_tokens`` applies)."""
    tier: str
    """The service tier the request asks for (its prices)."""

    def __init__(self, prompt_tokens: int, output_tokens: int | None, tier: str = "standard") -> None:
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.tier = tier

    @classmethod
    def of(
        cls,
        endpoint: str,
        doc: dict[str, Any],
        body_bytes: int,
        bytes_per_token: float,
        defaults: Mapping[str, Any] | None = None,
    ) -> Ask:
        """``defaults``: the route's in ``endpoint``'s form, which the upstream call adds for members the client
        did not send (``wire.route_defaults``: a ``max_tokens`` or ``n`` the route sets bounds the request as if
        the client had sent it)."""
        if defaults and (add := added(endpoint, doc, defaults)):
            doc = {**doc, **add}
        return cls(
            math.ceil(body_bytes / bytes_per_token),
            requested_output(endpoint, doc),
            service_tier(doc.get("service_tier")),
        )


def reserve_nusd(ask: Ask, prices: Sequence[ModelPrice | None], output_cap: int | None) -> int:
    """The reservation in nano-USD (rounded up): the highest cost of ``ask`` under any of ``prices`` (the models
    that could serve it; None for one without a price, which costs nothing). The prompt is priced at the
    highest input-side rate (input, cache read, cache write, one-hour cache write), the output at the higher of the output
    and reasoning rates, both at the long-context rates the prompt's size crosses."""
    out = ask.output_tokens if ask.output_tokens is not None else (output_cap or 0)
    best = 0
    for p in prices:
        if p is None:
            continue
        per_input, per_output, den = p.rates_for(ask.tier, ask.prompt_tokens).reserve_nusd
        cost = -(-(ask.prompt_tokens * per_input + out * per_output) // den)  # exact, rounded up
        if cost > best:
            best = cost
    return best


class Reservation:
    """Amounts one admitted request holds against its budgets until it ends."""

    __slots__ = ("id", "holds", "shared", "handed", "released", "leases")

    id: str
    """Unique per reservation (not the request id, which a client may repeat)."""
    holds: list[tuple[tuple[str, str, str], int]]
    """(scope, name, bucket) of each budget counter and the nano-USD held against it."""
    shared: bool
    """Also held in Redis (admitted by the shared script), not only in this process."""
    handed: bool
    """The request was handed to the accountant (``finish``), which releases it when its cost is added."""
    released: bool
    leases: tuple[Lease, ...]
    """The Redis leases its holds were drawn from (``accounting.leases``), instead of a member of its own."""

    def __init__(
        self,
        id: str,
        holds: list[tuple[tuple[str, str, str], int]],
        shared: bool,
        handed: bool = False,
        released: bool = False,
        leases: tuple[Lease, ...] = (),
    ) -> None:
        self.id = id
        self.holds = holds
        self.shared = shared
        self.handed = handed
        self.released = released
        self.leases = leases
