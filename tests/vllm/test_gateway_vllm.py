"""The gateway in front of the real vLLM (CPU, tiny model): the OpenAI SDK through pointsman, checked against
what vLLM itself reports (``/tokenize``, ``/v1/models``, ``/metrics``)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
import openai
import pytest

from gateway.cli import main
from serving.vllm.metrics import GENERATION_TOKENS, PROMPT_TOKENS, RUNNING, parse_samples, total
from tests.gateway_runner import RunningGateway
from tests.vllm.conftest import _cache_root

if TYPE_CHECKING:
    from tests.vllm.conftest import VLLMServer

pytestmark = pytest.mark.vllm

ADMIN = "sk-vllm-admin-0001"
KEY = "sk-vllm-client-0001"
ACCT_KEY = "sk-vllm-acct-0001"
GPU_HOUR = Decimal("2.00")
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello"},
]


def gateway_config(server: VLLMServer) -> dict[str, Any]:
    return {
        "admin_key": ADMIN,
        "backends": {
            "vllm": {
                "type": "vllm",
                "endpoints": [server.api_base],
                "health_interval_s": 0.5,
                "gpu_hour_usd": str(GPU_HOUR),
                "throughput_window_s": 60,
                "throughput_min_tokens": 20,
            }
        },
        "models": {
            "tiny": {"backend": "vllm"},
            # the LoRA adapter as its own model name: base backend + adapter
            "support-v1": {"backend": "vllm", "adapter": server.lora},
            # a model the server does not serve: vLLM's own 404 comes back
            "ghost": {"backend": "vllm", "upstream_model": "no-such-model"},
        },
        "keys": [
            {"name": "app", "key": KEY, "team": "search"},
            {"name": "acct", "key": ACCT_KEY, "team": "ledger"},
        ],
        "accounting": {"ledger": {"flush_interval_s": 0.1}},
    }


@pytest.fixture(scope="session", autouse=True)
def serve_command_check() -> Iterator[subprocess.Popen[str] | None]:
    """Parse ``pointsman vllm command``'s output with the real ``vllm serve`` parser, in the background: importing
    vLLM takes 10-30 s, so it runs while the server starts (autouse: set up before ``vllm_server``)."""
    proc = _start_serve_command_check() if _VENV_PYTHON.exists() else None
    yield proc
    if proc is not None and proc.returncode is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def gateway(
    serve_command_check: subprocess.Popen[str] | None, vllm_server: VLLMServer
) -> Iterator[RunningGateway]:
    with RunningGateway(gateway_config(vllm_server)) as gw:
        yield gw


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0, timeout=60) as c:
        yield c


@pytest.fixture
def admin(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=60) as c:
        yield c


def _tokenize(server: VLLMServer, body: dict[str, Any]) -> int:
    req = urllib.request.Request(
        f"{server.base_url}/tokenize",
        data=json.dumps({"model": server.model, **body}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        count: int = json.loads(r.read())["count"]
    return count


def _vllm_counters(server: VLLMServer) -> tuple[float, float, float]:
    s = parse_samples(server.metrics_text(), (PROMPT_TOKENS, GENERATION_TOKENS, RUNNING))
    return total(s[PROMPT_TOKENS]), total(s[GENERATION_TOKENS]), total(s[RUNNING])


FINISHED = "vllm:request_success_total"
"""vLLM's count of requests it ran to their end (by ``finished_reason``; an aborted request is not counted)."""


def _finished(server: VLLMServer, reason: str = "length") -> float:
    return total(parse_samples(server.metrics_text(), (FINISHED,))[FINISHED], finished_reason=reason)


def _settled_counters(server: VLLMServer) -> tuple[float, float]:
    """vLLM's token counters once nothing runs and two reads agree (its stats are updated per engine step)."""
    last: tuple[float, float] | None = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        p, g, running = _vllm_counters(server)
        if running == 0 and last == (p, g):
            return p, g
        last = (p, g) if running == 0 else None
        time.sleep(0.2)
    raise AssertionError("vLLM's counters did not settle")


