"""``pointsman spend``: spend totals and breakdowns, from a running gateway's ``/admin/spend`` or, with
``--ledger``, straight from a SQLite ledger file (read-only)."""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from decimal import Decimal
from typing import Any

import httpx
import orjson

from accounting.ledger_reports import query_spend
from accounting.money import usd
from accounting.reconcile import ExportError, model_key, read_export, reconcile
from accounting.spend_report import DIMENSIONS, FILTERS, parse_time, spend_csv
from gateway.cli.admin_api import table


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "spend",
        help="spend totals and breakdowns (by key, team, task, route, model, backend, day)",
        description="Totals from the spend ledger, grouped by any of: " + ", ".join(DIMENSIONS) + ".",
    )
    p.add_argument("--group-by", "-g", default="", help="comma-separated dimensions, e.g. task,model")
    p.add_argument("--from", dest="since", help="start: unix seconds, ISO date (UTC) or ISO datetime")
    p.add_argument("--to", dest="until", help="end (exclusive; a bare date includes that whole day)")
    p.add_argument("--format", "-f", choices=("table", "csv", "json"), default="table")
    for f in FILTERS:
        p.add_argument(f"--{f.replace('_', '-')}", dest=f, help=f"only rows with this {f}")
    p.add_argument(
        "--url",
        default=os.environ.get("POINTSMAN_URL", "http://127.0.0.1:4000"),
        help="gateway base URL (default $POINTSMAN_URL or http://127.0.0.1:4000)",
    )
    p.add_argument("--admin-key", default=None, help="admin key (default $POINTSMAN_ADMIN_KEY)")
    p.add_argument("--ledger", help="read this SQLite ledger file directly instead of asking a gateway")
    p.add_argument(
        "action",
        nargs="?",
        choices=("reconcile",),
        help="reconcile FILE: compare the ledger per day and model with a provider's cost export (OpenAI or "
        "Anthropic CSV)",
    )
    p.add_argument("file", nargs="?", help="the provider export (with reconcile)")
    p.set_defaults(func=cmd_spend)


def _fetch(args: argparse.Namespace, groups: list[str], filters: dict[str, str]) -> list[dict[str, Any]]:
    if args.ledger:
        if not os.path.exists(args.ledger):
            raise SystemExit(f"pointsman: no ledger file at {args.ledger}")
        return query_spend(
            args.ledger, groups, parse_time(args.since), parse_time(args.until, end=True), filters
        )
    key = args.admin_key or os.environ.get("POINTSMAN_ADMIN_KEY")
    if not key:
        raise SystemExit(
            "pointsman: give --admin-key or set POINTSMAN_ADMIN_KEY (or read a file with --ledger)"
        )
    params: dict[str, str] = {"group_by": ",".join(groups), **filters}
    if args.since:
        params["from"] = args.since
    if args.until:
        params["to"] = args.until
    try:
        r = httpx.get(
            args.url.rstrip("/") + "/admin/spend",
            params=params,
            headers={"authorization": f"Bearer {key}"},
            timeout=120,
        )
    except httpx.HTTPError as exc:
        raise SystemExit(f"pointsman: cannot reach {args.url}: {exc}") from None
    if r.status_code != 200:
        try:
            msg = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            msg = r.text[:500]
        raise SystemExit(f"pointsman: {r.status_code}: {msg}")
    doc = r.json()
    args.self_hosted_pricing = doc.get("self_hosted_pricing") or []
    data: list[dict[str, Any]] = doc["data"]
    return data


def cost_cell(row: dict[str, Any]) -> str:
    """A group's cost; never a bare 0 for requests to models without a price (``unpriced_requests``)."""
    unpriced = row.get("unpriced_requests") or 0
    if not unpriced:
        return str(row["cost_usd"])
    return f"{row['cost_usd']} + {unpriced} unpriced"


def render_table(groups: list[str], rows: list[dict[str, Any]]) -> str:
    cols = [*groups, "requests", "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd"]
    body = [
        ["" if r.get(c) is None else cost_cell(r) if c == "cost_usd" else str(r.get(c)) for c in cols]
        for r in rows
    ]
    widths = [max([len(c), *(len(b[i]) for b in body)]) for i, c in enumerate(cols)]
    numeric = {c for c in cols if c not in groups}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if name in numeric else c.ljust(w)
            for c, w, name in zip(cells, widths, cols, strict=True)
        ).rstrip()

    out = [line(cols), line(["-" * w for w in widths])]
    out.extend(line(b) for b in body)
    return "\n".join(out)


