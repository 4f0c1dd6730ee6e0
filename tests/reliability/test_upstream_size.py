"""Upstream answers far larger than any limit — huge bodies, small compressed bodies that inflate to huge ones,
streams whose one event never ends, streams longer than the gateway keeps — against a running ``pointsman
serve`` with low bounds (the slow tier repeats the 256 MiB cases against the defaults). Each is refused or
relayed within ``server.max_response_bytes`` / ``max_event_bytes`` / ``max_retained_stream_bytes``, with a clear
error and a ledger row, and the gateway's peak memory grows by a bounded amount, not by the answer's size."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.gateway_runner import GatewayProcess
from tests.reliability.faults import FaultyOpenAI
from tests.reliability.probes import (
    CLIENT,
    MSG,
    openai_error,
    proc_cpu_seconds,
    proc_peak_rss,
    proc_rss,
    reset_peak_rss,
    rows_for,
)

KIB, MIB = 1024, 1024 * 1024
MAX_RESPONSE = 1 * MIB
MAX_EVENT = 256 * KIB
MAX_RETAINED = 512 * KIB
PEAK_GROWTH = 24 * MIB
"""What one oversized answer may add to the gateway's peak RSS (the answers are 32-64 MiB)."""


def size_config(upstream: str, data_dir: Path, **server: Any) -> dict[str, Any]:
    return {
        "admin_key": ADMIN_KEY,
        "server": {
            "data_dir": str(data_dir),
            "request_timeout_s": 60,
            "max_response_bytes": MAX_RESPONSE,
            "max_event_bytes": MAX_EVENT,
            "max_retained_stream_bytes": MAX_RETAINED,
            **server,
        },
        "backends": {
            "up": {"type": "openai", "base_url": upstream, "api_key": "sk-provider-0001", "timeout_s": 60}
        },
        "models": {"fault-*": {"backend": "up"}},
        "keys": [{"name": "app", "key": CLIENT_KEY, "team": "search"}],
    }


