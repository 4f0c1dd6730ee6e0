"""Leases: a hot key's shared limits taken from Redis in slices, so that a replica admits most of its requests
without a round trip while no limit is ever passed.

With Redis, every admission is one atomic script against the shared counters (``accounting.shared_limits``). For
a key that a replica admits at least ``HOT_PER_S`` times a second, the script is asked for more than the
request needs, and grants what fits:

- a **grant** of up to ``LEASE_S`` of the key's requests from its per-minute limit, counted in Redis at once;
  this replica admits that many requests of the key in the same minute without asking again;
- per dollar budget, a **lease**: a reservation of up to ``LEASE_S`` of the key's asks, held in Redis like a
  request's own reservation (renewed while held, freed by Redis if its replica dies). Requests draw their asks
  from it. It is released in the same push that adds its last request's cost, once it is retired: too small for
  the next request, older than ``MAX_AGE_S``, unused for ``IDLE_S``, or on a config change or shutdown.

Neither ever takes more than ``1 / HEADROOM_SHARE`` of what the limit has left (at least the request's own
need), so near a limit the slices shrink to one request and admission is exact as before. A limit is never
passed: what a replica admits from a grant or lease was counted or reserved in Redis first. What a replica
holds unused for a while is the price: other replicas may be refused up to that much earlier, never later. The
tokens-per-minute limit is read from the last script's answer (at most ``MAX_AGE_S`` old) while leasing, so it
may be passed by what a replica admits in that time (it was already checked only before requests, whose tokens
count after they end). While Redis is unreachable, nothing is admitted from leases.
"""

from __future__ import annotations

import asyncio
import math

HOT_PER_S = 50
"""Admissions of one key per second (this replica's) from which its limits are leased."""
LEASE_S = 0.25
"""A grant or lease covers about this long of the key's traffic."""
HEADROOM_SHARE = 16
"""A grant or lease takes at most this share of what the limit has left (at least the request's own need)."""
MAX_AGE_S = 1.0
"""A lease is retired this long after it was granted (a grant lasts its minute)."""
IDLE_S = 0.5
"""A lease no request drew from for this long is retired."""

Bucket = tuple[str, str, str]


class Lease:
    """A budget reservation held in Redis for several requests (member ``<id>:<size>`` of the bucket's set)."""

    __slots__ = ("id", "bucket", "size", "left", "granted_at", "used_at", "open", "retired", "released")

    id: str
    bucket: Bucket
    size: int
    """Nano-USD reserved in Redis."""
    left: int
    """Not yet drawn by a request."""
    granted_at: float
    used_at: float
    open: int
    """Requests admitted from it that have not ended."""
    retired: bool
    """No request draws from it any more; released once ``open`` is 0."""
    released: bool

    def __init__(
        self,
        id: str,
        bucket: Bucket,
        size: int,
        left: int,
        granted_at: float,
        used_at: float,
        open: int = 0,
        retired: bool = False,
        released: bool = False,
    ) -> None:
        self.id = id
        self.bucket = bucket
        self.size = size
        self.left = left
        self.granted_at = granted_at
        self.used_at = used_at
        self.open = open
        self.retired = retired
        self.released = released


class Grant:
    """Requests of a key's per-minute limit counted in Redis for this replica and not yet admitted."""

    __slots__ = ("minute", "left")

    minute: int
    left: int

    def __init__(
        self,
        minute: int,
        left: int,
    ) -> None:
        self.minute = minute
        self.left = left


class Heat:
    """A key's admissions in the current and the previous second (this replica)."""

    __slots__ = ("second", "now", "last")

    second: int
    now: int
    last: int

    def __init__(
        self,
        second: int = 0,
        now: int = 0,
        last: int = 0,
    ) -> None:
        self.second = second
        self.now = now
        self.last = last

    def add(self, t: float) -> int:
        """Count one admission at ``t``; returns the key's admissions per second."""
        s = int(t)
        if s != self.second:
            self.last = self.now if s == self.second + 1 else 0
            self.now = 0
            self.second = s
        self.now += 1
        return max(self.now, self.last)