# -- the OpenAI surface ---------------------------------------------------------------------------------------
def test_chat_usage_is_vllms_exact_count(client: openai.OpenAI, vllm_server: VLLMServer) -> None:
    n_prompt = _tokenize(vllm_server, {"messages": MESSAGES})
    raw = client.chat.completions.with_raw_response.create(
        model="tiny", messages=MESSAGES, max_tokens=12, temperature=0, extra_body={"ignore_eos": True}
    )
    r = raw.parse()
    assert isinstance(r.choices[0].message.content, str)
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (n_prompt, 12)
    assert raw.headers["x-pointsman-backend"] == "vllm" and raw.headers["x-pointsman-model"] == "tiny"
    assert (raw.headers["x-pointsman-tokens-input"], raw.headers["x-pointsman-tokens-output"]) == (
        str(n_prompt),
        "12",
    )


def test_completions_unary_and_streamed(client: openai.OpenAI, vllm_server: VLLMServer) -> None:
    n_prompt = _tokenize(vllm_server, {"prompt": "Once upon a time"})
    r = client.completions.create(
        model="tiny", prompt="Once upon a time", max_tokens=9, temperature=0, extra_body={"ignore_eos": True}
    )
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (n_prompt, 9)
    text, usage = "", None
    with client.completions.create(
        model="tiny",
        prompt="Once upon a time",
        max_tokens=9,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    ) as stream:
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            text += "".join(c.text for c in chunk.choices)
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (n_prompt, 9)
    assert text == r.choices[0].text  # greedy: the same tokens streamed and unary


def test_chat_stream_with_and_without_usage(client: openai.OpenAI, vllm_server: VLLMServer) -> None:
    n_prompt = _tokenize(vllm_server, {"messages": MESSAGES})
    usage, pieces = None, 0
    with client.chat.completions.create(
        model="tiny",
        messages=MESSAGES,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    ) as stream:
        for chunk in stream:
            if chunk.usage is not None:
                assert chunk.choices == []
                usage = chunk.usage
            pieces += sum(1 for c in chunk.choices if c.delta.content)
    assert pieces >= 1
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        n_prompt,
        8,
        n_prompt + 8,
    )
    # a client that did not ask for usage gets none (the gateway asked vLLM for it, and keeps it for accounting)
    with client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=8, stream=True, extra_body={"ignore_eos": True}
    ) as stream:
        assert all(chunk.usage is None for chunk in stream)


def test_lora_adapter_as_its_own_model_name(client: openai.OpenAI, vllm_server: VLLMServer) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="support-v1", messages=MESSAGES, max_tokens=8, temperature=0, extra_body={"ignore_eos": True}
    )
    r = raw.parse()
    assert raw.headers["x-pointsman-model"] == vllm_server.lora  # sent upstream as the adapter
    assert r.model == vllm_server.lora
    base = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=8, temperature=0, extra_body={"ignore_eos": True}
    )
    assert r.usage is not None and r.usage.completion_tokens == 8
    assert base.choices[0].message.content != r.choices[0].message.content  # the adapter changes the output
    listed = {m.id for m in client.models.list()}
    assert {"tiny", "support-v1"} <= listed


def test_vllm_400_passes_through_in_openai_shape(client: openai.OpenAI) -> None:
    # beyond --max-model-len 256: vLLM's 400, unary and streamed
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as ei:
            client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=5000, stream=stream)
        err = ei.value
        assert err.status_code == 400
        body = err.body
        assert isinstance(body, dict) and isinstance(body.get("message"), str)
        assert "context" in body["message"].lower() or "max" in body["message"].lower()
        assert err.response.headers["x-pointsman-backend"] == "vllm"


def test_vllm_404_passes_through_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as ei:
        client.chat.completions.create(model="ghost", messages=MESSAGES, max_tokens=4)
    body = ei.value.body
    assert isinstance(body, dict) and "no-such-model" in str(body.get("message"))
    assert ei.value.response.headers["x-pointsman-backend"] == "vllm"


