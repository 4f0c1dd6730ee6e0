"""Shadow verdict benchmark: false-ready rate, power and pairs to a decision, by simulation.

    .venv/bin/python -m tests.bench.shadow_stats_bench                       # 1,000 runs per scenario, ~5-10 min on 2 CPUs
    .venv/bin/python -m tests.bench.shadow_stats_bench --runs 200 --horizon 2000 --json /tmp/sim.json

Runs ``routing.shadow.simulate`` (the real ``verdict.Verdict`` on synthetic pair streams with known truth,
checked after every pair) over every scenario and prints the Markdown table that docs/shadow.md and the README
carry, with the time each scenario took. Exit status 1 when a scenario misses its goal: a null scenario's
false-ready rate above alpha (plus 2.33 Monte-Carlo standard errors), a clearly better candidate ready by 2,000
pairs in fewer than 80% of runs, a judge that says nothing ever reaching ready, or an unreliable judge not flagged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from routing.shadow.simulate import Result, goal, markdown_table, simulate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--horizon", type=int, default=5000)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--scenario", action="append")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    started = time.monotonic()
    last = [started]
    seconds: dict[str, float] = {}

    def progress(r: Result) -> None:
        now = time.monotonic()
        seconds[r.scenario.name] = now - last[0]
        last[0] = now
        print(
            f"{r.scenario.name:>20}: ready {r.ready_rate:6.1%}  by 2,000 {r.power:6.1%}  "
            f"judge_unreliable {r.unreliable_rate:6.1%}  ({seconds[r.scenario.name]:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    results = simulate(args.scenario, args.runs, args.horizon, args.alpha, args.jobs, progress)
    total = time.monotonic() - started
    print(
        f"{args.runs:,} runs per scenario, up to {args.horizon:,} pairs each, checked after every pair; "
        f"alpha {args.alpha:g}; {total:.0f} s on {args.jobs} processes\n"
    )
    print(markdown_table(results, args.alpha))
    met = all(goal(r, args.alpha)[1] for r in results)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "runs": args.runs,
                    "horizon": args.horizon,
                    "alpha": args.alpha,
                    "seconds": total,
                    "all_goals_met": met,
                    "scenarios": [
                        {
                            **r.as_dict(),
                            "goal": goal(r, args.alpha)[0],
                            "met": goal(r, args.alpha)[1],
                            "seconds": seconds[r.scenario.name],
                        }
                        for r in results
                    ],
                },
                f,
                indent=2,
            )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
