"""Hypothesis-generated upstream answers through a running ``pointsman serve`` with low bounds: JSON bodies of
any size (within and far past ``server.max_response_bytes``), plain or gzip/deflate-compressed, with and without
a ``content-length``; streams of any number and size of events (past ``max_event_bytes`` too), LF or CRLF
framing, cut into arbitrary pieces, compressed or not, with or without their final blank line and ``[DONE]``.

Each answer is relayed faithfully (a body byte for byte; a stream event for event) when it is within the bounds
and well-formed, else refused with an OpenAI-shaped 502 (``upstream_response_too_large``, ``upstream_protocol``)
or, once a stream has started, ended with an error event (``upstream_response_too_large``,
``upstream_truncated``) and ``[DONE]``. Every request has one ledger row; the gateway's peak memory stays bounded
and it is healthy afterwards."""

from __future__ import annotations

import gzip
import itertools
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess
from tests.reliability.probes import CLIENT, MSG, flush_ledger, ledger_rows, openai_error, proc_peak_rss

KIB, MIB = 1024, 1024 * 1024
MAX_RESPONSE = 256 * KIB
MAX_EVENT = 64 * KIB
CASES = {"quick": 60, "thorough": 600}


@dataclass
class Answer:
    """What the scripted upstream sends for one model id."""

    content_type: str
    frames: list[bytes]
    """The body as written, piece by piece (already compressed when ``encoding`` is set)."""
    encoding: str | None = None
    length: bool = True
    """Send a ``content-length``."""


@dataclass
class ScriptedUpstream(FakeOpenAI):
    """An upstream that answers each chat model id with the answer a test registered for it."""

    answers: dict[str, Answer] = field(default_factory=dict)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        a = self.answers.pop(str(body["model"]))
        headers = {"content-type": a.content_type}
        if a.encoding:
            headers["content-encoding"] = a.encoding
        resp = web.StreamResponse(headers=headers)
        if a.length:
            resp.content_length = sum(len(f) for f in a.frames)
        await resp.prepare(request)
        try:
            for frame in a.frames:
                await resp.write(frame)
            await resp.write_eof()
        except ConnectionError:
            pass  # the gateway refused the answer and hung up
        return resp


# -- strategies ------------------------------------------------------------------------------------------------------
sizes = st.one_of(
    st.integers(min_value=0, max_value=4 * KIB),
    st.integers(min_value=0, max_value=MAX_RESPONSE),
    st.integers(min_value=MAX_RESPONSE - 64, max_value=MAX_RESPONSE + 64),
    st.integers(min_value=MAX_RESPONSE, max_value=4 * MAX_RESPONSE),
    st.sampled_from([8 * MIB, 32 * MIB]),  # compressed only: far past the bound in a few KiB
)
encodings = st.sampled_from([None, "gzip", "deflate"])


def compress(data: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data, 6)
    if encoding == "deflate":
        return zlib.compress(data, 6)
    return data


