"""``pointsman dataset export`` and ``pointsman capture approve|revoke|status``.

``dataset export`` asks a running gateway (``--url`` / ``POINTSMAN_URL``, ``--admin-key`` /
``POINTSMAN_ADMIN_KEY``) for ``GET /admin/datasets/export`` and unpacks the archive into ``--out``: that way the
export uses the gateway's own redaction patterns, sees everything still queued for capture (the gateway flushes
first) and includes judged shadow pairs. With ``--capture-db FILE`` it reads a capture SQLite file directly
instead (read-only use; built-in detectors plus ``--config``'s patterns; no shadow pairs) — for a gateway that is
down, or a copy of its data directory.

Exit status: 0 done, 1 the gateway refused (its message on stderr), 2 bad usage or unreachable gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import orjson

from accounting.approvals.book import ApprovalBook
from accounting.approvals.store import THIRD_PARTY, SqliteApprovals
from accounting.capture.config import BUILTIN_DETECTORS
from accounting.capture.export import FILES, DatasetExporter, ExportFilters, FeedbackCondition, parse_when
from accounting.capture.redact import Redactor
from accounting.capture.store import CaptureStore
from routing.eligibility import ThirdPartyConsent

DEFAULT_URL = "http://127.0.0.1:4000"


class CLIError(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def add_parser(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=None, help=f"gateway base URL (default $POINTSMAN_URL or {DEFAULT_URL})"
    )
    common.add_argument("--admin-key", default=None, help="admin key (default $POINTSMAN_ADMIN_KEY)")

    d = sub.add_parser("dataset", help="captured traffic as OpenAI fine-tuning datasets")
    ds = d.add_subparsers(dest="dataset_command", required=True)
    e = ds.add_parser(
        "export",
        parents=[common],
        help="write train/test JSONL, preference pairs and a manifest into a directory",
        description="Export captured traffic in the OpenAI fine-tuning chat format. Times: unix seconds, ISO "
        "date/datetime (UTC), or an age such as 7d, 24h.",
    )
    e.add_argument("--task", "-t", required=True, help="task tag of the requests to export")
    e.add_argument("--since", required=True, help="start (inclusive), e.g. 30d or 2026-11-01")
    e.add_argument("--until", help="end (exclusive; a bare date includes that whole day)")
    e.add_argument("--team", help="only this team's requests")
    e.add_argument("--route", help="only this route's requests")
    e.add_argument(
        "--min-feedback",
        action="append",
        default=[],
        metavar="METRIC>=X",
        help="keep requests whose latest feedback on METRIC satisfies the comparison (repeatable; "
        "operators >=, >, <=, <, ==, !=; true/false for booleans)",
    )
    e.add_argument(
        "--from-shadow-wins",
        action="store_true",
        help="examples from shadow pairs an llm_judge decided, answered by the winner",
    )
    e.add_argument(
        "--shadow-winner",
        choices=("any", "candidate", "primary"),
        default="any",
        help="with --from-shadow-wins: which side's wins to take (default any)",
    )
    e.add_argument(
        "--holdout", type=float, default=0.1, help="fraction of prompts held out as test (default 0.1)"
    )
    e.add_argument("--salt", default="pointsman", help="salt of the stable split hash (default pointsman)")
    e.add_argument("--no-preferences", action="store_true", help="do not write preference pairs")
    e.add_argument("--limit", type=int, help="at most this many examples")
    e.add_argument(
        "--out", "-o", required=True, help="output directory (created; must be empty unless --force)"
    )
    e.add_argument("--force", action="store_true", help="overwrite the dataset files in a non-empty --out")
    e.add_argument(
        "--in-house",
        action="store_true",
        help="the dataset stays in-house: include teams without third-party processing consent (left out "
        "otherwise: the files are made for a provider's fine-tuning)",
    )
    e.add_argument("--capture-db", help="read this capture SQLite file directly instead of asking a gateway")
    e.add_argument(
        "--config", "-c", help="with --capture-db: a config file whose capture.patterns also apply"
    )
    e.set_defaults(func=cmd_export)

    c = sub.add_parser("capture", help="team approval of data capture, and whether a route captures")
    cs = c.add_subparsers(dest="capture_command", required=True)
    a = cs.add_parser("approve", parents=[common], help="approve data capture for a team")
    a.add_argument("team")
    a.add_argument("--by", required=True, help="who approves (recorded with the time)")
    a.add_argument("--note", help="why, or a reference to the agreement")
    a.set_defaults(func=cmd_approve)
    r = cs.add_parser("revoke", parents=[common], help="revoke a team's approval")
    r.add_argument("team")
    r.add_argument("--by", required=True, help="who revokes (recorded with the time)")
    r.add_argument("--note")
    r.add_argument("--purge", action="store_true", help="also delete everything captured for the team")
    r.set_defaults(func=cmd_revoke)
    s = cs.add_parser("status", parents=[common], help="whether requests on a route from a team are captured")
    s.add_argument("--route")
    s.add_argument("--team")
    s.add_argument("--key", help="a key name (its team is used)")
    s.set_defaults(func=cmd_status)


# -- HTTP -----------------------------------------------------------------------------------------------------
def _request(args: argparse.Namespace, method: str, path: str, **kw: Any) -> httpx.Response:
    url = (args.url or os.environ.get("POINTSMAN_URL") or DEFAULT_URL).rstrip("/")
    key = args.admin_key or os.environ.get("POINTSMAN_ADMIN_KEY")
    if not key:
        raise CLIError("give --admin-key or set POINTSMAN_ADMIN_KEY", 2)
    try:
        r = httpx.request(method, url + path, headers={"authorization": f"Bearer {key}"}, timeout=600, **kw)
    except httpx.HTTPError as exc:
        raise CLIError(f"cannot reach {url}: {exc}", 2) from None
    if r.status_code >= 400:
        try:
            msg = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            msg = r.text[:500]
        raise CLIError(f"HTTP {r.status_code}: {msg}", 1)
    return r


def _run(fn: Any, args: argparse.Namespace) -> int:
    try:
        fn(args)
    except CLIError as exc:
        print(f"pointsman: {exc}", file=sys.stderr)
        return exc.status
    return 0


# -- dataset export ---------------------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    return _run(_export, args)


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out} exists and is not a directory", 2)
    if out.exists() and any(out.iterdir()) and not force:
        raise CLIError(f"{out} is not empty (use --force to overwrite the dataset files)", 2)
    out.mkdir(parents=True, exist_ok=True)


def _export(args: argparse.Namespace) -> None:
    if not 0 <= args.holdout <= 0.5:
        raise CLIError("--holdout must be between 0 and 0.5", 2)
    out = Path(args.out)
    if args.capture_db:
        manifest = _export_local(args, out)
    else:
        params: list[tuple[str, str]] = [
            ("task", args.task),
            ("since", args.since),
            ("holdout", str(args.holdout)),
            ("salt", args.salt),
            ("shadow_winner", args.shadow_winner),
            ("from_shadow_wins", str(args.from_shadow_wins).lower()),
            ("preferences", str(not args.no_preferences).lower()),
            ("in_house", str(args.in_house).lower()),
        ]
        for name in ("until", "team", "route", "limit"):
            if getattr(args, name) is not None:
                params.append((name, str(getattr(args, name))))
        params += [("min_feedback", c) for c in args.min_feedback]
        _prepare_out(out, args.force)
        r = _request(args, "GET", "/admin/datasets/export", params=params)
        with zipfile.ZipFile(io.BytesIO(r.content)) as z:
            for name in ("manifest.json", *FILES):
                (out / name).write_bytes(z.read(name))
        manifest = orjson.loads((out / "manifest.json").read_bytes())
    c = manifest["counts"]
    print(
        f"wrote {out}/: {c['examples']['train']} train + {c['examples']['test']} test examples, "
        f"{c['preference_pairs']['total']} preference pairs ({c['traces_scanned']} traces scanned"
        + (f", skipped: {', '.join(f'{k} {v}' for k, v in c['skipped'].items())}" if c["skipped"] else "")
        + ")"
    )


def _export_local(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    if not os.path.exists(args.capture_db):
        raise CLIError(f"no capture database at {args.capture_db}", 2)
    named = {}
    required = False
    if args.config:
        from gateway.config import ConfigError, load_config

        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            raise CLIError(str(exc), 2) from None
        named = cfg.capture.named_patterns()
        required = cfg.consent.third_party == "required"
    try:
        conds = tuple(FeedbackCondition.parse(c) for c in args.min_feedback)
        f = ExportFilters(
            task=args.task,
            since=parse_when(args.since),
            until=parse_when(args.until, end=True),
            team=args.team,
            route=args.route,
            min_feedback=conds,
            from_shadow_wins=args.from_shadow_wins,
            shadow_winner=args.shadow_winner,
            holdout=args.holdout,
            split_salt=args.salt,
            preferences=not args.no_preferences,
            limit=args.limit,
            in_house=args.in_house,
        )
    except ValueError as exc:
        raise CLIError(str(exc), 2) from None
    _prepare_out(out, args.force)
    consent = _recorded_consent(args.capture_db, required)
    exporter = DatasetExporter(
        CaptureStore(args.capture_db), Redactor(BUILTIN_DETECTORS, named.values()), None, consent.approves
    )
    return exporter.export(f, out).manifest


def _recorded_consent(path: str, required: bool) -> ThirdPartyConsent:
    """Third-party consent as recorded in a capture file (the embedded approvals store lives in it)."""
    book = ApprovalBook(SqliteApprovals(path), 3600.0, (THIRD_PARTY,))
    asyncio.run(book.refresh())
    if not book.known:
        raise CLIError(f"cannot read the approvals in {path}: {book.last_error}", 2)
    return ThirdPartyConsent(frozenset(), required, book)


# -- capture approvals ---------------------------------------------------------------------------------------------
def cmd_approve(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> None:
        r = _request(a, "POST", f"/admin/teams/{a.team}/capture", json={"approved_by": a.by, "note": a.note})
        d = r.json()
        print(f"data capture approved for team {d['team']} by {d['actor']}")

    return _run(go, args)


def cmd_revoke(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> None:
        params = {"by": a.by, "purge": str(a.purge).lower(), **({"note": a.note} if a.note else {})}
        d = _request(a, "DELETE", f"/admin/teams/{a.team}/capture", params=params).json()
        extra = (
            f"; deleted {d['deleted']['traces']} traces, {d['deleted']['feedback']} feedback"
            if "deleted" in d
            else ""
        )
        print(f"data capture revoked for team {d['team']} by {d['actor']}{extra}")

    return _run(go, args)


def cmd_status(args: argparse.Namespace) -> int:
    def go(a: argparse.Namespace) -> None:
        params = {k: v for k in ("route", "team", "key") if (v := getattr(a, k)) is not None}
        d = _request(a, "GET", "/admin/capture/status", params=params).json()
        print(("capturing: " if d["capturing"] else "not capturing: ") + d["reason"])

    return _run(go, args)
