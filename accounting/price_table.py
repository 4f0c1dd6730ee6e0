"""litellm's price table: model name -> ``ModelPrice``, read as a JSON *data file* from the installed litellm
package (located with ``importlib.util.find_spec``, never imported), once at startup, or from
``accounting.price_table``.

The table is ~3.5 MB, of which pricing reads a quarter (the priced entries' per-token rates): that cut is what the
gateway keeps, and it keeps a copy of it in ``<server.data_dir>/price-table.cut.json``, named by the table's path,
size and mtime, so a later start parses 0.9 MB instead of 3.5 MB (~4 ms instead of ~26). An entry is read into
``Decimal`` rates the first time it is looked up.
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
from typing import Any

import orjson

from accounting.atomic_file import write_atomically
from accounting.rates import ModelPrice

log = logging.getLogger("pointsman.accounting")

_TABLE_FILE = "model_prices_and_context_window_backup.json"


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
