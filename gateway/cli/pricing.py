"""``pointsman pricing``: what each configured model will be charged and where the price comes from — from a
running gateway (``GET /admin/pricing``, measured self-hosted prices included) or, with ``--config FILE``,
computed from a config file without a gateway. Exit status: 0, or 1 when a configured model has no price."""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from accounting.pricing_report import pricing_report
from gateway.accounting_setup import build_pricing
from gateway.cli.admin_api import CLIError, common_parser, print_json, request, run, table
from gateway.config import ConfigError, load_config

_CLASSES = ("input", "cached_input", "cache_write", "cache_write_1h", "output", "reasoning")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "pricing",
        parents=[common_parser()],
        help="the price each configured model is charged, per token class and tier, and its source",
    )
    p.add_argument("--config", "-c", help="compute from this config file instead of asking a gateway")
    p.set_defaults(func=partial(run, cmd_pricing))


def cmd_pricing(args: argparse.Namespace) -> int:
    if args.config:
        try:
            doc = pricing_report(build_pricing(load_config(args.config)))
        except (ConfigError, ValueError) as exc:
            raise CLIError(str(exc), 2) from None
    else:
        doc = request(args, "GET", "/admin/pricing")
    if args.json:
        print_json(doc)
    else:
        print(render(doc))
    return 1 if doc["unpriced"] else 0


def table_line(info: dict[str, Any]) -> str:
    if info.get("origin") == "none":
        return "price table: none (litellm not installed and no accounting.price_table)"
    what = (
        f"bundled with litellm {info.get('version')}"
        if info.get("origin") == "bundled"
        else "accounting.price_table"
    )
    return (
        f"price table: {what}: {info.get('path')} ({info.get('models')} models, sha256 {info.get('sha256')}, "
        f"modified {info.get('modified')})"
    )


def render(doc: dict[str, Any]) -> str:
    """The report as a table: USD per million tokens at standard prices, the other tiers and long-context
    thresholds the model has, and the source."""
    rows = []
    for m in doc["data"]:
        if not m["priced"]:
            rows.append([m["model"], m["backend"], "UNPRICED", *[""] * len(_CLASSES), "", ""])
            continue
        std = m["per_mtok"]["standard"]
        tiers = ",".join(t for t in m["per_mtok"] if t != "standard") or "-"
        long = ",".join(f">{int(t) // 1000}k" for t in m["long_context"]) or "-"
        rows.append([m["model"], m["backend"], m["source"], *[std[c] for c in _CLASSES], tiers, long])
    cols = ["model", "backend", "source", *_CLASSES, "tiers", "long_context"]
    out = [table_line(doc["table"]), "USD per million tokens (standard tier):", table(cols, rows)]
    for m in doc["data"]:
        if m["priced"]:
            out.append(f"  {m['model']}: {m['from']}")
    for g in doc.get("globs", []):
        out.append(f"  {g['model']} (glob, backend {g['backend']}): {g['note']}")
    if doc["unpriced"]:
        out.append(
            f"\n{len(doc['unpriced'])} model(s) without a price (accounting.on_unpriced: {doc['on_unpriced']}):"
        )
        out.extend(f"  {m['fix']}" for m in doc["data"] if not m["priced"])
    return "\n".join(out)
