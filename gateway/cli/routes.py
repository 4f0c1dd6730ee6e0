"""``pointsman routes list|explain|apply FILE|history|rollback N``: the routing admin API from a shell.

Talks to a running gateway (``--url`` / ``POINTSMAN_URL``) with the admin key (``--admin-key`` /
``POINTSMAN_ADMIN_KEY``). Exit status: 0 done, 1 the gateway refused (the reason, with failing paths, on
stderr), 2 bad usage or unreachable gateway.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import Any

import orjson
import yaml

from gateway.cli.admin_api import CLIError, common_parser, print_json, request, run, table, when
from gateway.yaml_doc import parse_yaml


def add_parser(sub: Any) -> None:
    common = common_parser()

    p = sub.add_parser(
        "routes", help="routing rules of a running gateway: list, explain, apply, history, rollback"
    )
    rs = p.add_subparsers(dest="routes_command", required=True)

    rs.add_parser("list", parents=[common], help="list the rules in evaluation order").set_defaults(
        func=partial(run, cmd_list)
    )

    e = rs.add_parser("explain", parents=[common], help="show how a request would be routed (calls no model)")
    e.add_argument("--model", "-m", help="requested model (or give it in --body)")
    e.add_argument("--task", "-t", help="X-Pointsman-Task")
    e.add_argument("--tags", help="X-Pointsman-Tags, e.g. 'team=search, tier=gold'")
    e.add_argument("--sticky", help="X-Pointsman-Sticky")
    e.add_argument("--user", help="the body's user field")
    e.add_argument("--key", help="route as this client key (by name)")
    e.add_argument(
        "--header", "-H", action="append", default=[], metavar="'NAME: VALUE'", help="extra header"
    )
    e.add_argument("--body", help="request body as JSON, or @FILE")
    e.set_defaults(func=partial(run, cmd_explain))

    a = rs.add_parser("apply", parents=[common], help="replace every rule with those in a YAML/JSON file")
    a.add_argument(
        "file", help="a list of rules, or a mapping with a routes: list (e.g. a config file); - = stdin"
    )
    a.add_argument("--dry-run", action="store_true", help="validate only")
    a.set_defaults(func=partial(run, cmd_apply))

    h = rs.add_parser("history", parents=[common], help="policy versions, newest first")
    h.add_argument("--limit", "-n", type=int, default=20)
    h.set_defaults(func=partial(run, cmd_history))

    r = rs.add_parser(
        "rollback", parents=[common], help="make version N's routes, models and backends current"
    )
    r.add_argument("version", type=int)
    r.set_defaults(func=partial(run, cmd_rollback))


# -- commands ----------------------------------------------------------------------------------------------
def _match_text(m: dict[str, Any]) -> str:
    parts = []
    if m.get("model"):
        parts.append(f"model={m['model']}")
    parts += [f"{k}={v}" for k, v in (m.get("tags") or {}).items()]
    if m.get("key"):
        parts.append(f"key={m['key']}")
    if m.get("team"):
        parts.append(f"team={m['team']}")
    return " ".join(parts) or "*"


def _targets_text(r: dict[str, Any]) -> str:
    ts = r.get("targets") or []
    if not ts:
        return "(requested model)"
    return ", ".join(f"{t['model']}:{t.get('weight', 1.0):g}" if len(ts) > 1 else t["model"] for t in ts)


def cmd_list(args: argparse.Namespace) -> int:
    doc = request(args, "GET", "/admin/routes")
    if args.json:
        print_json(doc)
        return 0
    rows = [
        [
            str(i),
            r["name"],
            _match_text(r.get("match") or {}),
            _targets_text(r),
            r.get("strategy", "weighted"),
            ", ".join(r.get("fallbacks") or []) or "-",
        ]
        for i, r in enumerate(doc["routes"])
    ]
    print(f"policy version {doc['version']}, {len(rows)} rules")
    if rows:
        print(table(["#", "name", "match", "targets", "strategy", "fallbacks"], rows))
    return 0


def _header(h: str) -> tuple[str, str]:
    name, sep, value = h.partition(":")
    if not sep or not name.strip():
        raise CLIError(f"--header {h!r}: expected 'Name: value'", 2)
    return name.strip(), value.strip()


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}", 2) from None


def cmd_explain(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.body:
        text = _read(args.body[1:]) if args.body.startswith("@") else args.body
        try:
            loaded = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise CLIError(f"--body is not valid JSON: {exc}", 2) from None
        if not isinstance(loaded, dict):
            raise CLIError("--body must be a JSON object", 2)
        body = loaded
    if args.model:
        body["model"] = args.model
    if args.user:
        body["user"] = args.user
    if "model" not in body:
        raise CLIError("give --model (or a body with a model)", 2)
    body.setdefault("messages", [{"role": "user", "content": "..."}])
    headers = dict(_header(h) for h in args.header)
    if args.task:
        headers["X-Pointsman-Task"] = args.task
    if args.tags:
        headers["X-Pointsman-Tags"] = args.tags
    if args.sticky:
        headers["X-Pointsman-Sticky"] = args.sticky
    req: dict[str, Any] = {"body": body, "headers": headers}
    if args.key:
        req["key"] = args.key
    doc = request(args, "POST", "/admin/routes/explain", json=req)
    if args.json:
        print_json(doc)
        return 0
    rule = doc["route"] if doc.get("rule_index") is None else f"{doc['route']} (rule #{doc['rule_index']})"
    consent = doc.get("third_party_consent")
    if consent is not None:
        state = "approved" if consent["approved"] else "NOT approved: in-house backends only"
        print(f"consent:   third-party processing {state} (decided by {consent['decided_by']})")
    refused = doc.get("refused")
    if refused is not None:
        print(f"route:     {rule}")
        print(f"refused:   {refused['status']} {refused['code']}: {refused['message']}")
        return 0
    print(f"route:     {rule}: {doc['reason']}")
    print(
        f"chosen:    {doc['chosen']} -> backend {doc['backend']}, upstream model {doc['upstream_model']}"
        f" ({doc['chosen_by']})"
    )
    if doc.get("candidates"):
        print(
            f"strategy:  {doc.get('strategy')}"
            + (f", sticky key {doc['sticky_key']!r}" if doc.get("sticky_key") else "")
        )
        for c in doc["candidates"]:
            extra = []
            if "up" in c:
                extra.append("up" if c["up"] else "DOWN")
            if c.get("latency_ewma_s") is not None:
                extra.append(f"ewma {c['latency_ewma_s'] * 1000:.0f} ms")
            if c.get("price") is not None:
                extra.append(f"price {c['price']}")
            print(
                f"  - {c['model']} weight {c['weight']:g} ({c['share'] * 100:.1f}%)"
                + (f" [{', '.join(extra)}]" if extra else "")
            )
    print(f"fallbacks: {', '.join(doc['fallbacks']) or '-'}")
    if doc.get("removed"):
        print("removed:   " + ", ".join(f"{r['model']} ({r['why']})" for r in doc["removed"]))
    if doc.get("tags"):
        print("tags:      " + ", ".join(f"{k}={v}" for k, v in doc["tags"].items()))
    print(f"policy version {doc['policy_version']}")
    return 0


def load_routes(text: str, source: str) -> list[Any]:
    try:
        doc = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise CLIError(f"{source}: invalid YAML: {exc}", 2) from None
    if isinstance(doc, dict):
        if "routes" not in doc:
            raise CLIError(f"{source}: expected a list of rules or a mapping with routes:", 2)
        doc = doc["routes"]
    if doc is None:
        doc = []
    if not isinstance(doc, list):
        raise CLIError(f"{source}: routes must be a list", 2)
    return doc


def cmd_apply(args: argparse.Namespace) -> int:
    routes = load_routes(_read(args.file), args.file)
    doc = request(
        args,
        "PUT",
        "/admin/routes",
        json={"routes": routes},
        params={"dry_run": "true"} if args.dry_run else None,
    )
    if args.json:
        print_json(doc)
    elif args.dry_run:
        print(f"valid: {len(doc['routes'])} rules (nothing changed; policy version {doc['version']})")
    else:
        print(f"applied: {len(doc['routes'])} rules, policy version {doc['version']}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    doc = request(args, "GET", "/admin/routes/history", params={"limit": args.limit})
    if args.json:
        print_json(doc)
        return 0
    rows = [
        [
            ("* " if v["in_force"] else "  ") + str(v["version"]),
            when(v["created_at"]),
            v["source"],
            v["summary"],
            str(len(v["routes"])),
        ]
        for v in doc["history"]
    ]
    print(table(["version", "at (UTC)", "source", "summary", "rules"], rows))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    doc = request(args, "POST", "/admin/routes/rollback", json={"version": args.version})
    if args.json:
        print_json(doc)
    else:
        print(
            f"rolled back to version {doc['rolled_back_to']}: now policy version {doc['version']}"
            f" ({len(doc['routes'])} rules)"
        )
    return 0
