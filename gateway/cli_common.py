"""What the admin-API subcommands of the CLI share: the gateway URL, the admin key, errors."""

from __future__ import annotations

import argparse

DEFAULT_URL = "http://127.0.0.1:4000"


class CLIError(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def common_parser() -> argparse.ArgumentParser:
    """Options every admin-API subcommand takes: ``--url``, ``--admin-key``, ``--json``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=None, help=f"gateway base URL (default $POINTSMAN_URL or {DEFAULT_URL})")
    common.add_argument("--admin-key", default=None, help="admin key (default $POINTSMAN_ADMIN_KEY)")
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")
    return common