# -- client disconnect stops generation on the vLLM side -------------------------------------------------------
def test_client_disconnect_stops_generation(
    gateway: RunningGateway, vllm_server: VLLMServer, admin: httpx.Client
) -> None:
    n_streams, max_tokens = 6, 230
    body = {
        "model": "tiny",
        "messages": MESSAGES,
        "max_tokens": max_tokens,
        "stream": True,
        "ignore_eos": True,
    }
    budget = n_streams * max_tokens

    async def attempt() -> tuple[float, float, float, float, float] | None:
        """Open the streams, drop the connections mid-stream, wait until vLLM runs nothing. Returns (start time,
        seconds until vLLM ran nothing, tokens left when the client left, tokens generated after, streams vLLM
        ran to their end after the client left), or None when the client did not leave in the middle of every
        stream (one had ended, or all were nearly done: a starved test process on a busy machine)."""
        _settled_counters(vllm_server)
        started = time.time()
        _, gen0, _ = _vllm_counters(vllm_server)
        finished0 = _finished(vllm_server)
        async with aiohttp.ClientSession(headers={"authorization": f"Bearer {KEY}"}) as s:
            resps: list[aiohttp.ClientResponse] = []

            async def open_one() -> None:
                r = await s.post(gateway.base_url + "/chat/completions", json=body)
                resps.append(r)
                assert r.status == 200
                first = await r.content.readany()  # generation has started
                # (an error event, not a token: the tiny model's random text may say "error")
                assert first and b'data: {"error"' not in first, first[:300]

            try:
                # All at once, so that vLLM runs them in one batch and each has about the same share of the
                # budget left when the client leaves (opened one after another, the first could be a few
                # tokens from its end by the time the last started, and finish before its abort arrives).
                await asyncio.gather(*(open_one() for _ in range(n_streams)))
            finally:
                for r in resps:
                    r.close()  # the client goes away mid-stream
        # vLLM's state read once the client has left (read before, a test process starved in between would see
        # streams that end before it leaves as cut off)
        t_closed = time.monotonic()
        _, gen_close, _ = _vllm_counters(vllm_server)
        ended_before = _finished(vllm_server) - finished0
        left = budget - (gen_close - gen0)
        if ended_before > 0 or left < budget / 4:
            return None
        while True:
            _, gen, running_now = _vllm_counters(vllm_server)
            if running_now == 0:
                ended_after = _finished(vllm_server) - finished0
                return started, time.monotonic() - t_closed, left, gen - gen_close, ended_after
            assert time.monotonic() - t_closed < 10, "vLLM kept generating after the client left"
            await asyncio.sleep(0.05)

    for _ in range(4):
        got = asyncio.run(attempt())
        if got is not None:
            break
    assert got is not None, "no attempt left in the middle of every stream (each time one had ended)"
    since, stopped_after_s, left, after, ended_after = got
    print(
        f"disconnect: {left:g} tokens left, {after:g} generated after the client left, vLLM idle "
        f"{stopped_after_s * 1000:.0f} ms later"
    )
    # vLLM stops within a few engine steps instead of generating the rest of the budget, for every stream
    assert ended_after == 0, f"vLLM ran {ended_after:g} streams to their end after the client left"
    assert after < left / 2, (after, left)
    assert stopped_after_s < 2.0
    # the gateway accounted every stream as cancelled, with the tokens streamed before the disconnect
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        by_outcome = admin.get("/admin/spend", params={"group_by": "outcome", "from": str(since)}).json()[
            "data"
        ]
        counts = {d["outcome"]: d["requests"] for d in by_outcome}
        if sum(counts.values()) >= n_streams:
            break
        time.sleep(0.2)
    assert counts == {"cancelled": n_streams}, counts
    (cancelled,) = by_outcome
    assert cancelled["input_tokens"] > 0 and 0 < cancelled["output_tokens"] < budget, cancelled


# -- accounting matches vLLM's own counters ----------------------------------------------------------------------
def _metric_sum(text: str, name: str, **labels: str) -> float:
    s = parse_samples(text, (name,))
    return total(s[name], **labels)


