"""The fleet tests use the PostgreSQL fixtures of tests/conftest.py (postgres_server, empty_db, ledger_db)."""
