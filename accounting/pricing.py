"""Prices as data; money as ``Decimal``.

Frontier prices come from litellm's maintained price table, read as a JSON *data file* from the installed
litellm package (located with ``importlib.util.find_spec``, never imported), once at startup. The table is ~3.5 MB
of which pricing reads a quarter (the priced entries' per-token rates): that cut is what the gateway keeps, and
it keeps a copy of it in ``<server.data_dir>/price-table.cut.json``, named by the table's path, size and mtime,
so a later start parses 0.9 MB instead of 3.5 MB (~4 ms instead of ~26). Per-model
overrides in ``accounting.pricing`` win. Self-hosted models are priced only explicitly: per million tokens,
or from ``gpu_hour_usd * gpu_count / 3600 / throughput_tokens_per_s`` (throughput configured, or measured
later through ``Pricing.set_throughput``). A self-hosted model with neither is *unpriced*: it is reported at
startup (log + ``pointsman_model_unpriced``), never silently treated as free.

The GPU-hour rule lives here and nowhere else (``Pricing.gpu_hours``): a model's ``accounting.pricing`` entry
(by configured name, upstream id or ``backend/upstream-id``) wins over its vLLM backend's ``gpu_hour_usd`` and
``gpu_count``. What is charged and what the pricing reports show both come from it.

``Pricing.lookup`` runs on the request path: dict lookups only.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import orjson

from accounting.atomic_file import write_atomically
from accounting.catalog import Catalog
from accounting.config import AccountingConfig, ModelPriceConfig
from accounting.rates import MTOK as MTOK
from accounting.rates import ModelPrice as ModelPrice
from wire.usage import Usage

log = logging.getLogger("pointsman.accounting")

_ZERO = Decimal(0)
_TABLE_FILE = "model_prices_and_context_window_backup.json"
_CACHE_MAX = 10_000


class GpuHours:
    """What a self-hosted model's GPU time costs: ``usd`` per GPU hour on ``gpus`` GPUs (per endpoint)."""

    __slots__ = ("usd", "gpus", "source")

    usd: Final[Decimal]
    gpus: Final[int]
    source: Final[str]
    """``pricing`` (the model's ``accounting.pricing`` entry) or ``backend`` (the vLLM backend's)."""

    def __init__(
        self,
        usd: Decimal,
        gpus: int,
        source: str,
    ) -> None:
        self.usd = usd
        self.gpus = gpus
        self.source = source

    def per_token(self, tokens_per_s: float) -> Decimal:
        return self.usd * self.gpus / Decimal(3600) / Decimal(str(tokens_per_s))


def _dec(v: Any) -> Decimal | None:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        return None
    try:
        d = Decimal(str(v))
    except ArithmeticError:
        return None
    return d if d.is_finite() and d >= 0 else None


def litellm_table_path() -> Path | None:
    """The price table bundled with the installed litellm package, found without importing litellm."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / _TABLE_FILE
        if p.is_file():
            return p
    return None


@lru_cache(maxsize=4)
def _digest(path: str, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _digest_if_unchanged(path: str, mtime_ns: int) -> str | None:
    """The table file's digest, if the file is still the one loaded (same mtime); None once it was replaced."""
    try:
        if os.stat(path).st_mtime_ns != mtime_ns:
            return None
        return _digest(path, mtime_ns)
    except OSError:
        return None


def _litellm_version() -> str | None:
    """The installed litellm package's version, from its metadata (litellm is not imported)."""
    try:
        return importlib.metadata.version("litellm")
    except importlib.metadata.PackageNotFoundError:
        return None


CUT_FILE = "price-table.cut.json"
"""The cut of the price table last loaded, in ``server.data_dir`` (``_cut``)."""
_CUT_FORMAT = 1
"""Raised whenever what ``_cut`` keeps changes, so a copy cut by an older gateway is cut again."""
_CUT_KEYS = frozenset({"tiered_pricing", "litellm_provider"})
"""What ``_entry_price`` reads besides the rates (``_is_rate``)."""


