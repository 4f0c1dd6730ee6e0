"""``pointsman db``: the PostgreSQL ledger's schema (``accounting.ledger.backend: postgres``).

``migrate`` applies the versioned migrations not yet applied (and adds ledger columns the database lacks);
``status`` says where the database stands. The gateway checks the same at startup and refuses to start
against a reachable database whose schema is behind.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.config import ConfigError, load_config


def add_parser(sub: Any) -> None:
    p = sub.add_parser("db", help="the PostgreSQL ledger's schema: migrate, status")
    dsub = p.add_subparsers(dest="db_command", required=True)
    for name, func, text in (
        ("migrate", cmd_migrate, "apply the migrations not yet applied"),
        ("status", cmd_status, "the schema version and what is missing"),
    ):
        c = dsub.add_parser(name, help=text)
        c.add_argument("--config", "-c", help="config file whose accounting.ledger.dsn to use")
        c.add_argument("--dsn", help="PostgreSQL connection string (instead of --config)")
        if name == "migrate":
            c.add_argument("--to", type=int, default=None, help="stop at this version (default: the latest)")
        c.set_defaults(func=func)


def _dsn(args: argparse.Namespace) -> str:
    if args.dsn:
        return str(args.dsn)
    if not args.config:
        raise SystemExit("pointsman: give --dsn or --config (with accounting.ledger.dsn)")
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        raise SystemExit(f"pointsman: {exc}") from None
    if not cfg.accounting.ledger.dsn:
        raise SystemExit(f"pointsman: {args.config} has no accounting.ledger.dsn")
    return cfg.accounting.ledger.dsn


def _connect(dsn: str) -> Any:
    try:
        import psycopg
    except ModuleNotFoundError:
        raise SystemExit("pointsman: psycopg is not installed (pip install 'pointsman[postgres]')") from None
    try:
        return psycopg.connect(dsn, connect_timeout=10, autocommit=True)
    except psycopg.OperationalError as exc:
        raise SystemExit(f"pointsman: cannot reach the database: {exc}") from None


def cmd_migrate(args: argparse.Namespace) -> int:
    from accounting import pg_schema

    with _connect(_dsn(args)) as conn:
        done = pg_schema.migrate(conn, args.to or pg_schema.LATEST)
        for step in done:
            print(f"applied {step}")
        print(pg_schema.state(conn).describe() if not done else f"now: {pg_schema.state(conn).describe()}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from accounting import pg_schema

    with _connect(_dsn(args)) as conn:
        st = pg_schema.state(conn)
    print(st.describe())
    return 0 if st.current else 1
