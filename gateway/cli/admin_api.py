"""How the CLI's admin-API subcommands talk to a gateway: its URL, the admin key, requests, errors, tables."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

DEFAULT_URL = "http://127.0.0.1:4000"


class CLIError(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def common_parser() -> argparse.ArgumentParser:
    """Options every admin-API subcommand takes: ``--url``, ``--admin-key``, ``--json``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=None, help=f"gateway base URL (default $POINTSMAN_URL or {DEFAULT_URL})"
    )
    common.add_argument("--admin-key", default=None, help="admin key (default $POINTSMAN_ADMIN_KEY)")
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")
    return common


# -- HTTP --------------------------------------------------------------------------------------------------
def request(args: argparse.Namespace, method: str, path: str, **kw: Any) -> Any:
    url = (args.url or os.environ.get("POINTSMAN_URL") or DEFAULT_URL).rstrip("/")
    key = args.admin_key or os.environ.get("POINTSMAN_ADMIN_KEY")
    if not key:
        raise CLIError("give --admin-key or set POINTSMAN_ADMIN_KEY", 2)
    try:
        r = httpx.request(method, url + path, headers={"authorization": f"Bearer {key}"}, timeout=60, **kw)
    except httpx.HTTPError as exc:
        raise CLIError(f"cannot reach {url}: {exc}", 2) from None
    try:
        doc = r.json()
    except ValueError:
        doc = None
    if r.status_code >= 400:
        raise CLIError(_error_text(r.status_code, doc, r.text))
    return doc


def _error_text(status: int, doc: Any, text: str) -> str:
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        return f"{status}: {text[:500]}"
    problems = err.get("problems")
    if isinstance(problems, list) and problems:
        lines = [f"{status}: invalid policy"]
        lines += [
            f"  {p.get('path') or '<root>'}: {p.get('message')}" for p in problems if isinstance(p, dict)
        ]
        return "\n".join(lines)
    return f"{status}: {err.get('message')}"


def when(ts: float) -> str:
    """A unix time as ``YYYY-MM-DD HH:MM:SS`` in UTC (tables)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_json(doc: Any) -> None:
    print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())


def table(cols: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(cols)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def run(func: Any, args: argparse.Namespace) -> int:
    try:
        rc: int = func(args)
        return rc
    except CLIError as exc:
        print(f"pointsman: {exc}", file=sys.stderr)
        return exc.status
