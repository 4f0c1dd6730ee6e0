"""``pointsman db``: the PostgreSQL schemas: the ledger's (``accounting.ledger.backend: postgres``) and the
shared stores' (``database: {backend: postgres}``: ``policy``, ``shadow``, ``approvals``, each its own schema
and migration list).

``migrate`` applies the versioned migrations not yet applied (and adds ledger columns the database lacks;
``--to`` stops the ledger's at a version);
``status`` says where the database stands. The gateway checks the same at startup and refuses to start
against a reachable database whose schema is behind.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from gateway.config import ConfigError, load_config

if TYPE_CHECKING:
    from accounting.pg_domain import Domain


def add_parser(sub: Any) -> None:
    p = sub.add_parser("db", help="the PostgreSQL schemas (ledger, shared stores): migrate, status")
    dsub = p.add_subparsers(dest="db_command", required=True)
    for name, func, text in (
        ("migrate", cmd_migrate, "apply the migrations not yet applied"),
        ("status", cmd_status, "the schema version and what is missing"),
    ):
        c = dsub.add_parser(name, help=text)
        c.add_argument(
            "--config", "-c", help="config file whose accounting.ledger.dsn and database.dsn to use"
        )
        c.add_argument("--dsn", help="the ledger's PostgreSQL connection string (instead of --config)")
        c.add_argument(
            "--shared-dsn",
            help="the shared stores' database (policy, shadow, approvals), instead of --config",
        )
        if name == "migrate":
            c.add_argument("--to", type=int, default=None, help="stop at this version (default: the latest)")
        c.set_defaults(func=func)


def domains() -> list[Domain]:
    """Every domain besides the ledger that keeps tables in the shared database (``database.dsn``)."""
    from accounting.approvals.pg_store import APPROVALS
    from routing.pg_schema import POLICY, SHADOW

    return [POLICY, SHADOW, APPROVALS]


def _targets(args: argparse.Namespace) -> list[tuple[str, bool, list[Domain]]]:
    """(dsn, holds the ledger, other domains) for each database to act on."""
    if args.dsn or args.shared_dsn:
        ledger, shared = args.dsn, args.shared_dsn
    elif not args.config:
        raise SystemExit(
            "pointsman: give --dsn / --shared-dsn or --config (with accounting.ledger.dsn or database.dsn)"
        )
    else:
        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            raise SystemExit(f"pointsman: {exc}") from None
        ledger, shared = cfg.accounting.ledger.dsn, cfg.database.shared_dsn
    if ledger and ledger == shared:
        return [(ledger, True, domains())]
    out = [(d, d == ledger, [] if d == ledger else domains()) for d in (ledger, shared) if d]
    if not out:
        raise SystemExit(f"pointsman: {args.config} has no accounting.ledger.dsn or database.dsn")
    return out


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
    from accounting import pg_domain, pg_schema

    for dsn, ledger, others in _targets(args):
        with _connect(dsn) as conn:
            done = pg_schema.migrate(conn, args.to or pg_schema.LATEST) if ledger else []
            for d in others:
                done += pg_domain.migrate(conn, d)
            for step in done:
                print(f"applied {step}")
            for line in _status(conn, ledger, others)[1]:
                print(line if not done else f"now: {line}")
    return 0


def _status(conn: Any, ledger: bool, others: list[Domain]) -> tuple[bool, list[str]]:
    from accounting import pg_domain, pg_schema

    ok, lines = True, []
    if ledger:
        st = pg_schema.state(conn)
        ok = st.current
        lines.append(st.describe())
    for d in others:
        v = pg_domain.version(conn, d)
        ok = ok and v == d.latest
        lines.append(
            f"{d.schema} schema version {v}"
            + (" (current)" if v == d.latest else f" of {d.latest}: run `pointsman db migrate`")
        )
    return ok, lines


def cmd_status(args: argparse.Namespace) -> int:
    ok = True
    for dsn, ledger, others in _targets(args):
        with _connect(dsn) as conn:
            good, lines = _status(conn, ledger, others)
        ok = ok and good
        for line in lines:
            print(line)
    return 0 if ok else 1
