"""Shadow testing on live traffic: paired evidence that a candidate model can take over a route, then a
guarded switch (docs/shadow.md).

Modules: ``config`` (the route's ``shadow:`` and ``promote_when:``), ``extract`` (outputs from bodies and SSE
events), ``comparators``, ``stats``, ``store`` (pair store: SQLite or Redis), ``report`` (report + verdict),
``hub`` (sampler, bounded queue, concurrency runner; the request path's only entry), ``promotion`` (ramp with
guards and rollback).
"""
