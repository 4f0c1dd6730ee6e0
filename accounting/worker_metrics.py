"""One ``/metrics`` for all workers: the workers' value files merged, keeping what was parsed between scrapes.

Under ``--workers N`` each worker writes its metric values to its own files in ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's ``MmapedDict``: an 8-byte header whose first 4 bytes are the length in use, then entries of
a 4-byte key length, the key — JSON ``[metric, sample, labels, help]`` — padded so that the value that follows
is 8-byte aligned, the value and a timestamp as doubles; entries are only ever appended, values rewritten in
place). prometheus_client's ``MultiProcessCollector`` re-reads and re-parses every entry of every file on every
scrape and ``generate_latest`` formats every sample from scratch: ~300 ms for 10,000 series from 4 workers, on
the event loop of the worker that answers the scrape.

``WorkerFiles`` keeps, between scrapes, each file's parsed entries (where each value sits and which output series
it adds to) and each output series' rendered name and labels; a scrape parses only the entries appended since
the last one and reads the values. The merge follows ``MultiProcessCollector``: counters, summaries and
histograms sum over workers, a histogram's buckets made cumulative in ``le`` order and its ``_count`` their
total; gauges combine by their ``multiprocess_mode`` (the file's name says it): ``sum``/``livesum``,
``min``/``livemin``, ``max``/``livemax``, ``mostrecent``/``livemostrecent`` (the value with the latest timestamp),
and ``all``/``liveall`` keep one series per worker with a ``pid`` label. The ``live*`` files of a worker that
exited are removed (``mark_process_dead``) and its series with them.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from prometheus_client.utils import floatToGoString

_INT = struct.Struct("i")
_SUM, _MIN, _MAX, _RECENT = 0, 1, 2, 3
_GAUGE_OPS = {
    "sum": _SUM,
    "livesum": _SUM,
    "min": _MIN,
    "livemin": _MIN,
    "max": _MAX,
    "livemax": _MAX,
    "mostrecent": _RECENT,
    "livemostrecent": _RECENT,
    "all": _SUM,
    "liveall": _SUM,
}
_PER_WORKER = frozenset({"all", "liveall"})
_TYPES = frozenset({"counter", "gauge", "histogram", "summary"})
_FORMAT_CACHE_MAX = 4096


class _Child:
    """A histogram's series for one label set: its buckets by upper bound, its ``_count`` and ``_sum`` slots."""

    __slots__ = ("buckets", "ordered", "count", "sum")

    buckets: dict[float, int]
    ordered: list[int]  # bucket slots in ``le`` order
    count: int
    sum: int

    def __init__(
        self,
        buckets: dict[float, int] | None = None,
        ordered: list[int] | None = None,
        count: int = -1,
        sum: int = -1,
    ) -> None:
        self.buckets = {} if buckets is None else buckets
        self.ordered = [] if ordered is None else ordered
        self.count = count
        self.sum = sum


class _Family:
    """One metric as the output shows it: its header, its plain series and its histograms' series."""

    __slots__ = ("name", "typ", "header", "slots", "children")

    name: str  # as in the files (a counter's without ``_total``)
    typ: str
    header: str  # the ``# HELP`` and ``# TYPE`` lines
    slots: list[int]  # plain series, in order of appearance
    children: dict[tuple[tuple[str, str], ...], _Child]  # histograms

    def __init__(
        self,
        name: str,
        typ: str,
        header: str,
        slots: list[int] | None = None,
        children: dict[tuple[tuple[str, str], ...], _Child] | None = None,
    ) -> None:
        self.name = name
        self.typ = typ
        self.header = header
        self.slots = [] if slots is None else slots
        self.children = {} if children is None else children


class _File:
    """What a scrape keeps of one worker's value file between scrapes: how far it is parsed, where its values sit."""

    __slots__ = ("inode", "typ", "op", "pid", "per_worker", "parsed", "positions", "slots", "values", "mm")

    inode: int
    typ: str  # counter, gauge, histogram, summary
    op: int
    pid: str
    per_worker: bool
    parsed: int  # bytes parsed: the next entry starts here
    positions: list[int]  # each entry's value, as an index of doubles
    slots: list[int]  # each entry's output series
    values: Callable[[Any], Any] | None  # the entries' values out of the file's doubles
    mm: mmap.mmap | None  # the file, mapped read-only

    def __init__(
        self,
        inode: int,
        typ: str,
        op: int,
        pid: str,
        per_worker: bool,
        parsed: int = 8,
        positions: list[int] | None = None,
        slots: list[int] | None = None,
        values: Callable[[Any], Any] | None = None,
        mm: mmap.mmap | None = None,
    ) -> None:
        self.inode = inode
        self.typ = typ
        self.op = op
        self.pid = pid
        self.per_worker = per_worker
        self.parsed = parsed
        self.positions = [] if positions is None else positions
        self.slots = [] if slots is None else slots
        self.values = values
        self.mm = mm


