"""The serving process's heap after start-up: frozen out of garbage collection, with young collections spaced out.

CPython's cyclic collector makes a young pass every 700 net allocations of container objects and, every hundred
or so of those, a full pass over every tracked object, including the ~60,000 that importing and configuring the
gateway made and that live as long as the process. Under load, records waiting for the ledger's and the request
log's next batch keep the net count climbing, so the passes come every few dozen requests: measured with
``python -m tests.bench.run`` conditions (one worker pinned to a core, wrk at 64 connections, 12 s), 2,037 young,
186 middle and 17 full passes took 0.58 s of CPU, about 6% of the gateway's, the full ones 0.31 s of it.

``settle`` (run by ``pointsman serve`` once start-up is complete) collects once, moves what survives into the
permanent generation (``gc.freeze``: never traversed again), and raises the young threshold to
``YOUNG_THRESHOLD``: the request path makes no cyclic garbage worth collecting sooner (the count stays in the
thousands), and what it does make is still collected. CPU per proxied request fell by ~8% (136 -> 127 us).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Net container allocations between young collections (CPython's default: 700)."""


def settle() -> None:
    """Freeze the heap built so far and space young collections out (once start-up is complete)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