@lru_cache(maxsize=4)
def _load_table(path: str, mtime_ns: int, size: int, cache_dir: str | None) -> _Prices:
    return _Prices(_read_cut(path, mtime_ns, size, cache_dir))


def _read_cut(path: str, mtime_ns: int, size: int, cache_dir: str | None) -> dict[str, Any]:
    """The cut of the table at ``path``: from ``cache_dir``'s copy when that copy was cut from this very file
    (same path, size and mtime, same cut format), else cut from the file and the copy replaced (best effort: a
    folder that cannot be written costs the next start the full parse, nothing else). Raises ``OSError`` or
    ``orjson.JSONDecodeError`` when the table itself cannot be read."""
    of = {"format": _CUT_FORMAT, "path": os.path.abspath(path), "size": size, "mtime_ns": mtime_ns}
    copy = os.path.join(cache_dir, CUT_FILE) if cache_dir else None
    if copy is not None:
        try:
            doc = orjson.loads(Path(copy).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            doc = None
        if isinstance(doc, dict) and doc.get("of") == of and isinstance(doc.get("entries"), dict):
            entries: dict[str, Any] = doc["entries"]
            return entries
    entries = _cut(orjson.loads(Path(path).read_bytes()))
    if copy is not None:
        try:
            write_atomically(copy, orjson.dumps({"of": of, "entries": entries}))
        except OSError as exc:
            log.info(
                "price table: cannot keep its cut in %s (%s); the next start parses the whole table",
                copy,
                exc,
            )
    return entries


def _cut(raw: Any) -> dict[str, Any]:
    """A litellm-format table cut to what pricing reads: the entries with a token price, each with only its
    per-token rates and the keys ``_entry_price`` reads (``_CUT_KEYS``). Every price read from the cut equals the
    price read from the whole table (the loader reads only the cut, cached or not)."""
    out: dict[str, Any] = {}
    if not isinstance(raw, dict):
        return out
    for name, entry in raw.items():
        if name == "sample_spec" or not isinstance(entry, dict):
            continue
        if not (_priced(entry.get("input_cost_per_token")) or _priced(entry.get("output_cost_per_token"))):
            continue
        # (``_is_rate`` spelled out: ~80,000 keys, a call each is a third of the cut's time)
        out[name] = {k: v for k, v in entry.items() if ("cost" in k and "_token" in k) or k in _CUT_KEYS}
    return out


def _priced(v: Any) -> bool:
    """``_dec(v) is not None``, without building a ``Decimal`` for the table's plain numbers."""
    if type(v) is float:
        return v >= 0 and v != _INF  # (NaN fails the first test)
    if type(v) is int:
        return v >= 0
    return _dec(v) is not None


_INF = float("inf")


class _Prices(Mapping[str, ModelPrice]):
    """A litellm-format table's entries that have a token price, each read into ``Decimal`` rates the first time
    it is looked up: a start prices only the configured models, not the table's thousands of entries."""

    def __init__(self, raw: Any) -> None:
        self._raw: dict[str, Any] = raw if isinstance(raw, dict) else {}
        self._read: dict[str, ModelPrice | None] = {}
        """Entries read so far (a table's own names only, so its size bounds it)."""
        self._len: int | None = None

    def _price(self, name: str) -> ModelPrice | None:
        try:
            return self._read[name]
        except KeyError:
            pass
        entry = self._raw.get(name)
        if entry is None:
            return None
        price = _entry_price(entry)
        self._read[name] = price
        return price

    def __getitem__(self, name: str) -> ModelPrice:
        price = self._price(name)
        if price is None:
            raise KeyError(name)
        return price

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._price(name) is not None

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._raw if self._price(name) is not None)

    def __len__(self) -> int:
        if self._len is None:
            self._len = sum(1 for _ in self)
        return self._len