def cut(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` in pieces of arbitrary sizes (at most 64 of them)."""
    if len(data) < 2:
        return [data]
    points = sorted(draw(st.sets(st.integers(min_value=1, max_value=len(data) - 1), max_size=63)))
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


def completion(content_size: int) -> bytes:
    head = b'{"id":"chatcmpl-f","object":"chat.completion","created":1,"model":"f","choices":[{"index":0,'
    head += b'"message":{"role":"assistant","content":"'
    tail = b'"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}'
    return head + b"x" * content_size + tail


@dataclass
class Case:
    stream: bool
    answer: Answer
    body: bytes = b""
    """Non-streamed: the decompressed body; whether it is valid JSON."""
    valid: bool = True
    events: list[bytes] = field(default_factory=list)
    """Streamed: the events (their ``data:`` payloads), in order, and how the stream ends."""
    done: bool = True
    too_big_event: int | None = None
    """Index of the first event past ``max_event_bytes``."""

    def __repr__(self) -> str:  # what a failing example prints: its shape, not megabytes
        a = self.answer
        wire = sum(len(f) for f in a.frames)
        shape = f"{len(a.frames)} pieces, {wire} bytes on the wire, encoding {a.encoding}, length {a.length}"
        if not self.stream:
            return f"Body({len(self.body)} bytes, valid={self.valid}; {shape})"
        return (
            f"Stream({[len(e) for e in self.events]} event sizes, done={self.done}, "
            f"too_big_event={self.too_big_event}; {shape}; head {a.frames[0][:80]!r})"
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # hypothesis's printer would list every field
        p.text(repr(self))


@st.composite
def bodies(draw: st.DrawFn) -> Case:
    size = draw(sizes)
    encoding = draw(encodings)
    if size > 4 * MAX_RESPONSE and encoding is None:
        encoding = "gzip"
    valid = draw(st.booleans()) or draw(st.booleans())
    body = completion(size) if valid else b'{"id": "x", "choices": [' + b" " * size
    wire = compress(body, encoding)
    frames = cut(draw, wire)
    return Case(
        False, Answer("application/json", frames, encoding, draw(st.booleans())), body=body, valid=valid
    )


@st.composite
def streams(draw: st.DrawFn) -> Case:
    sizes_ = draw(
        st.lists(
            st.one_of(
                st.integers(0, 2 * KIB),
                st.integers(0, 16 * KIB),
                st.integers(0, 2 * KIB),
                st.integers(MAX_EVENT - 200, MAX_EVENT + 200),
            ),
            min_size=0,
            max_size=24,
        )
    )
    events = [
        orjson.dumps({"choices": [{"index": 0, "delta": {"content": "c" * n}, "finish_reason": None}]})
        for n in sizes_
    ]
    done = draw(st.booleans()) or draw(st.booleans())
    final_blank = draw(st.booleans())
    sep = b"\r\n" if draw(st.booleans()) else b"\n"
    frames = [b"data: " + e + sep + sep for e in events]
    if done:
        frames.append(b"data: [DONE]" + (sep + sep if final_blank else b""))
    elif frames and not final_blank:
        frames[-1] = frames[-1][: -2 * len(sep)]
    raw = b"".join(frames)
    encoding = draw(st.sampled_from([None, None, "gzip"]))
    wire = compress(raw, encoding)
    too_big = next((i for i, e in enumerate(events) if len(e) + 6 > MAX_EVENT), None)
    answer = Answer("text/event-stream", cut(draw, wire), encoding, draw(st.booleans()))
    return Case(True, answer, events=events, done=done, too_big_event=too_big)


# -- checks ----------------------------------------------------------------------------------------------------------
def data_events(body: bytes) -> list[bytes]:
    return [e[len(b"data: ") :] for e in body.split(b"\n\n") if e.startswith(b"data: ")]


def check(case: Case, r: httpx.Response) -> str:
    """Assert the gateway's answer is the right one for ``case``; returns what happened (for the tally)."""
    if not case.stream:
        if len(case.body) > MAX_RESPONSE:
            assert r.status_code == 502, (r.status_code, r.text[:200])
            assert openai_error(r)["code"] == "upstream_response_too_large"
            return "too_large"
        if not case.valid:
            assert r.status_code == 502, (r.status_code, r.text[:200])
            assert openai_error(r)["code"] == "upstream_protocol"
            return "invalid"
        assert r.status_code == 200, r.text[:300]
        assert r.content == case.body  # decompressed, byte for byte
        return "relayed"
    assert r.status_code == 200, r.text[:300]
    got = data_events(r.content)
    assert got and got[-1] == b"[DONE]", r.content[-300:]
    if case.too_big_event is not None:
        assert got[: case.too_big_event] == case.events[: case.too_big_event]
        assert orjson.loads(got[case.too_big_event])["error"]["code"] == "upstream_response_too_large"
        return "event_too_large"
    if not case.done:
        assert got[:-2] == case.events
        assert orjson.loads(got[-2])["error"]["code"] == "upstream_truncated"
        return "truncated"
    assert got[:-1] == case.events
    return "relayed_stream"


# -- the run ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedUpstream]:
    up = ScriptedUpstream(name="scripted")
    up.start()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def gateway(scripted: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("fuzz-upstream")
    cfg: dict[str, Any] = {
        "admin_key": ADMIN_KEY,
        "server": {
            "data_dir": str(tmp / "data"),
            "max_response_bytes": MAX_RESPONSE,
            "max_event_bytes": MAX_EVENT,
            "max_retained_stream_bytes": 128 * KIB,
        },
        "backends": {"up": {"type": "openai", "base_url": scripted.url, "api_key": "sk-up-0001"}},
        "models": {"fz-*": {"backend": "up"}},
        "keys": [{"name": "app", "key": CLIENT_KEY}],
        # every case fails the same backend on purpose: the breaker must not turn them into 503s
        "routing": {
            "breaker": {"consecutive_failures": 10_000, "error_rate": 1.0, "min_requests": 1_000_000}
        },
    }
    gw = GatewayProcess(cfg, tmp).start()
    try:
        yield gw
    finally:
        gw.stop()


def run(gw: GatewayProcess, up: ScriptedUpstream, profile: str) -> None:
    assert gw.proc is not None
    tally: dict[str, int] = {}
    rids: list[str] = []
    peak0 = proc_peak_rss(gw.proc.pid)

    @settings(
        max_examples=CASES[profile],
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(bodies(), streams()))
    def one(case: Case) -> None:
        model = f"fz-{uuid.uuid4().hex}"
        up.answers[model] = case.answer
        rid = "fz-" + uuid.uuid4().hex
        rids.append(rid)
        body = {"model": model, "messages": MSG, **({"stream": True} if case.stream else {})}
        with httpx.Client(timeout=60) as c:
            r = c.post(gw.url + "/v1/chat/completions", headers={**CLIENT, "x-request-id": rid}, json=body)
        what = check(case, r)
        tally[what] = tally.get(what, 0) + 1

    one()
    growth = proc_peak_rss(gw.proc.pid) - peak0
    print(
        f"\nfuzzed upstream answers ({profile}): {dict(sorted(tally.items()))}; peak RSS +{growth / MIB:.1f} MiB"
    )
    assert len(tally) >= 4, tally  # the generator reaches most kinds of answer
    assert growth < 48 * MIB
    flush_ledger(gw.url)
    rows = ledger_rows(Path(gw.path.parent / "data"), rids)
    assert len(rows) == len(rids) and len({r["request_id"] for r in rows}) == len(rids)
    assert httpx.get(gw.url + "/healthz", timeout=10).status_code == 200
    log = gw.log.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 300 :][:3000]


def test_fuzzed_upstream_answers_are_relayed_or_refused_within_the_bounds(
    gateway: GatewayProcess, scripted: ScriptedUpstream
) -> None:
    run(gateway, scripted, "quick")


@pytest.mark.slow
def test_fuzzed_upstream_answers_thorough(gateway: GatewayProcess, scripted: ScriptedUpstream) -> None:
    run(gateway, scripted, "thorough")