def serve(cfg: dict[str, Any], tmp: Path) -> Iterator[GatewayProcess]:
    """``pointsman serve`` with ``cfg``, warmed up, for one module."""
    gw = GatewayProcess(cfg, tmp).start()
    warm_up(gw)
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def bounded(faulty: FaultyOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("bounded")
    yield from serve(size_config(faulty.url, tmp / "data"), tmp)


def warm_up(gw: GatewayProcess) -> None:
    """Every path once (imports, buffers, pools), so that peak memory measures the answer, not first use."""
    for model, stream in (("fault-model", False), ("fault-model", True), ("fault-gzip_body_512k", False)):
        post(gw, model, stream)


def post(gw: GatewayProcess, model: str, stream: bool = False, **extra: Any) -> tuple[httpx.Response, str]:
    rid = "size-" + uuid.uuid4().hex
    body: dict[str, Any] = {"model": model, "messages": MSG, **extra}
    if stream:
        body["stream"] = True
    with httpx.Client(timeout=120) as c:
        r = c.post(gw.url + "/v1/chat/completions", headers={**CLIENT, "x-request-id": rid}, json=body)
    return r, rid


def one_row(gw: GatewayProcess, rid: str) -> dict[str, Any]:
    rows = rows_for(gw.url, gw.path.parent / "data", rid)
    assert len(rows) == 1, rows
    return rows[0]


def peak(gw: GatewayProcess) -> int:
    """The gateway's peak RSS, reset to its current RSS (measure what comes next, not earlier bursts)."""
    assert gw.proc is not None
    return reset_peak_rss(gw.proc.pid)


def grew(gw: GatewayProcess, before: int, what: str) -> int:
    """The gateway's peak RSS growth since ``before`` (printed: the figures in docs/reliability.md)."""
    assert gw.proc is not None
    growth = proc_peak_rss(gw.proc.pid) - before
    print(f"\n{what}: peak RSS +{growth / MIB:.1f} MiB")
    return growth


def sse_data(body: bytes) -> list[bytes]:
    return [e[len(b"data: ") :] for e in body.split(b"\n\n") if e.startswith(b"data: ")]


# -- non-streamed answers -------------------------------------------------------------------------------------------
def test_answer_over_max_response_bytes_is_a_502_and_is_not_read(bounded: GatewayProcess) -> None:
    before = peak(bounded)
    r, rid = post(bounded, "fault-big_body_64m")
    assert r.status_code == 502
    err = openai_error(r)
    assert err["code"] == "upstream_response_too_large" and str(MAX_RESPONSE) in err["message"]
    assert grew(bounded, before, "64 MiB body") < PEAK_GROWTH
    row = one_row(bounded, rid)
    assert (row["status"], row["outcome"], row["error_type"]) == (502, "upstream_error", "too_large")


@pytest.mark.parametrize("kind", ["gzip_body", "deflate_body"])
def test_compressed_answer_is_bounded_by_its_size_after_decompression(
    bounded: GatewayProcess, kind: str
) -> None:
    """The gateway asks for compressed answers: 64 MiB of JSON arrives as a few hundred KiB."""
    before = peak(bounded)
    r, rid = post(bounded, f"fault-{kind}_64m")
    assert r.status_code == 502
    assert openai_error(r)["code"] == "upstream_response_too_large"
    assert grew(bounded, before, f"64 MiB {kind}") < PEAK_GROWTH
    assert one_row(bounded, rid)["error_type"] == "too_large"


@pytest.mark.parametrize("kind", ["big_body", "gzip_body", "deflate_body"])
def test_answer_within_max_response_bytes_is_relayed_whole(bounded: GatewayProcess, kind: str) -> None:
    r, rid = post(bounded, f"fault-{kind}_768k")
    assert r.status_code == 200, r.text[:300]
    assert len(r.content) == 768 * KIB  # decompressed, byte for byte
    assert r.json()["choices"][0]["message"]["content"].strip("x") == ""
    assert one_row(bounded, rid)["outcome"] == "ok"


# -- streams --------------------------------------------------------------------------------------------------------
def test_event_over_max_event_bytes_ends_the_stream_with_an_error_event(bounded: GatewayProcess) -> None:
    """One event that never gets its blank line: held up to the bound, not to the end of the stream."""
    before = peak(bounded)
    t0 = time.monotonic()
    r, rid = post(bounded, "fault-endless_event_64m", stream=True)
    assert time.monotonic() - t0 < 10
    assert r.status_code == 200
    events = sse_data(r.content)
    assert events[-1] == b"[DONE]"
    err = orjson.loads(events[-2])["error"]
    assert err["code"] == "upstream_response_too_large" and str(MAX_EVENT) in err["message"]
    assert grew(bounded, before, "64 MiB endless event") < PEAK_GROWTH
    row = one_row(bounded, rid)
    assert (row["status"], row["outcome"], row["error_type"]) == (200, "upstream_error", "too_large")


def test_stream_longer_than_max_retained_stream_bytes_is_relayed_whole_and_kept_only_in_part(
    bounded: GatewayProcess,
) -> None:
    before = peak(bounded)
    r, rid = post(bounded, "fault-long_stream_32m", stream=True, stream_options={"include_usage": True})
    assert r.status_code == 200
    events = sse_data(r.content)
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    usage = chunks[-1]["usage"]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert len(content) == usage["completion_tokens"] * 1024 > 25 * MIB  # all of it reached the client
    assert grew(bounded, before, "32 MiB stream") < PEAK_GROWTH
    row = one_row(bounded, rid)
    assert (row["outcome"], row["error_type"]) == ("ok", "retention_capped")
    assert (row["output_tokens"], row["estimated"]) == (usage["completion_tokens"], 0)  # usage still counted


def test_compressed_stream_is_relayed_decompressed(bounded: GatewayProcess) -> None:
    r, rid = post(bounded, "fault-gzip_stream_256k", stream=True)
    assert r.status_code == 200
    events = sse_data(r.content)
    assert events[-1] == b"[DONE]" and len(events) > 200
    assert one_row(bounded, rid)["outcome"] == "ok"


# -- a long event, held in linear time --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def roomy(faulty: FaultyOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """Bounds high enough for one 48 MiB event; answers up to 16 MiB."""
    tmp = tmp_path_factory.mktemp("roomy")
    cfg = size_config(
        faulty.url,
        tmp / "data",
        max_response_bytes=16 * MIB,
        max_event_bytes=64 * MIB,
        max_retained_stream_bytes=0,
    )
    yield from serve(cfg, tmp)


def test_a_long_event_is_held_in_linear_time_and_health_checks_stay_prompt(roomy: GatewayProcess) -> None:
    """48 MiB in one event, arriving in pieces: re-joining the held bytes on every piece (quadratic) cost the
    gateway seconds of CPU on its event loop; holding the pieces costs one copy."""
    lags: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=30) as c:
            while not done.is_set():
                t = time.monotonic()
                assert c.get(roomy.url + "/healthz").status_code == 200
                lags.append(time.monotonic() - t)
                time.sleep(0.02)

    assert roomy.proc is not None
    prober = threading.Thread(target=probe)
    prober.start()
    cpu0, t0 = proc_cpu_seconds(roomy.proc.pid), time.monotonic()
    try:
        r, rid = post(roomy, "fault-long_event_48m", stream=True)
    finally:
        cpu, elapsed = proc_cpu_seconds(roomy.proc.pid) - cpu0, time.monotonic() - t0
        done.set()
        prober.join()
    assert r.status_code == 200 and sse_data(r.content)[-1] == b"[DONE]"
    assert len(r.content) > 48 * MIB
    print(
        f"\n48 MiB event relayed in {elapsed:.2f} s, {cpu:.2f} s of gateway CPU; "
        f"/healthz worst {max(lags) * 1000:.0f} ms over {len(lags)}"
    )
    assert cpu < 1.5  # re-joined on every piece: 4 s and more
    assert max(lags) < 1.0
    assert one_row(roomy, rid)["outcome"] == "ok"