def selfhosted_lines(report: list[dict[str, Any]]) -> list[str]:
    """The measured self-hosted prices in force (``accounting.selfhosted``), for the table view."""
    out = []
    for b in report:
        m = b.get("measured")
        head = f"self-hosted {b['backend']}: ${b['fleet_usd_per_hour']}/h for {b['endpoints']} endpoint(s)"
        if not m:
            out.append(f"{head}; no measurement yet (needs {b['min_tokens']} tokens in {b['window_s']:g} s)")
            continue
        out.append(
            f"{head}; measured {m['tokens_per_s']:g} tokens/s ({m['generation_tokens_per_s']:g} generated) "
            f"over {m['window_s']:g} s"
        )
        for p in b["models"]:
            if p.get("cost_per_mtok_usd") is not None:
                out.append(
                    f"  {p['model']}: ${Decimal(p['cost_per_mtok_usd']):.4f} per million tokens ({p['source']})"
                )
    return ["", *out] if out else []


def cmd_spend(args: argparse.Namespace) -> int:
    if args.action == "reconcile":
        return cmd_reconcile(args)
    groups = [g.strip() for g in args.group_by.split(",") if g.strip()]
    bad = [g for g in groups if g not in DIMENSIONS]
    if bad:
        print(
            f"pointsman: unknown --group-by {', '.join(bad)}; use any of {', '.join(DIMENSIONS)}",
            file=sys.stderr,
        )
        return 2
    filters = {f: getattr(args, f) for f in FILTERS if getattr(args, f)}
    try:
        rows = _fetch(args, groups, filters)
    except ValueError as exc:
        print(f"pointsman: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif args.format == "csv":
        sys.stdout.write(spend_csv(groups, rows))
    else:
        print(render_table(groups, rows))
        total_cost = sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0))
        unpriced = sum(r.get("unpriced_requests") or 0 for r in rows)
        tail = f" (+ {unpriced} requests to models without a price, not counted)" if unpriced else ""
        print(f"\n{sum(r['requests'] for r in rows)} requests, ${usd(total_cost)}{tail}")
        for line in selfhosted_lines(getattr(args, "self_hosted_pricing", [])):
            print(line)
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    """``pointsman spend reconcile FILE``: drift per UTC day and model between the ledger and a provider export
    (``accounting.reconcile``). Narrow the ledger to the provider's backends with ``--backend``."""
    if not args.file:
        print("pointsman: spend reconcile needs the provider export FILE", file=sys.stderr)
        return 2
    try:
        with open(args.file, encoding="utf-8") as f:
            provider_name, provider = read_export(f.read())
    except (OSError, ExportError) as exc:
        print(f"pointsman: {args.file}: {exc}", file=sys.stderr)
        return 2
    filters = {f: getattr(args, f) for f in FILTERS if getattr(args, f)}
    days = sorted({d for d, _ in provider})
    if not args.since:
        args.since = days[0]
    if not args.until:
        args.until = days[-1]
    try:
        rows = _fetch(args, ["day", "model"], filters)
    except ValueError as exc:
        print(f"pointsman: {exc}", file=sys.stderr)
        return 2
    ledger = {(r["day"], r["model"]): Decimal(r["cost_usd"] or 0) for r in rows}
    drifts = reconcile(ledger, provider)
    unpriced: dict[
        tuple[str, str], int
    ] = {}  # requests the ledger could not price: its cost is not all of it
    for r in rows:
        if r.get("unpriced_requests"):
            k = (r["day"], model_key(r["model"]))
            unpriced[k] = unpriced.get(k, 0) + r["unpriced_requests"]
    docs = [
        {
            "day": d.day,
            "model": d.model,
            "ledger_usd": usd(d.ledger_usd),
            "ledger_unpriced_requests": unpriced.get((d.day, d.model), 0),
            "provider_usd": usd(d.provider_usd),
            "drift_usd": usd(d.drift_usd),
            "drift_pct": None if d.drift_pct is None else str(d.drift_pct),
        }
        for d in drifts
    ]
    if args.format == "json":
        out = {"provider": provider_name, "file": args.file, "data": docs}
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    cols = ["day", "model", "ledger_usd", "provider_usd", "drift_usd", "drift_pct"]
    if args.format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(list(docs[0]) if docs else cols)
        w.writerows([["" if v is None else v for v in d.values()] for d in docs])
        sys.stdout.write(buf.getvalue())
        return 0
    print(f"{provider_name} export {args.file} against the ledger, {days[0]} .. {days[-1]} (UTC days)")
    print(
        table(
            cols,
            [
                [
                    f"{d[c]} + {d['ledger_unpriced_requests']} unpriced"
                    if c == "ledger_usd" and d["ledger_unpriced_requests"]
                    else str(d[c])
                    if d[c] is not None
                    else "-"
                    for c in cols
                ]
                for d in docs
            ],
        )
    )
    mine = sum((d.ledger_usd for d in drifts), Decimal(0))
    theirs = sum((d.provider_usd for d in drifts), Decimal(0))
    n = sum(unpriced.get((d.day, d.model), 0) for d in drifts)
    tail = f" (+ {n} requests to models without a price, not counted)" if n else ""
    print(f"\ntotal: ledger ${usd(mine)}{tail}, provider ${usd(theirs)}, drift ${usd(mine - theirs)}")
    return 0