class TokensSeen:
    """A key's tokens in its sliding minute as the last script saw them."""

    __slots__ = ("used", "at")

    used: float
    at: float

    def __init__(
        self,
        used: float,
        at: float,
    ) -> None:
        self.used = used
        self.at = at


class LeaseBook:
    """This replica's grants and leases (event loop only; no locks)."""

    __slots__ = ("grants", "leases", "heat", "tokens", "acquiring")

    grants: dict[str, Grant]
    leases: dict[Bucket, list[Lease]]
    heat: dict[str, Heat]
    tokens: dict[str, TokensSeen]
    acquiring: dict[str, asyncio.Future[None]]
    """Keys with a grant being asked for now: their other requests wait for it instead of asking too."""

    def __init__(
        self,
        grants: dict[str, Grant] | None = None,
        leases: dict[Bucket, list[Lease]] | None = None,
        heat: dict[str, Heat] | None = None,
        tokens: dict[str, TokensSeen] | None = None,
        acquiring: dict[str, asyncio.Future[None]] | None = None,
    ) -> None:
        self.grants = {} if grants is None else grants
        self.leases = {} if leases is None else leases
        self.heat = {} if heat is None else heat
        self.tokens = {} if tokens is None else tokens
        self.acquiring = {} if acquiring is None else acquiring

    def hot(self, key: str, now: float) -> int:
        """Count an admission of ``key``; its admissions per second when that is at least ``HOT_PER_S``, else 0."""
        h = self.heat.get(key)
        if h is None:
            if len(self.heat) >= 4096:
                self.heat.clear()
            h = self.heat[key] = Heat()
        rate = h.add(now)
        return rate if rate >= HOT_PER_S else 0

    @staticmethod
    def want(rate: int, need: int) -> int:
        """What to ask for: ``LEASE_S`` of ``rate`` requests needing ``need`` each (at least ``need``)."""
        return max(need, need * math.ceil(rate * LEASE_S))

    def lease_for(self, bucket: Bucket, ask: int, now: float) -> Lease | None:
        """A live lease of ``bucket`` with ``ask`` left, or None; leases too old or too small are retired."""
        for lease in self.leases.get(bucket, ()):
            if lease.retired:
                continue
            if now - lease.granted_at >= MAX_AGE_S:
                lease.retired = True
            elif lease.left >= ask:
                return lease
            else:
                lease.retired = True  # too small for this request: requests of a hot key ask alike
        return None

    def add(self, lease: Lease) -> None:
        lst = self.leases.setdefault(lease.bucket, [])
        lst[:] = [x for x in lst if not (x.retired and x.open == 0 and x.released)]
        lst.append(lease)

    def to_release(self, now: float) -> list[Lease]:
        """Leases retired (or now idle or too old) with no request open, not yet released; marked released."""
        out = []
        for bucket, lst in list(self.leases.items()):
            keep = []
            for lease in lst:
                if not lease.retired and (
                    now - lease.used_at >= IDLE_S or now - lease.granted_at >= MAX_AGE_S
                ):
                    lease.retired = True
                if lease.retired and lease.open == 0:
                    if not lease.released:
                        lease.released = True
                        out.append(lease)
                    continue
                keep.append(lease)
            if keep:
                self.leases[bucket] = keep
            else:
                del self.leases[bucket]
        return out

    def retire_all(self) -> None:
        """A config change, Redis lost or shutdown: no more admissions from what is held."""
        for lst in self.leases.values():
            for lease in lst:
                lease.retired = True
        self.grants.clear()
        self.tokens.clear()

    def held(self) -> list[Lease]:
        """Leases still held in Redis (to renew)."""
        return [x for lst in self.leases.values() for x in lst if not x.released]