def _entry_price(entry: Any) -> ModelPrice | None:
    """A table entry's price, or None if it has no token price."""
    if not isinstance(entry, dict):
        return None
    if _dec(entry.get("input_cost_per_token")) is None and _dec(entry.get("output_cost_per_token")) is None:
        return None
    rates = {k: d for k, v in entry.items() if _is_rate(k) and (d := _dec(v)) is not None}
    tiers = entry.get("tiered_pricing")
    if isinstance(tiers, list):
        rates.update(_range_tiers(tiers, rates))
    fireworks = entry.get("litellm_provider") == "fireworks_ai"
    if fireworks and "cache_read_input_token_cost" not in rates and "input_cost_per_token" in rates:
        # Fireworks bills cached prompt tokens at half the input price unless a model lists its own
        # (docs.fireworks.ai/guides/prompt-caching)
        rates["cache_read_input_token_cost"] = rates["input_cost_per_token"] * _HALF
    return ModelPrice(rates, "table")


_HALF = Decimal("0.5")


def _or_none(v: Decimal | None, default: Decimal | None) -> Decimal | None:
    return default if v is None else v


_TIER_KEYS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
)


def _range_tiers(tiers: list[Any], base: dict[str, Decimal]) -> dict[str, Decimal]:
    """A ``tiered_pricing`` list (prompt-size ranges, each pricing every token of a request whose prompt falls
    in it: Alibaba Model Studio's rule) as long-context keys: the first range's rates are the base rates, each
    later range ``[lo, hi]`` becomes ``*_above_<lo>_tokens``. Cache rates a range omits are its input rate."""
    out: dict[str, Decimal] = {}
    ranged = []
    for t in tiers:
        r = t.get("range") if isinstance(t, dict) else None
        if (
            isinstance(r, list)
            and len(r) == 2
            and _dec(r[0]) is not None
            and _dec(t.get("input_cost_per_token"))
        ):
            ranged.append((int(Decimal(str(r[0]))), t))
    for i, (lo, t) in enumerate(sorted(ranged, key=lambda x: x[0])):
        inp = _dec(t.get("input_cost_per_token"))
        assert inp is not None
        values = {
            "input_cost_per_token": inp,
            "output_cost_per_token": _dec(t.get("output_cost_per_token")),
            "cache_read_input_token_cost": _or_none(_dec(t.get("cache_read_input_token_cost")), inp),
            "cache_creation_input_token_cost": _or_none(_dec(t.get("cache_creation_input_token_cost")), inp),
        }
        reasoning = _or_none(_dec(t.get("output_cost_per_reasoning_token")), values["output_cost_per_token"])
        for k, v in values.items():
            if v is None:
                continue
            out[k if i == 0 and lo == 0 else f"{k}_above_{lo}_tokens"] = v
        if i == 0 and lo == 0 and reasoning is not None:
            out["output_cost_per_reasoning_token"] = reasoning
    return out


def _is_rate(key: str) -> bool:
    """A USD-per-token key (not per image, second, character, query, page ...)."""
    return "cost" in key and "_token" in key