def test_accounting_matches_vllm_metrics_exactly(
    gateway: RunningGateway, vllm_server: VLLMServer, admin: httpx.Client
) -> None:
    p0, g0 = _settled_counters(vllm_server)
    m0 = httpx.get(gateway.url + "/metrics").text
    since = time.time() - 1
    with openai.OpenAI(base_url=gateway.base_url, api_key=ACCT_KEY, max_retries=0, timeout=60) as c:
        c.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=7)
        c.chat.completions.create(model="support-v1", messages=MESSAGES, max_tokens=5, temperature=0.7)
        c.completions.create(model="tiny", prompt=["one prompt", "and another"], max_tokens=6)  # batched
        with c.chat.completions.create(
            model="tiny",
            messages=MESSAGES,
            max_tokens=11,
            stream=True,
            stream_options={"include_usage": True},
        ) as st:
            for _ in st:
                pass
        with c.chat.completions.create(
            model="support-v1", messages=MESSAGES, max_tokens=10, stream=True
        ) as st:
            for _ in st:  # no usage asked: the gateway still gets it from vLLM
                pass
        n2_prompt = 0
        with c.completions.create(
            model="tiny",
            prompt="abc def",
            max_tokens=13,
            stream=True,
            n=2,
            stream_options={"include_usage": True},
        ) as st:
            for chunk in st:
                if chunk.usage is not None:
                    n2_prompt = chunk.usage.prompt_tokens
    p1, g1 = _settled_counters(vllm_server)
    vllm_prompt, vllm_gen = p1 - p0, g1 - g0
    assert vllm_prompt > 0 and vllm_gen > 0 and n2_prompt > 0
    # vLLM runs n=2 as two sequences and counts the prompt once per sequence in vllm:prompt_tokens_total,
    # while usage (what the client is billed, as OpenAI does) counts it once.
    vllm_prompt -= n2_prompt

    # the ledger (one row per request)
    doc = admin.get("/admin/spend", params={"key": "acct", "from": str(since)}).json()
    tot = doc["total"]
    assert tot["requests"] == 6 and tot["estimated_requests"] == 0 and tot["failed_requests"] == 0
    assert (tot["input_tokens"], tot["output_tokens"]) == (vllm_prompt, vllm_gen)

    # the Prometheus metrics
    m1 = httpx.get(gateway.url + "/metrics").text
    name = "gen_ai_client_token_usage_sum"
    for kind, expected in (("input", vllm_prompt), ("output", vllm_gen)):
        got = _metric_sum(m1, name, team="ledger", gen_ai_token_type=kind) - _metric_sum(
            m0, name, team="ledger", gen_ai_token_type=kind
        )
        assert got == expected, kind


# -- runtime LoRA through the admin API --------------------------------------------------------------------------
def test_admin_loads_an_adapter_everywhere_and_registers_it(
    client: openai.OpenAI, admin: httpx.Client, vllm_server: VLLMServer
) -> None:
    adapter = "tiny-lora-gw"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="support-v2", messages=MESSAGES, max_tokens=4)
    r = admin.post(
        "/admin/backends/vllm/adapters",
        json={"name": adapter, "path": vllm_server.lora_path, "model": "support-v2"},
    )
    assert r.status_code == 201, r.text
    assert [e["changed"] for e in r.json()["endpoints"]] == [True]
    try:
        # routable at once, no restart
        raw = client.chat.completions.with_raw_response.create(
            model="support-v2",
            messages=MESSAGES,
            max_tokens=6,
            temperature=0,
            extra_body={"ignore_eos": True},
        )
        assert raw.parse().model == adapter and raw.headers["x-pointsman-model"] == adapter
        found = admin.get("/admin/backends/vllm/models").json()
        by_id = {m["id"]: m for m in found["models"]}
        assert by_id[adapter]["kind"] == "adapter" and by_id[adapter]["parent"] == vllm_server.model
        assert by_id[adapter]["registered_as"] == ["support-v2"]
        assert by_id[vllm_server.lora]["registered_as"] == ["support-v1"]
        assert by_id["tiny"]["kind"] == "base" and by_id["tiny"]["max_model_len"] == 256
        assert found["unserved"] == ["ghost"] and found["consistent"]
        # a bad path is vLLM's 404, reported per endpoint, and nothing is registered
        bad = admin.post("/admin/backends/vllm/adapters", json={"name": "nope", "path": "/nonexistent"})
        assert bad.status_code == 404 and bad.json()["error"]["endpoints"][0]["status"] == 404
        assert "nope" not in admin.get("/admin/models").json()["models"]
    finally:
        r = admin.delete(f"/admin/backends/vllm/adapters/{adapter}")
    assert r.status_code == 200, r.text
    assert r.json()["unregistered"] == ["support-v2"]
    ids = {m["id"] for m in admin.get("/admin/backends/vllm/models").json()["models"]}
    assert adapter not in ids
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="support-v2", messages=MESSAGES, max_tokens=4)


