"""Routing's tables in PostgreSQL (``routing.shadow.pg_store``, ``routing.store_pg``): two domains, each its own
schema and versioned migrations (``accounting.pg_domain``), applied by ``pointsman db migrate``.

Statements mirror the SQLite stores' tables column for column (SQLite ``BLOB`` is ``BYTEA``, ``REAL`` is
``DOUBLE PRECISION``), so the stores run the same statements on both.
"""

from __future__ import annotations

from accounting.pg_domain import Domain

SHADOW = Domain(
    "shadow",
    (
        (
            1,
            "shadow pairs, route volume, shadow spend, promotions, leases",
            (
                "CREATE TABLE pairs (id TEXT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, route TEXT NOT NULL, "
                "task TEXT, outcome TEXT NOT NULL, doc BYTEA NOT NULL)",
                "CREATE INDEX pairs_route_ts ON pairs (route, ts)",
                "CREATE INDEX pairs_ts ON pairs (ts)",
                "CREATE TABLE seen (route TEXT NOT NULL, task TEXT NOT NULL, minute BIGINT NOT NULL, "
                "n BIGINT NOT NULL, PRIMARY KEY (route, task, minute))",
                "CREATE TABLE spend (route TEXT NOT NULL, day TEXT NOT NULL, nusd BIGINT NOT NULL, "
                "PRIMARY KEY (route, day))",
                "CREATE TABLE observations (route TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, role TEXT NOT NULL, "
                "ok INTEGER NOT NULL, latency_s DOUBLE PRECISION NOT NULL)",
                "CREATE INDEX observations_route_ts ON observations (route, ts)",
                "CREATE TABLE promotions (route TEXT PRIMARY KEY, doc BYTEA NOT NULL)",
                "CREATE TABLE promotion_events (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                "route TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, doc BYTEA NOT NULL)",
                "CREATE TABLE leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)",
            ),
        ),
        (
            2,
            "route volume read by route and minute",
            # (the embedded store's ``seen_route_minute``: a report reads a route's minutes across all its tasks,
            # which the primary key's (route, task, minute) order cannot range over)
            ("CREATE INDEX seen_route_minute ON seen (route, minute)",),
        ),
    ),
)
"""Shadow pairs and promotion state (``routing.shadow.store``'s tables)."""

POLICY = Domain(
    "policy",
    (
        (
            1,
            "policy versions",
            (
                "CREATE TABLE policy_versions (version BIGINT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL, "
                "source TEXT NOT NULL, summary TEXT NOT NULL, doc TEXT NOT NULL)",
                "CREATE TABLE policy_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            ),
        ),
        (
            2,
            "revoked client key secrets",
            (
                "CREATE TABLE revoked_keys (key_sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, "
                "version BIGINT NOT NULL, revoked_at DOUBLE PRECISION NOT NULL)",
            ),
        ),
        (
            3,
            "owners of stored Responses API answers",
            (
                "CREATE TABLE response_owners (id TEXT PRIMARY KEY, owner TEXT NOT NULL, backend TEXT NOT NULL, "
                "endpoint TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)",
                "CREATE INDEX response_owners_at ON response_owners (at)",
            ),
        ),
    ),
)
"""The routing policy's versions and the revoked client key secrets (``routing.store``'s tables), and the owners of
stored Responses API answers (``routing.response_owners``)."""
