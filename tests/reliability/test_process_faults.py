"""Process faults on a real ``pointsman serve``: SIGTERM under load drains (in-flight streams finish within
``server.graceful_timeout_s``, new connections are refused, ``/readyz`` answers 503 during the drain delay, the
ledger is flushed); ``kill -9`` loses at most the ledger's last flush interval; a restart recovers policy,
ledger and budgets."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess
from tests.reliability.probes import ADMIN, CLIENT, MSG, ledger_rows, openai_error, wait_for


@pytest.fixture
def streaming_upstream() -> Iterator[FakeOpenAI]:
    """Streams of 20 chunks, 0.1 s apart: about 2 s each."""
    fake = FakeOpenAI(name="slow-streams", chunks=20, chunk_delay=0.1, content="x" * 200).start()
    yield fake
    fake.stop()


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name="up").start()
    yield fake
    fake.stop()


def serve(upstream: FakeOpenAI, tmp: Path, port: int | None = None, **server: Any) -> GatewayProcess:
    cfg = basic_config(upstream.url, server={"data_dir": str(tmp / "data"), **server})
    return GatewayProcess(cfg, tmp, port=port).start()


class Stream(threading.Thread):
    """One streamed chat completion read to the end in a thread."""

    def __init__(self, url: str, rid: str) -> None:
        super().__init__(daemon=True)
        self.url, self.rid = url, rid
        self.first = threading.Event()
        self.body = b""
        self.status = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with (
                httpx.Client(timeout=60) as c,
                c.stream(
                    "POST",
                    self.url + "/v1/chat/completions",
                    headers={**CLIENT, "x-request-id": self.rid},
                    json={"model": "gpt-4o-mini", "messages": MSG, "stream": True},
                ) as r,
            ):
                self.status = r.status_code
                for chunk in r.iter_bytes():
                    self.body += chunk
                    self.first.set()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.first.set()

    @property
    def complete(self) -> bool:
        return (
            self.error is None
            and self.status == 200
            and self.body.endswith(b"data: [DONE]\n\n")
            and b'"error"' not in self.body
        )


def start_streams(url: str, n: int, prefix: str) -> list[Stream]:
    streams = [Stream(url, f"{prefix}-{i}") for i in range(n)]
    for s in streams:
        s.start()
    for s in streams:
        assert s.first.wait(30)
    assert all(s.status == 200 for s in streams), [(s.status, s.error) for s in streams]
    return streams


def connect_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def chat(url: str, rid: str, model: str = "gpt-4o-mini") -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        headers={**CLIENT, "x-request-id": rid},
        json={"model": model, "messages": MSG},
        timeout=30,
    )


# -- SIGTERM --------------------------------------------------------------------------------------------------------
def test_sigterm_lets_in_flight_streams_finish_and_flushes_them_to_the_ledger(
    streaming_upstream: FakeOpenAI, tmp_path: Path
) -> None:
    gw = serve(streaming_upstream, tmp_path, graceful_timeout_s=20)
    try:
        streams = start_streams(gw.url, 8, "drain")
        t0 = time.monotonic()
        gw.signal(signal.SIGTERM)
        assert gw.wait(30) in (0, -signal.SIGTERM)
        took = time.monotonic() - t0
        for s in streams:
            s.join(10)
        assert all(s.complete for s in streams), [(s.rid, s.error, s.body[-80:]) for s in streams]
        assert took < 20, f"drain took {took:.1f} s, past graceful_timeout_s"
    finally:
        gw.stop()
    rows = ledger_rows(tmp_path / "data", [s.rid for s in streams])
    assert sorted(r["request_id"] for r in rows) == sorted(s.rid for s in streams)
    assert all(r["outcome"] == "ok" and r["output_tokens"] > 0 for r in rows)


def test_streams_cut_by_the_end_of_the_grace_period_count_their_prompt_and_what_was_streamed(
    tmp_path: Path,
) -> None:
    """Streams still running when ``graceful_timeout_s`` ends are cancelled: the provider was handed their
    prompts and generated what was streamed, so their rows are estimated, not 0 tokens and $0."""
    slow = FakeOpenAI(name="endless", chunks=200, chunk_delay=0.05, content="x" * 200).start()
    try:
        gw = serve(slow, tmp_path, graceful_timeout_s=1)
        try:
            streams = start_streams(gw.url, 3, "cut")
            gw.signal(signal.SIGTERM)
            assert gw.wait(30) in (0, -signal.SIGTERM)
        finally:
            gw.stop()
    finally:
        slow.stop()
    rows = ledger_rows(tmp_path / "data", [s.rid for s in streams])
    assert len(rows) == 3
    for r in rows:
        assert (r["outcome"], r["error_type"], r["estimated"]) == ("cancelled", "shutdown", 1), r
        assert r["input_tokens"] > 0 and r["output_tokens"] > 0, r
        assert Decimal(r["cost_usd"]) > 0, r


def test_a_request_waiting_on_its_answer_at_the_end_of_the_grace_period_counts_its_prompt(
    tmp_path: Path,
) -> None:
    slow = FakeOpenAI(name="slow").start()
    slow.delay = 10
    try:
        gw = serve(slow, tmp_path, graceful_timeout_s=1)
        try:
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(lambda: _try(lambda: chat(gw.url, "waiting")))
                wait_for(lambda: len(slow.requests) == 1, 10)
                gw.signal(signal.SIGTERM)
                assert gw.wait(30) in (0, -signal.SIGTERM)
                pending.result(30)
        finally:
            gw.stop()
    finally:
        slow.stop()
    [row] = ledger_rows(tmp_path / "data", ["waiting"])
    assert (row["outcome"], row["error_type"], row["estimated"]) == ("cancelled", "shutdown", 1), row
    assert row["input_tokens"] > 0 and row["backend"] == "up", row
    assert Decimal(row["cost_usd"]) > 0, row


def _try(fn: Any) -> Any:
    try:
        return fn()
    except httpx.HTTPError as exc:  # the connection closes under it
        return exc


def test_sigterm_refuses_new_connections_while_streams_drain(
    streaming_upstream: FakeOpenAI, tmp_path: Path
) -> None:
    gw = serve(streaming_upstream, tmp_path, graceful_timeout_s=20)
    try:
        streams = start_streams(gw.url, 4, "refuse")
        gw.signal(signal.SIGTERM)
        wait_for(lambda: connect_refused(gw.port), 5)
        assert any(s.is_alive() for s in streams), "the streams should still be in flight"
        gw.wait(30)
        for s in streams:
            s.join(10)
        assert all(s.complete for s in streams)
    finally:
        gw.stop()


def test_readyz_answers_503_during_the_drain_delay_while_requests_are_still_served(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    gw = serve(upstream, tmp_path, drain_delay_s=4, graceful_timeout_s=10)
    try:
        assert httpx.get(gw.url + "/readyz", timeout=5).status_code == 200
        gw.signal(signal.SIGTERM)
        r = wait_for(lambda: (x := httpx.get(gw.url + "/readyz", timeout=5)).status_code == 503 and x, 2)
        assert r.json()["status"] == "draining"
        assert chat(gw.url, "during-drain").status_code == 200  # still serving until the delay ends
        assert httpx.get(gw.url + "/healthz", timeout=5).status_code == 200  # alive, just not ready
        wait_for(lambda: connect_refused(gw.port), 10)
        assert gw.wait(15) in (0, -signal.SIGTERM)
    finally:
        gw.stop()
    assert [r["request_id"] for r in ledger_rows(tmp_path / "data", ["during-drain"])] == ["during-drain"]


def test_streams_cut_at_the_end_of_the_grace_period_are_still_recorded(tmp_path: Path) -> None:
    endless = FakeOpenAI(
        name="endless", chunks=100, chunk_delay=0.2, content="x" * 200
    ).start()  # 20 s streams
    try:
        gw = serve(endless, tmp_path, graceful_timeout_s=1)
        try:
            streams = start_streams(gw.url, 3, "cut")
            t0 = time.monotonic()
            gw.signal(signal.SIGTERM)
            gw.wait(20)
            assert time.monotonic() - t0 < 10, "shutdown waited past the grace period"
            for s in streams:
                s.join(10)
            assert not any(s.complete for s in streams)
        finally:
            gw.stop()
    finally:
        endless.stop()
    rows = ledger_rows(tmp_path / "data", [s.rid for s in streams])
    assert sorted(r["request_id"] for r in rows) == sorted(s.rid for s in streams)
    assert all(r["outcome"] == "cancelled" for r in rows), [r["outcome"] for r in rows]


# -- kill -9 -----------------------------------------------------------------------------------------------------
def test_kill_9_loses_at_most_the_last_flush_interval_of_the_ledger(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    flush_s = 0.5  # accounting.ledger.flush_interval_s (the default)
    gw = serve(upstream, tmp_path)
    done: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 3
        i = 0
        while time.monotonic() < deadline:
            rid = f"k9-{i}"
            assert chat(gw.url, rid).status_code == 200
            done[rid] = time.monotonic()
            i += 1
        assert gw.proc is not None
        killed_at = time.monotonic()
        gw.proc.kill()
        gw.wait(10)
    finally:
        gw.stop()
    rows = ledger_rows(tmp_path / "data", done)
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids))
    lost = {rid: killed_at - t for rid, t in done.items() if rid not in ids}
    # everything answered more than one flush interval (plus a generous commit allowance) before the kill is there
    assert all(age < flush_s + 1.0 for age in lost.values()), sorted(lost.items(), key=lambda kv: -kv[1])[:5]
    print(
        f"\nkill -9 after {len(done)} answered requests: {len(lost)} lost, all answered within "
        f"{max(lost.values(), default=0):.2f} s of the kill"
    )
    # and the ledger file survives the crash: a restarted gateway reads and extends it
    gw2 = serve(upstream, tmp_path)
    try:
        assert chat(gw2.url, "after-crash").status_code == 200
        spend = httpx.get(gw2.url + "/admin/spend", headers=ADMIN, timeout=30).json()
        assert spend["total"]["requests"] == len(ids) + 1
    finally:
        gw2.stop()


# -- restart ------------------------------------------------------------------------------------------------------
def test_restart_after_kill_9_recovers_admin_policy_changes(upstream: FakeOpenAI, tmp_path: Path) -> None:
    gw = serve(upstream, tmp_path)
    try:
        r = httpx.post(
            gw.url + "/admin/routes",
            headers=ADMIN,
            timeout=30,
            json={"name": "pinned", "match": {"tags": {"task": "pin"}}, "targets": [{"model": "alias"}]},
        )
        assert r.status_code == 201, r.text
        assert gw.proc is not None
        gw.proc.kill()  # right after the change was acknowledged
        gw.wait(10)
    finally:
        gw.stop()
    gw2 = serve(upstream, tmp_path)
    try:
        names = [
            x["name"]
            for x in httpx.get(gw2.url + "/admin/routes", headers=ADMIN, timeout=30).json()["routes"]
        ]
        assert "pinned" in names
        r = httpx.post(
            gw2.url + "/v1/chat/completions",
            timeout=30,
            headers={**CLIENT, "x-pointsman-task": "pin"},
            json={"model": "gpt-4o-mini", "messages": MSG},
        )
        assert r.headers["x-pointsman-route"] == "pinned"
    finally:
        gw2.stop()


def test_restart_after_sigterm_recovers_the_ledger_and_spent_budgets(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.prompt_tokens, upstream.completion_tokens = 1000, 500
    accounting = {
        "pricing": {"gpt-4o-mini": {"input_per_mtok": "1.00", "output_per_mtok": "2.00"}},  # $0.002
        "budgets": [{"scope": "key", "name": "app", "daily_usd": "0.005"}],
    }
    cfg = basic_config(upstream.url, server={"data_dir": str(tmp_path / "data")}, accounting=accounting)
    gw = GatewayProcess(cfg, tmp_path).start()
    try:
        for i in range(3):  # $0.000, $0.002, $0.004 spent before each: allowed
            assert chat(gw.url, f"b-{i}").status_code == 200
    finally:
        gw.stop()  # SIGTERM
    gw2 = GatewayProcess(cfg, tmp_path).start()
    try:
        r = chat(gw2.url, "b-after")
        assert r.status_code == 429  # the spend before the restart still counts
        assert openai_error(r)["code"] == "insufficient_quota"
        spend = httpx.get(gw2.url + "/admin/spend", headers=ADMIN, timeout=30).json()
        assert spend["total"]["requests"] == 4 and Decimal(spend["total"]["cost_usd"]) == Decimal("0.006")
    finally:
        gw2.stop()
