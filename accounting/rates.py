"""One model's price sheet, and the cost of a usage under it.

A ``ModelPrice`` holds USD-per-token rates under the key names of litellm's price table
(``input_cost_per_token``, ``cache_read_input_token_cost``, ``cache_creation_input_token_cost``,
``cache_creation_input_token_cost_above_1hr``, ``output_cost_per_reasoning_token``,
``input_cost_per_audio_token``, ``output_cost_per_image_token``, ...), with their service-tier variants
(``_flex``, ``_priority``, ``_balanced``, ``_ultrafast``; ``_batches`` for batch prices) and long-context variants
(``_above_200k_tokens``, ``_above_272k_tokens``, ...). Configured and GPU-hour prices are sheets with the base
keys only.

How a usage is priced (the rules of the providers' price lists, as the table encodes them):

- the service tier the response reports picks the tier's rate for each class; a class the tier does not list
  costs its standard rate;
- a prompt (every input token, cached and cache-written included) above a long-context threshold prices every
  token of the request at that threshold's rates (the highest threshold crossed; classes without a
  long-context rate keep theirs);
- input: uncached text tokens at the input rate; cache reads at the cache-read rate (default: the input rate);
  cache writes at the cache-write rate (default: the input rate), one-hour writes at the one-hour rate
  (default: the cache-write rate); audio and image input tokens at their own rates where the model has them
  (else the input rate);
- output: reasoning tokens at the reasoning rate where the model has its own (else the output rate), audio and
  image output tokens at theirs, the rest at the output rate.

Resolving the rates for a (tier, threshold) pair is done once per model and cached: on the request path a
cost is a dict lookup and a few ``Decimal`` multiplications.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from wire.usage import SERVICE_TIERS, Usage

MTOK = Decimal(1_000_000)
_ZERO = Decimal(0)

TIER_SUFFIX = {"flex": "_flex", "priority": "_priority", "balanced": "_balanced", "ultrafast": "_ultrafast"}
"""Service tier -> the key suffix of its prices (litellm's; ``fast`` is read as ``priority``)."""
_BATCH = "_batches"
_HALF = Decimal("0.5")
_SUFFIXES = ("_ultrafast", "_priority", "_balanced", "_flex", "_fast", "_auto")
"""Suffixes litellm strips to fall back from a tier's key to the standard one (longest first)."""
_NONSTANDARD = (*_SUFFIXES, _BATCH)
_THRESHOLD_PREFIXES = (
    "input_cost_per_token_above_",
    "output_cost_per_token_above_",
    "cache_read_input_token_cost_above_",
    "cache_creation_input_token_cost_above_",
)
_CW_1H = "cache_creation_input_token_cost_above_1hr"
_AUDIO_IN = "input_cost_per_audio_token"

TOKEN_CLASSES = (
    "input",
    "cached_input",
    "cache_write",
    "cache_write_1h",
    "output",
    "reasoning",
    "audio_input",
    "audio_output",
    "image_input",
    "image_output",
)
"""The token classes a price sheet prices (and the ledger and metrics keep apart)."""


def threshold_of(key: str) -> int | None:
    """``..._above_200k_tokens[_tier]`` -> 200000; None for a key without a token threshold."""
    if "_above_" not in key or "_tokens" not in key:
        return None
    t = key.rsplit("_above_", 1)[1].split("_tokens")[0]
    try:
        return int(float(t.replace("k", "")) * (1000 if "k" in t else 1))
    except ValueError:
        return None


class Rates:
    """USD per token of each class, resolved for one service tier and one prompt size."""

    __slots__ = (
        "input",
        "cached_input",
        "cache_write",
        "cache_write_1h",
        "output",
        "reasoning",
        "audio_input",
        "audio_output",
        "image_input",
        "image_output",
        "context_threshold",
        "reserve_nusd",
    )

    input: Final[Decimal]
    cached_input: Final[Decimal]
    cache_write: Final[Decimal]
    cache_write_1h: Final[Decimal]
    output: Final[Decimal]
    reasoning: Final[Decimal]
    audio_input: Final[Decimal]
    audio_output: Final[Decimal]
    image_input: Final[Decimal]
    image_output: Final[Decimal]
    context_threshold: Final[int]
    """The long-context threshold the prompt crossed (0: none)."""
    reserve_nusd: Final[tuple[int, int, int]]
    """What a reservation prices a request at (``accounting.reservation``), in nano-USD per token as exact
    fractions over one denominator, ``(input numerator, output numerator, denominator)``: the prompt at the
    highest input-side rate (input, cache read, cache write, one-hour cache write), the output at the higher of
    the output and reasoning rates. A reservation is then integers only."""

    def __init__(
        self,
        input: Decimal,
        cached_input: Decimal,
        cache_write: Decimal,
        cache_write_1h: Decimal,
        output: Decimal,
        reasoning: Decimal,
        audio_input: Decimal,
        audio_output: Decimal,
        image_input: Decimal,
        image_output: Decimal,
        context_threshold: int,
    ) -> None:
        self.input = input
        self.cached_input = cached_input
        self.cache_write = cache_write
        self.cache_write_1h = cache_write_1h
        self.output = output
        self.reasoning = reasoning
        self.audio_input = audio_input
        self.audio_output = audio_output
        self.image_input = image_input
        self.image_output = image_output
        self.context_threshold = context_threshold
        top_in = max(input, cached_input, cache_write, cache_write_1h)
        top_out = max(output, reasoning)
        (a, b), (c, d) = top_in.scaleb(9).as_integer_ratio(), top_out.scaleb(9).as_integer_ratio()
        den = math.lcm(b, d)
        self.reserve_nusd = (a * (den // b), c * (den // d), den)

    def per_mtok(self) -> dict[str, str]:
        return {c: format((getattr(self, c) * MTOK).normalize(), "f") for c in TOKEN_CLASSES}


class ModelPrice:
    """USD per token by class and tier (see the module docstring)."""

    __slots__ = ("rates", "source", "_resolved", "_thresholds", "_sorted")

    rates: Final[Mapping[str, Decimal]]
    source: Final[str]
    """``config``, ``table``, ``gpu`` (derived from GPU-hour price and throughput)."""
    _resolved: Final[dict[tuple[str, int], Rates]]
    """The rates resolved so far, by (tier, threshold crossed); not compared."""
    _thresholds: Final[dict[str, dict[int, tuple[str, ...]]]]
    """``_threshold_keys`` by tier, as found; not compared."""
    _sorted: Final[dict[str, tuple[int, ...]]]
    """``context_thresholds`` by tier, as found; not compared."""

    def __init__(self, rates: Mapping[str, Decimal], source: str) -> None:
        self.rates = rates
        self.source = source
        self._resolved = {}
        self._thresholds = {}
        self._sorted = {}

    def _key(self) -> tuple[Mapping[str, Decimal], str]:
        """What it is compared and hashed by."""
        return (self.rates, self.source)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelPrice):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @classmethod
    def flat(
        cls,
        input: Decimal,
        output: Decimal,
        cached_input: Decimal,
        source: str,
        cache_write: Decimal | None = None,
        cache_write_1h: Decimal | None = None,
    ) -> ModelPrice:
        rates = {
            "input_cost_per_token": input,
            "output_cost_per_token": output,
            "cache_read_input_token_cost": cached_input,
        }
        if cache_write is not None:
            rates["cache_creation_input_token_cost"] = cache_write
        if cache_write_1h is not None:
            rates[_CW_1H] = cache_write_1h
        return cls(rates, source)

    # -- the standard rates (what a plain request pays) -------------------------------------------------------
    @property
    def input(self) -> Decimal:
        return self.rates.get("input_cost_per_token", _ZERO)

    @property
    def output(self) -> Decimal:
        return self.rates.get("output_cost_per_token", _ZERO)

    @property
    def cached_input(self) -> Decimal:
        return self.rates.get("cache_read_input_token_cost", self.input)

    @property
    def output_per_mtok(self) -> Decimal:
        return self.output * MTOK

    def tiers(self) -> list[str]:
        """The service tiers this sheet has prices of its own for (``standard`` always)."""
        out = ["standard"]
        for tier in SERVICE_TIERS[1:]:
            suffix = _BATCH if tier == "batch" else TIER_SUFFIX[tier]
            if any(k.endswith(suffix) for k in self.rates):
                out.append(tier)
        return out

    def context_thresholds(self, tier: str = "standard") -> tuple[int, ...]:
        """The long-context thresholds (prompt tokens) at which this sheet's rates change, ascending."""
        hit = self._sorted.get(tier)
        if hit is None:
            hit = self._sorted[tier] = tuple(sorted(self._threshold_keys(tier)))
        return hit

    def _threshold_keys(self, tier: str) -> dict[int, tuple[str, ...]]:
        """Threshold -> the ``_above_<raw>_tokens`` spellings of it among the token-rate keys (empty tuple: only
        the audio input rate changes there)."""
        hit = self._thresholds.get(tier)
        if hit is None:
            suffix = _suffix(tier)
            found: dict[int, set[str]] = {}
            for k, v in self.rates.items():
                main = k.startswith(_THRESHOLD_PREFIXES)
                if v is None or not (main or k.startswith(_AUDIO_IN + "_above_")):
                    continue
                if k.endswith(_NONSTANDARD) and not (suffix and k.endswith(suffix)):
                    continue
                t = threshold_of(k)
                if t is None:
                    continue
                raws = found.setdefault(t, set())
                if main:
                    raws.add(_above_part(k))
            hit = self._thresholds[tier] = {t: tuple(sorted(r)) for t, r in found.items()}
        return hit

    # -- request path ----------------------------------------------------------------------------------------
    def rates_for(self, tier: str = "standard", prompt_tokens: int = 0) -> Rates:
        crossed = 0
        for t in self.context_thresholds(tier):
            if prompt_tokens > t:
                crossed = t
        key = (tier, crossed)
        hit = self._resolved.get(key)
        if hit is None:
            hit = self._resolved[key] = self._resolve(tier, crossed)
        return hit

    def cost(self, u: Usage) -> Decimal:
        r = self.rates_for(u.service_tier, u.input_tokens)
        p = u.input_tokens
        cached, writes = u.cached_input_tokens, u.cache_write_tokens
        audio, image = u.audio_input_tokens, u.image_input_tokens
        if (cached or writes) and cached + writes + audio + image > p:
            budget = max(p - cached - writes, 0)
            audio = min(audio, budget)
            image = min(image, budget - audio)
            text = budget - audio - image
        else:
            text = max(p - cached - writes - audio - image, 0)
        cost = text * r.input + u.output_tokens * r.output  # the common case: no other class present
        if cached:
            cost += cached * r.cached_input
        if writes:
            writes_1h = min(u.cache_write_1h_tokens, writes)
            cost += (writes - writes_1h) * r.cache_write + writes_1h * r.cache_write_1h
        if audio:
            cost += audio * r.audio_input
        if image:
            cost += image * r.image_input
        reasoning, a_out, i_out = u.reasoning_tokens, u.audio_output_tokens, u.image_output_tokens
        if reasoning or a_out or i_out:  # these are part of output_tokens: move them to their own price
            moved = min(reasoning + a_out + i_out, u.output_tokens)
            cost += (
                reasoning * r.reasoning + a_out * r.audio_output + i_out * r.image_output - moved * r.output
            )
        return cost

    # -- resolution (once per tier and threshold) ------------------------------------------------------------
    def _get(self, key: str) -> Decimal | None:
        """A rate by key. A service tier's key that is missing falls back to the standard key; a missing batch key
        is half the standard rate (the 50% batch discount OpenAI, Anthropic, Google and AWS publish)."""
        v = self.rates.get(key)
        if v is not None:
            return v
        if key.endswith(_BATCH):
            std = self.rates.get(key[: -len(_BATCH)])
            return None if std is None else std * _HALF
        for s in _SUFFIXES:
            if s in key:
                return self.rates.get(key.replace(s, ""))
        return None

    def _resolve(self, tier: str, crossed: int) -> Rates:
        s = _suffix(tier)
        inp = self._get("input_cost_per_token" + s) or _ZERO
        out = self._get("output_cost_per_token" + s) or _ZERO
        if out == 0:
            out = self.rates.get("output_cost_per_image_token", out)
        cw = self._get("cache_creation_input_token_cost" + s)
        cr = self._get("cache_read_input_token_cost" + s)
        cw_1h_key = _CW_1H + s
        keys = self._threshold_keys(tier)
        for t in sorted(keys):
            if t > crossed:
                break
            for above in keys[t]:  # none: only the audio input rate changes at this threshold
                inp = _or(self._get(f"input_cost_per_token{above}{s}"), inp)
                out = _or(self._get(f"output_cost_per_token{above}{s}"), out)
                cw = _maybe(self._get(f"cache_creation_input_token_cost{above}{s}"), cw)
                cr = _maybe(self._get(f"cache_read_input_token_cost{above}{s}"), cr)
                longer = f"{_CW_1H}{above}{s}"
                if self.rates.get(longer) is not None:
                    cw_1h_key = longer
        cr = inp if cr is None else cr
        cw = inp if cw is None else cw
        cw_1h = self._get(cw_1h_key)
        return Rates(
            input=inp,
            cached_input=cr,
            cache_write=cw,
            cache_write_1h=cw if cw_1h is None else cw_1h,
            output=out,
            reasoning=self._reasoning(tier, out),
            audio_input=self._audio_input(tier, crossed, inp),
            audio_output=_or(self._get("output_cost_per_audio_token" + (s if tier == "batch" else "")), out),
            image_input=_or(self._get("input_cost_per_image_token" + s), inp),
            image_output=_or(self._get("output_cost_per_image_token" + s), out),
            context_threshold=crossed,
        )

    def _reasoning(self, tier: str, out: Decimal) -> Decimal:
        s = _suffix(tier)
        if tier == "batch":
            return _or(self._get("output_cost_per_reasoning_token" + s), out)
        own = self.rates.get("output_cost_per_reasoning_token" + s) if s else None
        if own is not None:
            return own
        if s and self.rates.get("output_cost_per_token" + s) is not None:
            return out
        return _or(self.rates.get("output_cost_per_reasoning_token"), out)

    def _audio_input(self, tier: str, crossed: int, inp: Decimal) -> Decimal:
        s = _suffix(tier)
        key = _AUDIO_IN + s
        best: tuple[int, str] | None = None
        for k, v in self.rates.items():
            if (
                v is None
                or not k.startswith(_AUDIO_IN + "_above_")
                or not k.endswith(("_tokens", "_tokens" + s))
            ):
                continue
            t = threshold_of(k)
            if t is not None and t <= crossed and (best is None or t > best[0]):
                best = (t, _above_part(k))
        if best is not None:
            key = f"{_AUDIO_IN}{best[1]}{s}"
        if self.rates.get(key) is None and self.rates.get(_AUDIO_IN + _above_part(key)) is None:
            return inp
        return self._get(key) or _ZERO


def _suffix(tier: str) -> str:
    if tier == "batch":
        return _BATCH
    return TIER_SUFFIX.get(tier, "")


def _above_part(key: str) -> str:
    i = key.rfind("_above_")
    if i < 0:
        return ""
    rest = key[i:]
    j = rest.find("_tokens")
    return rest[: j + len("_tokens")] if j >= 0 else ""


def _or(v: Decimal | None, default: Decimal) -> Decimal:
    return default if v is None else v


def _maybe(v: Decimal | None, default: Decimal | None) -> Decimal | None:
    return default if v is None else v
