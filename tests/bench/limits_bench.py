"""Limits micro-benchmark: what admitting a request and committing its cost cost on the request path, for a hot
key whose budgets and rate limits are shared on Redis (admitted from the replica's leases, as the bench's `redis`
feature row is), against a real ``redis-server``. CPU per admit + commit, best of a few runs.

    .venv/bin/python -m tests.bench.limits_bench                  # 20,000 pairs per run, 5 runs, ~5 s
    .venv/bin/python -m tests.bench.limits_bench --n 50000 --profile
    PYTHONPATH=OLD_TREE .venv/bin/python tests/bench/limits_bench.py   # this script against another tree's code

Session 9 (best of 5, same hour): 9.35–9.46 µs per admit + commit before the per-(key, team) plan, 7.64–7.66 after.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time

from tests.accounting.replicas import replica_on
from tests.redis_server import RedisServer

CONFIG = {
    "budgets": [{"scope": "team", "name": "perf", "daily_usd": "1000000", "monthly_usd": "10000000"}],
    "rate_limits": [{"key": "k", "requests_per_min": 1_000_000_000, "tokens_per_min": 10**12}],
}
"""The `redis` feature row's limits (``tests.bench.targets``): a team budget, daily and monthly, and a key's rate
limits, none ever reached."""


async def bench(n: int, runs: int, profile: bool) -> list[float]:
    srv = RedisServer().start()
    try:
        limits, client = await replica_on(srv.url, CONFIG)
        await client.execute("PING")

        async def pairs(count: int) -> None:
            for i in range(count):
                r = await limits.admit("k", "perf", [12_000, 12_000])
                limits.commit("k", "perf", time.time(), 9_000, 30, r)
                if i % 50 == 0:
                    await asyncio.sleep(0)  # the outbox pushes and the leases renew, as under load

        await pairs(3_000)  # warm: the key is hot, its leases granted
        best = []
        for _ in range(runs):
            t0 = time.process_time()
            await pairs(n)
            best.append((time.process_time() - t0) / n * 1e6)
        if profile:
            p = cProfile.Profile()
            p.enable()
            await pairs(n)
            p.disable()
            pstats.Stats(p).sort_stats("tottime").print_stats(18)
        print(f"admissions from leases: {limits.leased:,} of {3_000 + n * (runs + profile):,}")
        await limits.close()
        await client.aclose()
        return best
    finally:
        srv.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--n", type=int, default=20_000, help="admit + commit pairs per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="also a cProfile run, top 18 by own time")
    args = parser.parse_args()
    best = asyncio.run(bench(args.n, args.runs, args.profile))
    print("µs CPU per admit + commit:", " ".join(f"{b:.2f}" for b in best), f"(best {min(best):.2f})")


if __name__ == "__main__":
    main()