class PriceTable:
    """Model name -> price, from a litellm-format JSON file."""

    def __init__(
        self,
        prices: Mapping[str, ModelPrice],
        source: str,
        about: dict[str, Any] | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        self.prices = prices
        self.source = source
        self._about: dict[str, Any] = about or {"path": source or None, "origin": "none"}
        self._mtime_ns = mtime_ns
        """The loaded file's mtime: ``info`` reads the file's digest and litellm's version when first asked, not
        at every start (~12 ms of one), and only while the file is still the one loaded."""
        self._info: dict[str, Any] | None = None

    @property
    def info(self) -> dict[str, Any]:
        """Which table is in force: ``path``, ``origin`` (``bundled`` with litellm, ``file`` from
        ``accounting.price_table``, ``none``), ``version`` (the litellm package's, for the bundled table),
        ``sha256`` (first 16 hex digits; None once the file was replaced after it was loaded), ``modified`` (the
        file's mtime, UTC) and ``models`` (entries with a token price: counted when first asked, which reads the
        whole table)."""
        if self._info is None:
            about = dict(self._about)
            if self._mtime_ns is not None:
                about["version"] = None if about["origin"] == "file" else _litellm_version()
                about["sha256"] = _digest_if_unchanged(self.source, self._mtime_ns)
            self._info = {**about, "models": len(self.prices)}
        return self._info

    @classmethod
    def load(cls, path: str | None = None, cache_dir: str | None = None) -> PriceTable:
        """The table at ``path`` (default: litellm's bundled one). ``cache_dir``: where the table's cut is kept
        between starts (``server.data_dir``; None keeps none)."""
        p = Path(path) if path else litellm_table_path()
        if p is None:
            log.warning(
                "no price table found (litellm not installed?): frontier models need accounting.pricing"
            )
            return cls({}, "")
        try:
            st = os.stat(p)
            mtime = st.st_mtime_ns
            prices = _load_table(str(p), mtime, st.st_size, cache_dir)
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"cannot read price table {p}: {exc}") from exc
        about: dict[str, Any] = {
            "path": str(p),
            "origin": "file" if path else "bundled",
            "version": None,  # (these two are read by ``info`` when first asked)
            "sha256": None,
            "modified": datetime.fromtimestamp(mtime / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return cls(prices, str(p), about, mtime)

    def get(self, model: str, provider: str | None = None) -> ModelPrice | None:
        key = self.key_of(model, provider)
        return None if key is None else self.prices[key]

    def key_of(self, model: str, provider: str | None = None) -> str | None:
        """The table entry a model name resolves to: the name, ``provider/name``, or the name after its prefix."""
        for key in (
            model,
            f"{provider}/{model}" if provider else None,
            model.split("/", 1)[1] if "/" in model else None,
        ):
            if key is not None and key in self.prices:
                return key
        return None


def unpriced_message(model: str, self_hosted: bool) -> str:
    """The warning (and check-config line) for a model without a price: what to set."""
    how = (
        "input_per_mtok/output_per_mtok, or throughput_tokens_per_s with the backend's gpu_hour_usd"
        if self_hosted
        else "input_per_mtok/output_per_mtok, or a newer accounting.price_table that lists it"
    )
    kind = "self-hosted model" if self_hosted else "model"
    return (
        f"{kind} {model!r} has no price: set accounting.pricing[{model!r}] ({how}); until then its requests are "
        "recorded as unpriced (not $0 spend), flagged by pointsman_model_unpriced, and refused for keys with a "
        "dollar budget unless accounting.on_unpriced is allow"
    )


_STANDARD_KEYS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
    "output_cost_per_reasoning_token",
    "input_cost_per_audio_token",
    "output_cost_per_audio_token",
    "input_cost_per_image_token",
    "output_cost_per_image_token",
)


def _explicit(o: ModelPriceConfig, base: ModelPrice | None) -> ModelPrice | None:
    """Apply per-mtok overrides on top of ``base``'s standard prices (an override is one flat price per class:
    the table's service-tier and long-context variants no longer apply). Without a base, a side not given
    takes the price of one that is (input, else output, else cached input): one price for every token type."""
    i, out, c = o.input_per_mtok, o.output_per_mtok, o.cached_input_per_mtok
    w, w1 = o.cache_write_per_mtok, o.cache_write_1h_per_mtok
    if i is None and out is None and c is None and w is None and w1 is None:
        return None
    if base is None:
        fill = next(v for v in (i, out, c, w, w1) if v is not None) / MTOK
        base = ModelPrice.flat(fill, fill, fill, "config")
    inp = i / MTOK if i is not None else base.input
    outp = out / MTOK if out is not None else base.output
    if c is not None:
        cached = c / MTOK
    elif i is not None and base.source == "table":
        cached = min(base.cached_input, inp)
    elif i is not None:
        cached = inp
    else:
        cached = base.cached_input
    rates = {k: base.rates[k] for k in _STANDARD_KEYS if k in base.rates}
    if out is not None:  # reasoning tokens are output tokens: an output price given is theirs too
        rates.pop("output_cost_per_reasoning_token", None)
    rates["input_cost_per_token"] = inp
    rates["output_cost_per_token"] = outp
    rates["cache_read_input_token_cost"] = cached
    if w is not None:
        rates["cache_creation_input_token_cost"] = w / MTOK
    if w1 is not None:
        rates["cache_creation_input_token_cost_above_1hr"] = w1 / MTOK
    return ModelPrice(rates, "config")


class Pricing:
    """Resolves (backend, upstream model) to a price. Built at startup and on config swaps."""

    def __init__(self, cfg: AccountingConfig, catalog: Catalog, table: PriceTable) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.table = table
        self._throughput: dict[str, float] = {}
        self._cache: dict[tuple[str, str, str | None], ModelPrice | None] = {}
        self._names: dict[tuple[str, str], str] = {}
        """(backend, upstream) -> the first configured model name serving it, for exact configured models."""
        self._exact = {n for n in catalog.models if not _is_glob(n)}
        """The configured models' exact names."""
        for m in catalog.models.values():
            if m.upstream_model is not None and not _is_glob(m.name):
                self._names.setdefault((m.backend, m.upstream_model), m.name)
            elif not _is_glob(m.name):
                self._names.setdefault((m.backend, m.name), m.name)
        self.unpriced: list[str] = []
        """Configured models (exact names, frontier and self-hosted) that resolve to no price."""
        self.self_hosted_prices: dict[str, ModelPrice] = {}
        """Configured self-hosted model name -> price (for ``pointsman_selfhosted_cost_per_mtok_usd``)."""
        self._scan()

    def _scan(self) -> None:
        self.unpriced = []
        self.self_hosted_prices = {}
        for m in self.catalog.models.values():
            if _is_glob(m.name) and m.upstream_model is None:
                continue  # names a glob lets through are flagged when first charged (Accountant.price)
            b = self.catalog.backends.get(m.backend)
            price = self._resolve(m.backend, m.upstream_model or m.name, m.name)
            if price is None:
                self.unpriced.append(m.name)
            elif b is not None and b.self_hosted:
                self.self_hosted_prices[m.name] = price

    def configured_name(self, backend: str, upstream: str) -> str:
        """The configured (exact) model name served as ``upstream`` by ``backend``; else ``upstream``."""
        return self._names.get((backend, upstream), upstream)

    def self_hosted(self, backend: str) -> bool:
        b = self.catalog.backends.get(backend)
        return b is not None and b.self_hosted

    def warn_unpriced(self) -> None:
        for name in self.unpriced:
            m = self.catalog.models.get(name)
            log.warning("%s", unpriced_message(name, m is not None and self.self_hosted(m.backend)))

    # -- request path ------------------------------------------------------------------------------------
    def lookup(self, backend: str, upstream_model: str, name: str | None = None) -> ModelPrice | None:
        """The price of ``upstream_model`` served by ``backend`` as the configured model ``name``: two configured
        models on one backend and upstream model each have their own ``accounting.pricing`` entry. A ``name`` that
        is not a configured model (one a glob let through) is priced by its upstream model alone; without a
        ``name``, as the first configured model with that backend and upstream model."""
        k = (backend, upstream_model, name)
        try:
            return self._cache[k]
        except KeyError:
            pass
        if name is None:
            name = self._names.get((backend, upstream_model))
        elif name not in self._exact:
            name = None
        price = self._resolve(backend, upstream_model, name)
        if len(self._cache) < _CACHE_MAX:
            self._cache[k] = price
        return price

    def cost(
        self, backend: str, upstream_model: str, usage: Usage, name: str | None = None
    ) -> tuple[Decimal, bool]:
        """(cost, priced)."""
        p = self.lookup(backend, upstream_model, name)
        if p is None:
            return _ZERO, False
        return p.cost(usage), True

    # -- resolution ----------------------------------------------------------------------------------------
    def _override(self, *names: str | None) -> ModelPriceConfig | None:
        for n in names:
            if n is not None:
                o = self.cfg.pricing.get(n)
                if o is not None:
                    return o
        return None

    def gpu_hours(self, backend: str, upstream: str, name: str | None) -> GpuHours | None:
        """The GPU-hour price of a self-hosted model: its pricing entry's, else its backend's (each of price
        and GPU count separately). None when neither gives a price."""
        facts = self.catalog.backends.get(backend)
        if facts is None:
            return None
        o = self._override(name, upstream, f"{backend}/{upstream}")
        usd = o.gpu_hour_usd if o is not None else None
        source = "pricing"
        if not usd:
            usd, source = facts.gpu_hour_usd, "backend"
        if not usd:
            return None
        gpus = (o.gpu_count if o is not None else None) or facts.gpu_count
        return GpuHours(usd, gpus, source)

    def model_gpu_hours(self, model: str) -> GpuHours | None:
        """``gpu_hours`` of a configured model (by its configured name)."""
        m = self.catalog.models.get(model)
        if m is None:
            return None
        return self.gpu_hours(m.backend, m.upstream_model or m.name, m.name)

    def origin(self, backend: str, upstream: str, name: str | None) -> str:
        """Where a served model's price comes from, in words (for the pricing report): the table entry, the
        ``accounting.pricing`` key, or the GPU-hour price and throughput. Empty when it has no price."""
        price = self._resolve(backend, upstream, name)
        if price is None:
            return ""
        facts = self.catalog.backends.get(backend)
        key = next(
            (n for n in (name, upstream, f"{backend}/{upstream}") if n is not None and n in self.cfg.pricing),
            None,
        )
        if price.source == "gpu":
            hours = self.gpu_hours(backend, upstream, name)
            measured = self._throughput.get(name or upstream) or self._throughput.get(upstream)
            tps = measured or (self.cfg.pricing[key].throughput_tokens_per_s if key else None)
            assert hours is not None and tps
            how = "measured" if measured else f"accounting.pricing[{key!r}].throughput_tokens_per_s"
            where = f"accounting.pricing[{key!r}]" if hours.source == "pricing" else f"backend {backend!r}"
            return f"GPU hours: ${hours.usd}/h x {hours.gpus} GPU(s) ({where}) / {tps:g} tokens/s per endpoint ({how})"
        entry = self.table.key_of(upstream, facts.provider if facts else None)
        if entry is None and name is not None and name != upstream:
            entry = self.table.key_of(name, facts.provider if facts else None)
        table = f"price table entry {entry!r}" if entry else ""
        if price.source == "config":
            return f"accounting.pricing[{key!r}]" + (f" over {table}" if table else "")
        return table

    def _resolve(self, backend: str, upstream: str, name: str | None) -> ModelPrice | None:
        facts = self.catalog.backends.get(backend)
        o = self._override(name, upstream, f"{backend}/{upstream}")
        if facts is not None and facts.self_hosted:
            if o is not None:
                explicit = _explicit(o, None)
                if explicit is not None:
                    return explicit
            hours = self.gpu_hours(backend, upstream, name)
            tps = self._throughput.get(name or upstream) or self._throughput.get(upstream)
            if tps is None and o is not None:
                tps = o.throughput_tokens_per_s
            if hours is None or not tps:
                return None
            per_token = hours.per_token(tps)
            return ModelPrice.flat(per_token, per_token, per_token, "gpu", per_token, per_token)
        base = self.table.get(upstream, facts.provider if facts else None)
        if base is None and name is not None and name != upstream:
            base = self.table.get(name, facts.provider if facts else None)
        if o is not None:
            explicit = _explicit(o, base)
            if explicit is not None:
                return explicit
        return base

    # -- measured throughput hook (vLLM /metrics) ------------------------------------------------------------
    @property
    def throughput(self) -> dict[str, float]:
        """Measured throughputs in force: model -> tokens per second."""
        return self._throughput

    def set_throughput(self, model: str, tokens_per_s: float) -> ModelPrice | None:
        """Record a measured throughput for a self-hosted model (configured name or upstream id) and reprice it.

        Returns the model's new price (None if still unpriced). Configured ``throughput_tokens_per_s`` is
        superseded by a measurement.
        """
        if tokens_per_s <= 0:
            return None
        self._throughput[model] = tokens_per_s
        self._cache.clear()
        self._scan()
        for m in self.catalog.models.values():
            if model in (m.name, m.upstream_model):
                return self.self_hosted_prices.get(m.name)
        return None


def _is_glob(name: str) -> bool:
    return any(c in name for c in "*?[")