_Parsed = tuple[str, str, tuple[tuple[str, str], ...], str]  # metric, sample, sorted labels, help


class WorkerFiles:
    """The merged exposition (Prometheus text format 0.0.4) of the value files in ``path``. Not thread safe: one
    scrape at a time (each worker's event loop answers its own)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._files: dict[str, _File] = {}
        self._keys: dict[str, _Parsed] = {}
        self._families: dict[str, _Family] = {}
        self._series: dict[tuple[str, str, tuple[tuple[str, str], ...]], int] = {}
        self._prefixes: list[str] = []  # per output series: ``name{labels} ``
        self._formatted: dict[float, str] = {}

    # -- a scrape ------------------------------------------------------------------------------------------------
    def exposition(self) -> bytes:
        n_before = len(self._prefixes)
        names = sorted(f for f in os.listdir(self.path) if f.endswith(".db"))
        for gone in set(self._files) - set(names):
            self._drop(gone)
        read = [state for name in names if (state := self._read(name)) is not None]
        n = len(self._prefixes)
        if n != n_before:
            for family in self._families.values():
                for child in family.children.values():
                    child.ordered = [child.buckets[le] for le in sorted(child.buckets)]
        acc = [0.0] * n
        stamps = [0.0] * n
        seen = bytearray(n)
        for state in read:
            if state.values is None or state.mm is None:
                continue
            doubles = memoryview(state.mm)[: len(state.mm) // 8 * 8].cast("d")
            try:
                got = state.values(doubles)
                values = got if len(state.positions) > 1 else (got,)
                if state.op == _SUM:
                    for slot, v in zip(state.slots, values, strict=True):
                        acc[slot] += v
                        seen[slot] = 1
                elif state.op == _RECENT:
                    ts = [doubles[p + 1] for p in state.positions]
                    for slot, v, t in zip(state.slots, values, ts, strict=True):
                        if (
                            t > stamps[slot]
                        ):  # as prometheus_client: a value set without a timestamp is left out
                            acc[slot], stamps[slot], seen[slot] = v, t, 1
                else:
                    smaller = state.op == _MIN
                    for slot, v in zip(state.slots, values, strict=True):
                        if not seen[slot] or (v < acc[slot] if smaller else v > acc[slot]):
                            acc[slot] = v
                            seen[slot] = 1
            finally:
                doubles.release()
        return self._render(acc, seen)

    def _read(self, name: str) -> _File | None:
        """The file's state with its new entries parsed and its values mapped; None if it is gone or is not a value
        file."""
        path = os.path.join(self.path, name)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._drop(name)
            return None
        state = self._files.get(name)
        if state is not None and state.inode != st.st_ino:
            self._drop(name)  # a new file under an old name
            state = None
        if state is None:
            state = self._new_file(name, st.st_ino)
            if state is None:
                return None
            self._files[name] = state
        if st.st_size < 8:
            return None
        if state.mm is None or len(state.mm) < st.st_size:  # first read, or the writer grew the file
            with open(path, "rb") as f:
                grown = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            if state.mm is not None:
                state.mm.close()
            state.mm = grown
        mm = state.mm
        used = min(_INT.unpack_from(mm, 0)[0], len(mm))
        if state.parsed > used:  # the file was rewritten from the start: parse it again
            self._drop(name)
            return self._read(name)
        if state.parsed < used:
            self._parse(state, mm, used)
        return state

    def _drop(self, name: str) -> None:
        state = self._files.pop(name, None)
        if state is not None and state.mm is not None:
            state.mm.close()

    def _new_file(self, name: str, inode: int) -> _File | None:
        parts = name[: -len(".db")].split("_")
        typ = parts[0]
        if typ not in _TYPES or len(parts) < 2:
            return None
        if typ == "gauge":
            if len(parts) < 3 or parts[1] not in _GAUGE_OPS:
                return None
            return _File(inode, typ, _GAUGE_OPS[parts[1]], parts[2], parts[1] in _PER_WORKER)
        return _File(inode, typ, _SUM, parts[1], False)

    def _parse(self, state: _File, data: mmap.mmap, used: int) -> None:
        pos = state.parsed
        typ = state.typ
        while pos + 4 <= used:
            length = _INT.unpack_from(data, pos)[0]
            if length <= 0 or pos + 4 + length > used:
                break  # an entry still being written
            key = data[pos + 4 : pos + 4 + length].decode("utf-8")
            value_at = pos + 4 + length + (8 - (length + 4) % 8)
            if value_at + 16 > used:
                break
            state.slots.append(self._slot(key, typ, state))
            state.positions.append(value_at // 8)
            pos = value_at + 16
        state.parsed = pos
        state.values = itemgetter(*state.positions) if state.positions else None

    def close(self) -> None:
        for name in list(self._files):
            self._drop(name)

    # -- series ----------------------------------------------------------------------------------------------------
    def _slot(self, key: str, typ: str, state: _File) -> int:
        parsed = self._keys.get(key)
        if parsed is None:
            metric, sample, labels, help_text = json.loads(key)
            parsed = self._keys[key] = (metric, sample, tuple(sorted(labels.items())), help_text)
        metric, sample, labels, help_text = parsed
        family = self._families.get(metric)
        if family is None:
            family = self._families[metric] = _Family(metric, typ, _header(metric, typ, help_text))
        if state.per_worker:
            labels = (*labels, ("pid", state.pid))
        if typ == "histogram":
            return self._histogram_slot(family, sample, labels)
        slot = self._series.get((metric, sample, labels))
        if slot is None:
            slot = self._series[(metric, sample, labels)] = self._new_series(sample, labels)
            family.slots.append(slot)
        return slot

    def _histogram_slot(self, family: _Family, sample: str, labels: tuple[tuple[str, str], ...]) -> int:
        le = next((v for k, v in labels if k == "le"), None)
        base = tuple(item for item in labels if item[0] != "le") if le is not None else labels
        child = family.children.get(base)
        if child is None:
            child = family.children[base] = _Child()
            child.count = self._new_series(family.name + "_count", base)
        if le is not None:
            bound = float(le)
            slot = child.buckets.get(bound)
            if slot is None:
                rendered = (*base, ("le", _go_float(bound)))
                slot = child.buckets[bound] = self._new_series(
                    family.name + "_bucket", tuple(sorted(rendered))
                )
            return slot
        if sample == family.name + "_sum":
            if child.sum < 0:
                child.sum = self._new_series(sample, base)
            return child.sum
        return child.count  # a stored ``_count``: replaced by the buckets' total, as prometheus_client does

    def _new_series(self, sample: str, labels: tuple[tuple[str, str], ...]) -> int:
        if labels:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            self._prefixes.append(f"{sample}{{{inner}}} ")
        else:
            self._prefixes.append(f"{sample} ")
        return len(self._prefixes) - 1

    # -- the text ------------------------------------------------------------------------------------------------
    def _render(self, acc: list[float], seen: bytearray) -> bytes:
        out: list[str] = []
        prefixes, fmt = self._prefixes, self._format
        for family in self._families.values():
            lines: list[str] = []
            for slot in family.slots:
                if seen[slot]:
                    lines.append(prefixes[slot] + fmt(acc[slot]))
            for child in family.children.values():
                total, any_bucket = 0.0, False
                for slot in child.ordered:
                    if seen[slot]:
                        total += acc[slot]
                        any_bucket = True
                        lines.append(prefixes[slot] + fmt(total))
                if any_bucket:
                    lines.append(prefixes[child.count] + fmt(total))
                if child.sum >= 0 and seen[child.sum]:
                    lines.append(prefixes[child.sum] + fmt(acc[child.sum]))
            if lines:
                out.append(family.header)
                out.append("\n".join(lines))
                out.append("\n")
        return "".join(out).encode("utf-8")

    def _format(self, value: float) -> str:
        text = self._formatted.get(value)
        if text is None:
            text = _go_float(value)
            if not math.isnan(value):
                if len(self._formatted) >= _FORMAT_CACHE_MAX:
                    self._formatted.clear()
                self._formatted[value] = text
        return text


def _header(metric: str, typ: str, help_text: str) -> str:
    name = metric + "_total" if typ == "counter" else metric
    doc = help_text.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {typ}\n"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _go_float(value: float) -> str:
    """A value as Prometheus writes it (Go's formatting: ``+Inf``, ``NaN``, exponents)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text
