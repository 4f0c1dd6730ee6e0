"""``pointsman consent approve|revoke|status|list``: third-party processing consent of a team (or one key), through
a running gateway's admin API (docs/consent.md). Every decision is recorded with who and when.

Exit status: 0 done, 1 the gateway refused (its message on stderr), 2 bad usage or unreachable gateway.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any
from urllib.parse import quote

from gateway.cli.admin_api import CLIError, common_parser, print_json, request, run, table, when


def add_parser(sub: Any) -> None:
    common = common_parser()
    p = sub.add_parser(
        "consent",
        help="third-party processing consent of teams and keys: approve, revoke, status, list",
        description="Whether a team's (or key's) request data may be processed by third-party backends "
        "(third_party: true). Without consent its requests are served only by in-house backends.",
    )
    cs = p.add_subparsers(dest="consent_command", required=True)
    for name, approved, what in (("approve", True, "approve"), ("revoke", False, "revoke")):
        c = cs.add_parser(name, parents=[common], help=f"{what} third-party processing for a team or key")
        c.add_argument("team", nargs="?", help="the team")
        c.add_argument("--key", help="a client key (by name) instead of a team: its own decision wins")
        c.add_argument("--by", required=True, help=f"who decides to {what} (recorded with the time)")
        c.add_argument("--note", help="why, or a reference to the agreement")
        c.set_defaults(func=partial(run, partial(cmd_decide, approved)))
    s = cs.add_parser("status", parents=[common], help="a team's or key's consent, with its history")
    s.add_argument("team", nargs="?")
    s.add_argument("--key", help="a client key (by name) instead of a team")
    s.set_defaults(func=partial(run, cmd_status))
    ls = cs.add_parser("list", parents=[common], help="the default, the third-party backends, every decision")
    ls.set_defaults(func=partial(run, cmd_list))


def _path(args: argparse.Namespace) -> tuple[str, str]:
    if (args.team is None) == (args.key is None):
        raise CLIError("give a team, or --key NAME", 2)
    if args.key is not None:
        return f"/admin/keys/{quote(args.key, safe='')}/consent", f"key {args.key}"
    return f"/admin/teams/{quote(args.team, safe='')}/consent", f"team {args.team}"


def cmd_decide(approved: bool, args: argparse.Namespace) -> int:
    path, who = _path(args)
    d = request(args, "PUT", path, json={"approved": approved, "by": args.by, "note": args.note})
    if args.json:
        print_json(d)
        return 0
    print(f"third-party processing {'approved' if approved else 'revoked'} for {who} by {args.by}")
    if d.get("approved") != approved:  # a key's own decision overrides its team's
        print(f"in force for its requests: {d.get('reason')}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    path, who = _path(args)
    d = request(args, "GET", path)
    if args.json:
        print_json(d)
        return 0
    print(f"{who}: {'approved' if d['approved'] else 'not approved'} ({d['decided_by']}): {d['reason']}")
    if d["history"]:
        rows = [
            [str(e["action"]), str(e["actor"]), when(e["at"]), str(e.get("note") or "")] for e in d["history"]
        ]
        print(table(["action", "by", "at (UTC)", "note"], rows))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    d = request(args, "GET", "/admin/consent")
    if args.json:
        print_json(d)
        return 0
    print(
        f"consent.third_party: {'required' if d['required'] else 'not_required'}; third-party backends: "
        + (", ".join(d["third_party_backends"]) or "(none)")
    )
    rows = [["team", t["team"], "yes" if t["approved"] else "no", _by(t["decision"])] for t in d["teams"]] + [
        ["key", k["key"], "yes" if k["approved"] else "no", f"{k['actor']} {when(k['at'])}"]
        for k in d["keys"]
    ]
    if rows:
        print(table(["scope", "name", "approved", "decided"], rows))
    return 0


def _by(decision: dict[str, Any] | None) -> str:
    return "default" if decision is None else f"{decision['actor']} {when(decision['at'])}"
