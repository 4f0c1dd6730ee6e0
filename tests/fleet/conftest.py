"""A real PostgreSQL server for the fleet tests (one per session), and a fresh database per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.postgres_server import PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    srv = PostgresServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def empty_db(postgres_server: PostgresServer) -> str:
    """The DSN of a new, empty database (no schema)."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.dsn.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def ledger_db(empty_db: str) -> str:
    """The DSN of a new database with the current schema."""
    from accounting import pg_schema

    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(
            "SET synchronous_commit = on"
        )  # the server's default is off: a kill would lose the schema
        pg_schema.migrate(conn)
    return empty_db
