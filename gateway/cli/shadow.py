"""``pointsman shadow report|promote|simulate``: the shadow admin API from a shell, and the verdict's simulation.

``report`` prints a readable table per route (``--json`` for the raw report, ``--html FILE`` to save the page with
charts). ``promote ROUTE`` starts the guarded ramp (``--force`` past a verdict that is not ready), ``--status``
shows its state and events, ``--rollback`` rolls it back. Talks to a running gateway (``--url`` /
``POINTSMAN_URL``) with the admin key (``--admin-key`` / ``POINTSMAN_ADMIN_KEY``). Exit status: 0 done, 1 the
gateway refused (reason on stderr), 2 bad usage or unreachable gateway. ``simulate`` runs the verdict code on
synthetic pair streams here (no gateway; ``routing/shadow/simulate.py``) and prints its error-rate table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import httpx
import orjson

from gateway.cli.admin_api import DEFAULT_URL, CLIError, common_parser
from routing.shadow.report import JUDGE_COLUMNS, judge_cells, window_note
from routing.shadow.simulate import Result, goal, markdown_table, simulate


def add_parser(sub: Any) -> None:
    common = common_parser()

    p = sub.add_parser("shadow", help="shadow tests: report, promote, simulate")
    ss = p.add_subparsers(dest="shadow_command", required=True)

    r = ss.add_parser("report", parents=[common], help="the shadow report per route (and task)")
    r.add_argument("--route", help="only this route")
    r.add_argument("--task", help="only pairs of this task")
    r.add_argument(
        "--from", dest="since", help="start: unix seconds, ISO date or datetime (default: 7 days ago)"
    )
    r.add_argument("--to", dest="until", help="end (default: now)")
    r.add_argument("--html", metavar="FILE", help="also save the HTML report (with charts) to FILE")
    r.add_argument("--no-tasks", action="store_true", help="leave out the per-task breakdown")
    r.set_defaults(func=cmd_report)

    sim = ss.add_parser("simulate", help="the verdict's error rates on synthetic pair streams (runs locally)")
    sim.add_argument("--runs", type=int, default=1000, help="runs per scenario (default 1000)")
    sim.add_argument(
        "--horizon", type=int, default=5000, help="pairs per run, checked after every one (default 5000)"
    )
    sim.add_argument("--alpha", type=float, default=0.05, help="promote_when.alpha (default 0.05)")
    sim.add_argument("--scenario", action="append", help="only this scenario (repeatable; default: all)")
    sim.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all CPUs)"
    )
    sim.add_argument("--json", action="store_true", help="print the results as JSON")
    sim.set_defaults(func=cmd_simulate)

    m = ss.add_parser("promote", parents=[common], help="ramp a route onto its shadow candidate (guarded)")
    m.add_argument("route")
    m.add_argument("--force", action="store_true", help="promote even when the verdict is not ready")
    m.add_argument("--steps", help="percent steps, e.g. 5,25,50,100 (default: the route's shadow.promotion)")
    m.add_argument("--dwell-s", type=float, help="seconds at each step")
    m.add_argument("--dwell-requests", type=int, help="candidate requests at each step")
    m.add_argument("--status", action="store_true", help="show the promotion's state and events instead")
    m.add_argument("--rollback", action="store_true", help="roll the promotion back")
    m.add_argument(
        "--reason", default="manual rollback", help="with --rollback: recorded in the route history"
    )
    m.set_defaults(func=cmd_promote)


def request(args: argparse.Namespace, method: str, path: str, **kw: Any) -> httpx.Response:
    url = (args.url or os.environ.get("POINTSMAN_URL") or DEFAULT_URL).rstrip("/")
    key = args.admin_key or os.environ.get("POINTSMAN_ADMIN_KEY")
    if not key:
        raise CLIError("give --admin-key or set POINTSMAN_ADMIN_KEY", 2)
    try:
        r = httpx.request(method, url + path, headers={"authorization": f"Bearer {key}"}, timeout=120, **kw)
    except httpx.HTTPError as exc:
        raise CLIError(f"cannot reach {url}: {exc}", 2) from None
    if r.status_code >= 400:
        try:
            err = r.json()["error"]
            msg = err["message"]
            extra = err.get("verdict")
            if isinstance(extra, dict) and extra.get("criteria"):
                msg += "\n" + "\n".join(_criterion_line(c) for c in extra["criteria"])
        except (ValueError, KeyError, TypeError):
            msg = r.text[:500]
        raise CLIError(f"{r.status_code}: {msg}")
    return r


def _run(fn: Any, args: argparse.Namespace) -> int:
    try:
        rc: int = fn(args)
        return rc
    except CLIError as exc:
        print(f"pointsman: {exc}", file=sys.stderr)
        return exc.status


# -- report ----------------------------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    return _run(_report, args)


def _report(args: argparse.Namespace) -> int:
    params = {
        k: v
        for k, v in (("route", args.route), ("task", args.task), ("from", args.since), ("to", args.until))
        if v
    }
    if args.no_tasks:
        params["by_task"] = "false"
    doc = request(args, "GET", "/admin/shadow/report", params=params).json()
    if args.html:
        page = request(args, "GET", "/admin/shadow/report.html", params=params).text
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(page)
    if args.json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render(doc))
        if args.html:
            print(f"\nHTML report written to {args.html}")
    return 0


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _ms(v: Any) -> str:
    return "-" if v is None else f"{float(v) * 1000:.1f}ms"


def _ci(ci: Any) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "-"
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def table(head: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return indent + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _bound(t: Any, name: str) -> str:
    if isinstance(t, dict) and "min_difference" in t:
        return f"> {t['min_difference']:g} vs the primary"
    if isinstance(t, dict):
        parts = []
        if t.get("min") is not None:
            parts.append(f">= {t['min']:g}")
        if t.get("max") is not None:
            parts.append(f"<= {t['max']:g}")
        return " and ".join(parts) or "-"
    if isinstance(t, int | float):
        return f"> {t:g}" if name.startswith("judge_non_inferior") else f">= {t:g}"
    return str(t)


def _criterion_line(c: dict[str, Any]) -> str:
    extra = f" ({c['detail']})" if c.get("detail") else ""
    if c.get("pairs_needed"):
        extra += f", ~{c['pairs_needed']} more pairs"
    a = c.get("anytime") or {}
    figures = [f"{k} bound {_f(a[k])}" for k in ("lower", "upper") if a.get(k) is not None]
    if a.get("e_value") is not None:
        figures.append(f"e {a['e_value']:.3g} of {a['threshold']:.3g}")
    if c.get("snapshot_ci95"):
        figures.append(f"snapshot {_ci(c['snapshot_ci95'])}")
    if figures:
        extra += "; " + ", ".join(figures)
    value = _f(c.get("value")) if not isinstance(c.get("value"), int) else str(c["value"])
    return f"  [{c['status']:>9}] {c['name']}: {value}, needs {_bound(c.get('threshold'), c['name'])}{extra}"


def render_route(r: dict[str, Any], title: str) -> list[str]:
    c = r["counts"]
    v = r["verdict"]
    out = [title]
    verdict = v["verdict"].upper()
    if v["verdict"] == "judge_unreliable" and v.get("reason"):
        verdict += f" - {v['reason']}"
    elif v.get("failing"):
        verdict += " - failing: " + ", ".join(v["failing"])
    elif v["verdict"] == "insufficient_data" and v.get("pairs_needed") is not None:
        verdict += f" - about {v['pairs_needed']} more pairs needed"
    out.append(f"  verdict: {verdict}")
    note = window_note(r)
    if note is not None:
        out.append(f"  {note}")
    dropped = ", ".join(f"{k} {n}" for k, n in sorted(c["dropped_by_reason"].items()))
    out.append(
        f"  pairs: {c['sampled']} sampled, {c['paired']} paired, {c['candidate_failed']} candidate failed, "
        f"{c['primary_failed']} primary failed (excluded), {c['dropped']} dropped"
        + (f" ({dropped})" if dropped else "")
        + f"; {c['streamed']} streamed, {c['reverse']} reverse"
    )
    rows = []
    for name, s in r["comparators"].items():
        if s["kind"] == "pass":
            rows.append(
                [
                    name,
                    "pass rate",
                    str(s["n"]),
                    _f(s.get("pass_rate")),
                    _ci(s.get("ci95")),
                    _f((s.get("baseline") or {}).get("pass_rate")),
                ]
            )
        elif s["kind"] == "judge":
            rows.append(
                [
                    name,
                    "judge w/t/l",
                    str(s["n"]),
                    f"{s.get('win', 0)}/{s.get('tie', 0)}/{s.get('loss', 0)} score {_f(s.get('score'))}",
                    _ci(s.get("ci95")),
                    f"non-inferior={s.get('non_inferior')} p={_f(s.get('p_value'), 4)}",
                ]
            )
        else:
            rows.append([name, "mean", str(s["n"]), _f(s.get("mean")), _ci(s.get("ci95")), "-"])
    if rows:
        out.append("  comparators:")
        out += table(["name", "stat", "n", "candidate", "95% CI", "primary"], rows, "    ")
    out += _judge_lines(r["comparators"]) + _paired_lines(r)
    lrows = []
    for kind in ("total", "ttft"):
        b = r["latency"][kind]
        for side in ("primary", "candidate"):
            s = b[side]
            lrows.append([kind, side, str(s["n"]), _ms(s["p50"]), _ms(s["p95"]), _ms(s["p99"])])
        pr = b["paired_ratio"]
        lrows.append(
            [
                kind,
                "ratio (paired)",
                str(pr["n"]),
                f"med {_f(pr['median'], 2)}",
                f"geo {_f(pr['geomean'], 2)}",
                _ci(pr["ci95"]),
            ]
        )
    out.append("  latency:")
    out += table(["", "side", "n", "p50", "p95", "p99"], lrows, "    ")
    e = r["errors"]
    out.append(
        f"  errors: candidate {_f(e['candidate_error_rate']['estimate'])} {_ci(e['candidate_error_rate']['ci95'])}"
        f", primary {_f(e['primary_error_rate']['estimate'])} {_ci(e['primary_error_rate']['ci95'])}"
    )
    co = r["cost"]
    out.append(
        f"  cost per 1k requests: primary ${co['primary_per_1k_usd']}, candidate ${co['candidate_per_1k_usd']}"
        f" (saving ${co['saving_per_1k_usd']})"
    )
    out.append(
        f"  projected monthly saving: ${co['projected_monthly_saving_usd']} at {co['monthly_volume']:.0f} "
        f"requests/month ({co['requests_seen']} seen); shadow spend ${co['shadow_spend_usd']}"
    )
    if v.get("criteria"):
        out.append("  criteria:")
        out += ["  " + _criterion_line(cr) for cr in v["criteria"]]
    return out


def _judge_lines(comparators: dict[str, Any]) -> list[str]:
    rows = judge_cells(comparators)
    return ["  judges:", *table(list(JUDGE_COLUMNS), rows, "    ")] if rows else []


def _paired_lines(r: dict[str, Any]) -> list[str]:
    rows = []
    for name, s in r["comparators"].items():
        pd = s.get("paired")
        if pd is not None:
            rows.append([name, str(pd["n"]), _f(pd["difference"]), _ci(pd["ci95"])])
    for kind in ("total", "ttft"):
        d = r["latency"][kind].get("paired_difference_s") or {}
        if d.get("n"):
            rows.append([f"latency {kind} (s)", str(d["n"]), _f(d["mean"], 4), _ci(d["ci95"])])
    cd = r["cost"].get("paired_difference_per_1k_usd") or {}
    if cd.get("n"):
        lo, hi = cd["ci95"]
        rows.append(
            ["cost per 1k (USD)", str(cd["n"]), str(cd["mean"]), f"[{lo}, {hi}]" if lo is not None else "-"]
        )
    if not rows:
        return []
    return [
        "  candidate minus primary on the same requests:",
        *table(["", "pairs", "difference", "95% CI"], rows, "    "),
    ]


def render(doc: dict[str, Any]) -> str:
    w = doc["window"]
    lines = [
        f"shadow report {time.strftime('%Y-%m-%d %H:%M', time.gmtime(w['from']))} - "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(w['to']))} UTC"
    ]
    if not doc["routes"]:
        lines.append("no shadowed routes and no pairs in this window")
    for r in doc["routes"]:
        lines.append("")
        head = f"route {r['route']}: candidate {r.get('candidate')} vs {', '.join(r.get('baseline') or []) or '-'}"
        if r.get("sample_rate") is not None:
            head += f", sample rate {r['sample_rate']:g}"
        lines += render_route(r, head)
        promo = r.get("promotion")
        if promo:
            lines.append(
                f"  promotion: {promo['status']} at step {promo['step'] + 1}/{len(promo['steps'])} "
                f"({promo['percent']}%)" + (f" - {promo['reason']}" if promo.get("reason") else "")
            )
        tasks = r.get("tasks") or []
        if len(tasks) > 1:
            rows = []
            for t in tasks:
                c, v = t["counts"], t["verdict"]
                detail = (
                    ", ".join(v["failing"])
                    if v.get("failing")
                    else (
                        f"~{v['pairs_needed']} more pairs"
                        if v["verdict"] == "insufficient_data" and v.get("pairs_needed")
                        else ""
                    )
                )
                rows.append(
                    [
                        str(t["task"]),
                        str(c["sampled"]),
                        str(c["paired"]),
                        str(c["candidate_failed"]),
                        v["verdict"],
                        detail,
                    ]
                )
            lines.append("  by task:")
            lines += table(["task", "sampled", "paired", "cand. failed", "verdict", ""], rows, "    ")
    return "\n".join(lines)


# -- simulate --------------------------------------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    """Exit status 0 when every scenario met its goal, 1 otherwise, 2 for bad arguments."""
    if args.runs < 1 or args.horizon < 100 or not 0 < args.alpha < 0.5:
        print("pointsman: --runs >= 1, --horizon >= 100, 0 < --alpha < 0.5", file=sys.stderr)
        return 2

    def progress(r: Result) -> None:
        if not args.json:
            print(
                f"  {r.scenario.name}: ready {r.ready_rate:.1%}, judge_unreliable {r.unreliable_rate:.1%}",
                file=sys.stderr,
                flush=True,
            )

    try:
        results = simulate(args.scenario, args.runs, args.horizon, args.alpha, max(1, args.jobs), progress)
    except ValueError as exc:
        print(f"pointsman: {exc}", file=sys.stderr)
        return 2
    met = all(goal(r, args.alpha)[1] for r in results)
    if args.json:
        doc = {
            "runs": args.runs,
            "horizon": args.horizon,
            "alpha": args.alpha,
            "all_goals_met": met,
            "scenarios": [
                {**r.as_dict(), "goal": goal(r, args.alpha)[0], "met": goal(r, args.alpha)[1]}
                for r in results
            ],
        }
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(
            f"{args.runs:,} runs per scenario, up to {args.horizon:,} pairs each, the verdict checked after every "
            f"pair from min_pairs on; alpha {args.alpha:g}\n"
        )
        print(markdown_table(results, args.alpha))
    return 0 if met else 1


# -- promote ---------------------------------------------------------------------------------------------------
def cmd_promote(args: argparse.Namespace) -> int:
    return _run(_promote, args)


def _promote(args: argparse.Namespace) -> int:
    path = f"/admin/routes/{args.route}"
    if args.status:
        doc = request(args, "GET", path + "/promotion").json()
    elif args.rollback:
        doc = request(args, "POST", path + "/promote/rollback", json={"reason": args.reason}).json()
    else:
        body: dict[str, Any] = {"force": args.force}
        if args.steps:
            try:
                body["steps"] = [float(s) for s in args.steps.split(",") if s.strip()]
            except ValueError:
                raise CLIError("--steps: comma-separated numbers, e.g. 5,25,50,100", 2) from None
        if args.dwell_s is not None:
            body["dwell_s"] = args.dwell_s
        if args.dwell_requests is not None:
            body["dwell_requests"] = args.dwell_requests
        doc = request(args, "POST", path + "/promote", json=body).json()
    if args.json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    promo = doc.get("promotion", doc) if args.status else doc
    if not promo:
        print(f"route {args.route}: no promotion")
        return 0
    steps = promo.get("steps") or []
    step = int(promo.get("step", 0))
    pct = steps[step] if 0 <= step < len(steps) else None
    print(
        f"route {args.route}: {promo.get('status')} - {promo.get('candidate')} at {pct}% "
        f"(step {step + 1}/{len(steps)}), baseline {', '.join(promo.get('baseline') or [])}"
        + (f"; {promo['reason']}" if promo.get("reason") else "")
    )
    for ev in doc.get("events") or []:
        when = time.strftime("%H:%M:%S", time.gmtime(ev["ts"]))
        what = ev["event"]
        if what == "step":
            what += f" {ev['step'] + 1}: {ev['percent']}% (policy version {ev['policy_version']})"
        elif what == "rollback":
            what += f": {ev['reason']} (policy version {ev['policy_version']})"
        print(f"  {when} {what}")
    return 0
