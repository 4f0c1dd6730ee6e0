"""What logs and status pages show of a PostgreSQL connection string: host, port and database, never the user
or password."""

from __future__ import annotations

import pytest

from accounting.config import dsn_target


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://u:pw@db.example:6543/books", "db.example:6543/books"),
        ("postgres://db.example/books", "db.example:5432/books"),
        ("host=10.0.0.5 port=5433 dbname=books user=u password='p w'", "10.0.0.5:5433/books"),
        ("dbname=books password=secret", "localhost:5432/books"),
    ],
)
def test_a_dsn_is_shown_as_host_port_and_database(dsn: str, shown: str) -> None:
    assert dsn_target(dsn) == shown
