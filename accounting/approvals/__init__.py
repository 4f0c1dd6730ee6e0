"""Approvals by purpose: who allowed what for a team (or a key), when, and the history of every decision.

One store for every purpose — ``capture`` (a team's data may be captured for post-training) and ``third_party``
(a team's request data may be processed by third-party backends) — embedded in SQLite by default
(``store.SqliteApprovals``), in Redis when replicas share state (``redis_store.RedisApprovals``); the request
path reads a per-process cache that is re-read in the background (``book.ApprovalBook``).
"""
