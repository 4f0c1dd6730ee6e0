"""The serving process's heap: no cyclic collection while it starts, then frozen out of garbage collection, with
young collections spaced out.

CPython's cyclic collector makes a young pass every 700 net allocations of container objects and, every hundred
or so of those, a full pass over every tracked object, including the ~60,000 that importing and configuring the
gateway made and that live as long as the process. Under load, records waiting for the ledger's and the request
log's next batch keep the net count climbing, so the passes come every few dozen requests: measured with
``python -m tests.bench.run`` conditions (one worker pinned to a core, wrk at 64 connections, 12 s), 2,037 young,
186 middle and 17 full passes took 0.58 s of CPU, about 6% of the gateway's, the full ones 0.31 s of it.

``pointsman serve`` therefore pauses the collector before it imports anything (``pause_collection``): importing
and configuring the gateway makes ~95,000 long-lived objects and ~1,200 garbage ones, and the passes over the
former took ~45 ms of a ~0.55 s cold start. ``settle`` (run once start-up is complete) moves every object into the
permanent generation (``gc.freeze``: never traversed again) without a full pass first: that pass took 25-55 ms
more, to free the start-up's garbage, ~0.5 MB (1,244 objects, mostly the temporary classes and functions of
building the config's models) that stays frozen instead, the way CPython's ``gc.freeze`` documentation
recommends for a pre-fork server. It then raises the young threshold to ``YOUNG_THRESHOLD`` (the request path
makes no cyclic garbage worth collecting sooner: the count stays in the thousands, and what it does make is still
collected) and turns the collector back on. CPU per proxied request fell by ~8% (136 -> 127 us).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Net container allocations between young collections (CPython's default: 700)."""


def pause_collection() -> None:
    """No cyclic collection until ``settle`` or ``resume_collection`` (a serving process's start-up)."""
    gc.disable()


def resume_collection() -> None:
    """Collect cycles again, with the default thresholds (a process that will not settle: the supervisor of
    ``--workers N``)."""
    gc.enable()


def settle() -> None:
    """Freeze the heap built so far, space young collections out and collect again (once start-up is complete)."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    gc.enable()
