"""No task, connection, file or memory leaks after thousands of faulted requests through a real
``pointsman serve`` process (measured from /proc and ``GET /admin/debug/process``), and the ledger holds each
of them exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess
from tests.reliability.conftest import fault_config
from tests.reliability.faults import FaultyOpenAI
from tests.reliability.probes import (
    CLIENT,
    MSG,
    debug_process,
    flush_ledger,
    ledger_rows,
    proc_fds,
    proc_rss,
    tcp_connections_to,
    wait_for,
)

# (model, stream, task, client hangs up: after the first chunk of a stream, before a non-streamed answer):
# every kind of fault, and some clean requests
FAULTS: list[tuple[str, bool, str | None, bool]] = [
    ("refused-model", False, None, False),
    ("refused-model", True, "fallback", False),
    ("fault-reset_mid_body", False, None, False),
    ("fault-reset_mid_stream", True, None, False),
    ("tight-slow", False, None, False),
    ("tight-stall_mid_stream", True, None, False),
    ("fault-bad_json", False, "fallback", False),
    ("fault-wrong_ctype", True, None, False),
    ("fault-retry_after", False, None, False),
    ("fault-fail_500", False, "retry", False),
    ("fault-fail_502", True, None, False),
    ("fault-fail_503", False, "fallback", False),
    ("fault-ok", True, None, True),  # the client goes away mid-stream
    ("fault-linger", False, None, True),  # the client goes away while the answer is awaited
    ("fault-ok", False, None, False),
    ("fault-ok", True, None, False),
]


@pytest.fixture
def leak_gateway(tmp_path: Path) -> Iterator[tuple[GatewayProcess, FaultyOpenAI, Path]]:
    faulty = FaultyOpenAI(name="faulty", chunks=5).start()
    backup = FakeOpenAI(name="backup").start()
    data = tmp_path / "data"
    gw = GatewayProcess(fault_config(faulty.url, backup.url, str(data)), tmp_path).start()
    try:
        yield gw, faulty, data
    finally:
        gw.stop()
        faulty.stop()
        backup.stop()


async def _one(
    client: httpx.AsyncClient, url: str, i: int, model: str, stream: bool, task: str | None, hang_up: bool
) -> tuple[str, int]:
    rid = f"leak-{i}"
    headers = {**CLIENT, "x-request-id": rid}
    if task:
        headers["x-pointsman-task"] = task
    body: dict[str, Any] = {"model": model, "messages": MSG}
    if stream:
        body["stream"] = True
        async with client.stream("POST", url + "/v1/chat/completions", headers=headers, json=body) as r:
            async for _ in r.aiter_bytes():
                if hang_up:
                    break  # leaving the block closes the connection mid-stream
            return rid, r.status_code
    if hang_up:  # the upstream answers after 2.5 s; the client leaves after 0.1 s
        with contextlib.suppress(httpx.ReadTimeout):
            await client.post(
                url + "/v1/chat/completions", headers=headers, json=body, timeout=httpx.Timeout(30, read=0.1)
            )
        return rid, 499
    r = await client.post(url + "/v1/chat/completions", headers=headers, json=body)
    return rid, r.status_code


async def _blast(url: str, n: int, start: int, concurrency: int = 24) -> Counter[int]:
    statuses: Counter[int] = Counter()
    kinds = itertools.cycle(FAULTS)
    jobs = [(start + i, *next(kinds)) for i in range(n)]
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def run(job: tuple[int, str, bool, str | None, bool]) -> None:
            async with sem:
                _, status = await _one(client, url, *job)
                statuses[status] += 1

        await asyncio.gather(*(run(j) for j in jobs))
    return statuses


def _settled(gw: GatewayProcess) -> dict[str, Any]:
    """The process's resources once nothing is in flight (streams are accounted after they end)."""
    wait_for(lambda: debug_process(gw.url)["in_flight"] == 0, 30)
    time.sleep(1.0)
    flush_ledger(gw.url)
    assert gw.proc is not None
    doc = debug_process(gw.url)
    doc["proc_rss"] = proc_rss(gw.proc.pid)
    doc["proc_fds"] = proc_fds(gw.proc.pid)
    return doc


def _run_and_measure(gw: GatewayProcess, faulty: FaultyOpenAI, data: Path, warmup: int, n: int) -> None:
    assert gw.proc is not None
    hung_up = asyncio.run(_blast(gw.url, warmup, 0))[499]
    before = _settled(gw)
    conns_before = tcp_connections_to(gw.proc.pid, int(faulty.url.rsplit(":", 1)[1].split("/")[0]))
    t0 = time.perf_counter()
    statuses = asyncio.run(_blast(gw.url, n, warmup))
    elapsed = time.perf_counter() - t0
    after = _settled(gw)
    conns_after = tcp_connections_to(gw.proc.pid, int(faulty.url.rsplit(":", 1)[1].split("/")[0]))
    growth_mb = (after["rss_bytes"] - before["rss_bytes"]) / 2**20
    print(
        f"\n{n} faulted requests in {elapsed:.1f} s; statuses {dict(sorted(statuses.items()))}; "
        f"asyncio tasks {before['asyncio_tasks']} -> {after['asyncio_tasks']}; "
        f"fds {before['open_fds']} -> {after['open_fds']}; "
        f"upstream connections {conns_before} -> {conns_after}; threads {before['threads']} -> {after['threads']}; "
        f"RSS {before['rss_bytes'] / 2**20:.1f} -> {after['rss_bytes'] / 2**20:.1f} MiB ({growth_mb:+.1f})"
    )
    assert 500 not in statuses and 0 not in statuses, statuses  # faults are answered, never a gateway 500
    # each hang-up cancelled its upstream call (one that left before the call was made leaves none to cancel)
    called = sum(1 for seen in faulty.requests if seen.body.get("model") == "fault-linger")
    assert 0 < called <= hung_up + statuses[499]
    # the upstream answers after 2.5 s: a call still open then was never cancelled (the client left after 0.1 s)
    assert faulty.abandoned_models["fault-linger"] == called
    print(f"upstream calls abandoned after at most {max(faulty.abandoned_after):.2f} s")
    assert after["asyncio_tasks"] <= before["asyncio_tasks"] + 3, (before, after)
    assert after["open_fds"] <= before["open_fds"] + 24, (
        before,
        after,
    )  # at most pool churn, never one per request
    assert conns_after <= conns_before + 24, (conns_before, conns_after)
    assert after["threads"] <= before["threads"] + 2, (before, after)
    assert growth_mb < 25, f"RSS grew {growth_mb:.1f} MiB over {n} faulted requests"
    rows = ledger_rows(data)
    ids = Counter(r["request_id"] for r in rows)
    assert not [rid for rid, c in ids.items() if c > 1], "a request recorded twice"
    missing = {f"leak-{i}" for i in range(warmup + n)} - set(ids)
    assert not missing, f"{len(missing)} requests missing from the ledger, e.g. {sorted(missing)[:5]}"


def test_two_thousand_faulted_requests_leak_no_tasks_connections_or_memory(
    leak_gateway: tuple[GatewayProcess, FaultyOpenAI, Path],
) -> None:
    _run_and_measure(*leak_gateway, warmup=300, n=2000)


@pytest.mark.slow
def test_twenty_thousand_faulted_requests_leak_no_tasks_connections_or_memory(
    leak_gateway: tuple[GatewayProcess, FaultyOpenAI, Path],
) -> None:
    _run_and_measure(*leak_gateway, warmup=1000, n=20_000)