def test_refused_answers_leave_no_memory_behind(roomy: GatewayProcess) -> None:
    """What was read of a refused answer (16 MiB each here) is freed at once, not when a garbage collection gets
    round to the exception's traceback: ten refusals in a row hold no more than one."""
    assert roomy.proc is not None
    post(roomy, "fault-gzip_body_64m")
    before = proc_rss(roomy.proc.pid)
    for _ in range(10):
        assert post(roomy, "fault-gzip_body_64m")[0].status_code == 502
    growth = proc_rss(roomy.proc.pid) - before
    print(f"\n10 refused answers: RSS +{growth / MIB:.1f} MiB")
    assert growth < 16 * MIB


# -- slow tier: 256 MiB against the default bounds ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def defaults(faulty: FaultyOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("defaults")
    cfg = size_config(faulty.url, tmp / "data")
    for k in ("max_response_bytes", "max_event_bytes", "max_retained_stream_bytes"):
        del cfg["server"][k]
    yield from serve(cfg, tmp)


DEFAULT_BOUND_GROWTH = 160 * MIB
"""A 64 MiB answer read whole, parsed and relayed, at most (the default ``server.max_response_bytes``)."""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["big_body", "gzip_body"])
def test_256_mib_answer_is_refused_under_the_default_bounds(defaults: GatewayProcess, kind: str) -> None:
    before = peak(defaults)
    r, rid = post(defaults, f"fault-{kind}_256m")
    assert r.status_code == 502 and openai_error(r)["code"] == "upstream_response_too_large"
    assert grew(defaults, before, f"256 MiB {kind}, defaults") < DEFAULT_BOUND_GROWTH
    assert one_row(defaults, rid)["error_type"] == "too_large"


@pytest.mark.slow
def test_256_mib_stream_is_relayed_whole_under_the_default_bounds(defaults: GatewayProcess) -> None:
    before = peak(defaults)
    rid = "size-" + uuid.uuid4().hex
    body = {"model": "fault-long_stream_256m", "messages": MSG, "stream": True}
    size = 0
    with httpx.Client(timeout=300) as c:
        with c.stream(
            "POST", defaults.url + "/v1/chat/completions", headers={**CLIENT, "x-request-id": rid}, json=body
        ) as r:
            tail = b""
            for piece in r.iter_bytes():
                size += len(piece)
                tail = (tail + piece)[-64:]
    assert size > 250 * MIB and tail.endswith(b"data: [DONE]\n\n")
    assert grew(defaults, before, "256 MiB stream, defaults") < 48 * MIB
    row = one_row(defaults, rid)
    assert (row["outcome"], row["error_type"]) == ("ok", "retention_capped")


@pytest.mark.slow
def test_256_mib_event_is_cut_at_the_default_max_event_bytes(defaults: GatewayProcess) -> None:
    before = peak(defaults)
    r, rid = post(defaults, "fault-endless_event_256m", stream=True)
    err = orjson.loads(sse_data(r.content)[-2])["error"]
    assert err["code"] == "upstream_response_too_large"
    assert grew(defaults, before, "256 MiB endless event, defaults") < 64 * MIB
    assert one_row(defaults, rid)["error_type"] == "too_large"