# -- self-hosted pricing from measurement --------------------------------------------------------------------------
def test_price_is_measured_from_vllm_metrics(
    client: openai.OpenAI, admin: httpx.Client, gateway: RunningGateway
) -> None:
    for _ in range(3):  # make sure the window holds traffic
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=20)
    deadline = time.monotonic() + 20
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        doc = admin.get("/admin/backends/vllm/pricing").json()
        if doc.get("measured"):
            break
        time.sleep(0.25)
    m = doc["measured"]
    assert m is not None, doc
    assert m["tokens_per_s"] > 0 and m["generation_tokens"] > 0 and m["endpoints_scraped"] == 1
    tps = Decimal(str(m["tokens_per_s_per_endpoint"]))
    prices = {p["model"]: p for p in doc["models"]}
    for model in ("tiny", "support-v1"):
        assert prices[model]["source"] == "gpu"
        per_mtok = Decimal(prices[model]["cost_per_mtok_usd"])
        assert abs(per_mtok - GPU_HOUR / 3600 / tps * 1_000_000) / per_mtok < Decimal("1e-9")
    gauge = [
        ln
        for ln in httpx.get(gateway.url + "/metrics").text.splitlines()
        if ln.startswith('pointsman_selfhosted_cost_per_mtok_usd{model="support-v1"}')
    ]
    assert gauge and float(gauge[0].split()[-1]) > 0
    spend = admin.get("/admin/spend").json()["self_hosted_pricing"]
    assert spend[0]["backend"] == "vllm" and spend[0]["measured"]["generation_tokens_per_s"] > 0
    # a request's cost is its tokens at that price (retry if a new measurement landed in between)
    for _ in range(5):
        before = admin.get("/admin/backends/vllm/pricing").json()["models"]
        raw = client.chat.completions.with_raw_response.create(model="tiny", messages=MESSAGES, max_tokens=5)
        after = admin.get("/admin/backends/vllm/pricing").json()["models"]
        if before == after:
            break
    price = Decimal(next(p for p in after if p["model"] == "tiny")["cost_per_mtok_usd"]) / 1_000_000
    tokens = int(raw.headers["x-pointsman-tokens-input"]) + int(raw.headers["x-pointsman-tokens-output"])
    assert Decimal(raw.headers["x-pointsman-cost-usd"]) == pytest.approx(tokens * price, rel=Decimal("1e-9"))


# -- the printed production command parses with the real vllm serve parser -----------------------------------
_VENV_PYTHON = _cache_root() / "venv" / "bin" / "python"
_CHECK = (
    "import json, sys\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "from vllm.entrypoints.cli.serve import ServeSubcommand\n"
    "top = FlexibleArgumentParser(prog='vllm')\n"
    "ServeSubcommand().subparser_init(top.add_subparsers(dest='sub'))\n"
    "a = top.parse_args(json.loads(sys.argv[1]))\n"
    "print(json.dumps({'model': a.model_tag, 'tp': a.tensor_parallel_size, 'names': a.served_model_name,\n"
    "  'loras': [m.name for m in a.lora_modules], 'lora': a.enable_lora, 'len': a.max_model_len}))\n"
)


def _start_serve_command_check() -> subprocess.Popen[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(
            [
                "vllm",
                "command",
                "meta-llama/Llama-3.1-8B-Instruct",
                "--lora",
                "support=/adapters/support",
                "--lora",
                "triage=/adapters/triage",
                "--tensor-parallel",
                "2",
                "--max-model-len",
                "8192",
                "--format",
                "json",
            ]
        )
    assert rc == 0
    cmd = json.loads(out.getvalue())["command"]
    return subprocess.Popen(
        [str(_VENV_PYTHON), "-c", _CHECK, json.dumps(cmd[1:])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_printed_serve_command_is_accepted_by_vllm(serve_command_check: subprocess.Popen[str] | None) -> None:
    proc = serve_command_check or _start_serve_command_check()
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-2000:]
    parsed = json.loads(stdout.strip().splitlines()[-1])
    assert parsed == {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "tp": 2,
        "names": ["Llama-3.1-8B-Instruct"],
        "loras": ["support", "triage"],
        "lora": True,
        "len": 8192,
    }
