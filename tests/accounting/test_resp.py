"""The request path's Redis client (``accounting.resp``) against a real redis-server."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
import types
from collections.abc import Iterator

import pytest

from accounting.resp import RespClient, RespConnectionError, RespError, RespTimeout, encode, parse
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, free to be frozen or restarted."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert (
        encode(["SET", "k", 12, 0.5, b"\r\n"])
        == b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$3\r\n0.5\r\n$2\r\n\r\n\r\n"
    )


def test_a_bool_is_refused_as_an_argument() -> None:
    with pytest.raises(TypeError):
        encode(["SET", "k", True])


def test_nested_replies_are_parsed_with_where_the_next_begins() -> None:
    raw = b"*3\r\n:7\r\n$-1\r\n*2\r\n+OK\r\n$2\r\nab\r\n:1\r\n"
    assert parse(raw, 0) == ([7, None, [b"OK", b"ab"]], len(raw) - 4)


def test_replies_are_matched_to_concurrent_callers_in_order(redis_server: str) -> None:
    async def run() -> list[int]:
        c = RespClient(redis_server)
        try:
            await c.execute("DEL", "resp:n")
            return list(await asyncio.gather(*(c.execute("INCRBY", "resp:n", 1) for _ in range(200))))
        finally:
            await c.aclose()

    assert sorted(asyncio.run(run())) == list(range(1, 201))


def test_an_error_reply_raises_for_its_caller_only(redis_server: str) -> None:
    async def run() -> tuple[object, object]:
        c = RespClient(redis_server)
        try:
            bad = c.execute("INCR")  # wrong number of arguments
            good = c.execute("PING")
            res = await asyncio.gather(bad, good, return_exceptions=True)
            return res[0], res[1]
        finally:
            await c.aclose()

    bad, good = asyncio.run(run())
    assert isinstance(bad, RespError) and "wrong number of arguments" in str(bad)
    assert good == b"PONG"


def test_a_pipeline_answers_in_order_and_raises_its_first_error(redis_server: str) -> None:
    async def run() -> tuple[list[object], BaseException | None]:
        c = RespClient(redis_server)
        try:
            ok = await c.pipeline([("SET", "resp:p", "v"), ("GET", "resp:p"), ("DEL", "resp:p")])
            try:
                await c.pipeline([("PING",), ("INCR",)])
            except RespError as exc:
                return ok, exc
            return ok, None
        finally:
            await c.aclose()

    ok, err = asyncio.run(run())
    assert ok == [b"OK", b"v", 1]
    assert isinstance(err, RespError)


def test_a_script_redis_does_not_know_is_loaded_then_run_by_sha(redis_server: str) -> None:
    async def run() -> tuple[object, object, object]:
        c = RespClient(redis_server)
        try:
            await c.execute("SCRIPT", "FLUSH")
            s = c.script("return {KEYS[1], ARGV[1]}")
            first = await s(keys=["a"], args=[1])
            known = await c.execute("SCRIPT", "EXISTS", s.sha)
            return first, known, await s(keys=["b"], args=["x"])
        finally:
            await c.aclose()

    assert asyncio.run(run()) == ([b"a", b"1"], [1], [b"b", b"x"])


def test_replies_split_across_reads_leave_no_frames_behind(redis_server: str) -> None:
    """A reply that arrives in pieces is waited for again on the next read; nothing of the waiting is kept (a
    single exception instance raised for every piece once kept each raise's frames: memory that grew with
    every split reply, ~1 MB a second at 5,000 requests a second on Redis)."""
    value = "v" * 1_000_000  # a few dozen reads per reply

    async def run() -> None:
        c = RespClient(redis_server, timeout_s=5.0)
        try:
            await c.execute("SET", "resp:big", value)
            for _ in range(20):
                assert await c.execute("GET", "resp:big") == value.encode()
        finally:
            await c.aclose()

    def tracebacks() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, types.TracebackType))

    before = tracebacks()
    asyncio.run(run())
    assert tracebacks() - before < 20


def test_a_cancelled_caller_leaves_later_replies_in_step(redis_server: str) -> None:
    async def run() -> object:
        c = RespClient(redis_server)
        try:
            slow = asyncio.ensure_future(c.execute("BLPOP", "resp:empty", "0.2"))
            await asyncio.sleep(0.05)
            slow.cancel()
            return await c.execute("ECHO", "mine")
        finally:
            await c.aclose()

    assert asyncio.run(run()) == b"mine"


def test_a_frozen_redis_fails_every_waiting_caller_within_one_timeout(own_redis: RedisServer) -> None:
    async def run() -> tuple[list[BaseException | object], float]:
        c = RespClient(own_redis.url, timeout_s=0.3)
        try:
            await c.ping()
            assert own_redis.proc is not None
            os.kill(own_redis.proc.pid, signal.SIGSTOP)
            t0 = time.monotonic()
            res = await asyncio.gather(*(c.execute("PING") for _ in range(50)), return_exceptions=True)
            return list(res), time.monotonic() - t0
        finally:
            await c.aclose()

    res, took = asyncio.run(run())
    assert all(isinstance(r, RespTimeout) for r in res)
    assert took < 0.6


def test_a_restarted_redis_is_reconnected_before_the_next_command(own_redis: RedisServer) -> None:
    async def run() -> object:
        c = RespClient(own_redis.url)
        try:
            await c.ping()
            own_redis.restart()
            await asyncio.sleep(0.1)  # the server's close arrives
            return await c.execute("ECHO", "again")
        finally:
            await c.aclose()

    assert asyncio.run(run()) == b"again"


def test_an_unreachable_redis_is_a_connection_error(own_redis: RedisServer) -> None:
    own_redis.stop()

    async def run() -> None:
        c = RespClient(own_redis.url)
        try:
            await c.ping()
        finally:
            await c.aclose()

    with pytest.raises(RespConnectionError):
        asyncio.run(run())


def test_a_password_and_database_in_the_url_are_used_and_never_shown(own_redis: RedisServer) -> None:
    async def run() -> tuple[object, object]:
        admin = RespClient(own_redis.url)
        await admin.execute("CONFIG", "SET", "requirepass", "s3cr#t")
        await admin.aclose()
        c = RespClient(f"redis://:s3cr%23t@127.0.0.1:{own_redis.port}/3")
        try:
            await c.execute("SET", "resp:db", "three")
            return await c.execute("GET", "resp:db"), repr(c)
        finally:
            await c.aclose()

    value, shown = asyncio.run(run())
    assert value == b"three"
    assert "s3cr" not in str(shown) and "/3" in str(shown)


def test_a_wrong_password_refuses_the_connection(own_redis: RedisServer) -> None:
    async def run() -> None:
        admin = RespClient(own_redis.url)
        await admin.execute("CONFIG", "SET", "requirepass", "right")
        await admin.aclose()
        c = RespClient(f"redis://:wrong@127.0.0.1:{own_redis.port}/0")
        try:
            await c.ping()
        finally:
            await c.aclose()

    with pytest.raises(RespConnectionError, match="refused"):
        asyncio.run(run())
