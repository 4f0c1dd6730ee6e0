"""Every request costs usage x price, and the header, the ledger and /metrics agree on it (through a running
gateway, with the OpenAI SDK and fake upstreams that report known usage)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from accounting.price_table import litellm_table_path
from accounting.tokens import Encodings
from tests.accounting.observe import cost, ledger_rows, metric_sum, scrape, spend, wait_for
from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ThreadedServer
from tests.gateway_runner import RunningGateway

MSG = [{"role": "user", "content": "Summarise the quarterly report in three sentences, please."}]
OVERRIDE = {"input_per_mtok": "2.50", "output_per_mtok": "10.00", "cached_input_per_mtok": "1.25"}
ALIASES = {  # two configured models on one backend and upstream model, each with a price of its own
    "team-a-4o": {"input_per_mtok": "1", "output_per_mtok": "2", "cached_input_per_mtok": "0.5"},
    "team-b-4o": {"input_per_mtok": "50", "output_per_mtok": "60", "cached_input_per_mtok": "25"},
}


def table_price(model: str) -> tuple[str, str, str]:
    """gpt-4o-mini's price per million tokens straight from litellm's JSON (what the gateway must use)."""
    path = litellm_table_path()
    assert path is not None
    e = json.loads(path.read_text())[model]
    mt = Decimal(1_000_000)
    inp = Decimal(str(e["input_cost_per_token"])) * mt
    return (
        str(inp),
        str(Decimal(str(e["output_cost_per_token"])) * mt),
        str(Decimal(str(e.get("cache_read_input_token_cost", e["input_cost_per_token"]))) * mt),
    )


class FakeVLLM:
    """A vLLM-like server that reports no usage and counts tokens with ``/tokenize`` (1 token per word)."""

    text = "one two three four five six"

    def __init__(self) -> None:
        self.tokenize_calls: list[dict[str, Any]] = []
        self.server = ThreadedServer(self.app)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/tokenize", self.tokenize)
        return app

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.text},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    async def tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.tokenize_calls.append(body)
        if "messages" in body:
            n = sum(len(str(m.get("content", "")).split()) + 4 for m in body["messages"])
        else:
            n = len(str(body["prompt"]).split())
        return web.json_response({"count": n, "max_model_len": 4096, "tokens": list(range(n))})


@pytest.fixture
def vllm() -> Iterator[FakeVLLM]:
    f = FakeVLLM()
    f.server.start()
    yield f
    f.server.stop()


@pytest.fixture
def gw(upstream: FakeOpenAI, vllm: FakeVLLM, tmp_path: Path) -> Iterator[RunningGateway]:
    upstream.prompt_tokens, upstream.completion_tokens = 1234, 567
    upstream.chunks, upstream.chunk_delay = 8, 0.0
    cfg = basic_config(
        upstream.url,
        server={"data_dir": str(tmp_path)},
        accounting={
            "task_allowlist": ["summarize"],
            "pricing": {
                "gpt-4o": OVERRIDE,
                "gpt-4o-mini-no_usage": {"input_per_mtok": "0.15", "output_per_mtok": "0.60"},
                "llama": {"throughput_tokens_per_s": 2000},
                **ALIASES,
            },
        },
    )
    cfg["models"].update(
        {  # type: ignore[attr-defined]
            "gpt-4o": {"backend": "up"},
            "gpt-4o-mini-no_usage": {"backend": "up"},
            "llama": {"backend": "gpu", "upstream_model": "meta-llama/Llama-3.1-8B-Instruct"},
            **{name: {"backend": "up", "upstream_model": "gpt-4.1"} for name in ALIASES},
        }
    )
    cfg["backends"]["gpu"] = {  # type: ignore[index]
        "type": "vllm",
        "endpoints": [vllm.server.url + "/v1"],
        "gpu_hour_usd": "3.60",
        "gpu_count": 2,
    }
    with RunningGateway(cfg) as g:
        g.data_dir = tmp_path  # type: ignore[attr-defined]
        yield g


@pytest.fixture
def client(gw: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
        yield c


def one_row(gw: RunningGateway, rid: str) -> dict[str, Any]:
    rows = wait_for(lambda: ledger_rows(gw.data_dir, "request_id = ?", (rid,)))  # type: ignore[attr-defined]
    assert len(rows) == 1, rows
    return rows[0]


def cost_metric(gw: RunningGateway, **labels: str) -> float:
    return metric_sum(scrape(gw.url), "pointsman_cost_usd_total", **labels)


def test_non_streaming_cost_from_litellm_table(gw: RunningGateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MSG,
        extra_headers={"x-request-id": "unary-1", "x-pointsman-task": "summarize"},
    )
    expected = cost(1234, 567, 0, *table_price("gpt-4o-mini"))
    assert Decimal(raw.headers["x-pointsman-cost-usd"]) == expected
    assert raw.headers["x-pointsman-tokens-input"] == "1234"
    assert raw.headers["x-pointsman-tokens-output"] == "567"
    row = one_row(gw, "unary-1")
    assert Decimal(row["cost_usd"]) == expected
    assert (row["input_tokens"], row["output_tokens"], row["estimated"], row["priced"]) == (1234, 567, 0, 1)
    assert (row["key"], row["team"], row["task"], row["route"], row["backend"]) == (
        "app",
        "search",
        "summarize",
        "default",
        "up",
    )
    assert cost_metric(gw, task="summarize", hosting="frontier", shadow="false") == pytest.approx(
        float(expected), abs=1e-12
    )
    samples = scrape(gw.url)
    assert metric_sum(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="input") == 1234
    assert metric_sum(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="output") == 567
    assert metric_sum(samples, "pointsman_requests_total", outcome="ok", task="summarize", team="search") == 1


def test_streaming_cost_uses_stream_usage_and_override(gw: RunningGateway, client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=MSG, stream=True, extra_headers={"x-request-id": "stream-1"}
        )
    )
    assert all(c.choices for c in chunks)  # the usage chunk the gateway asked for is not shown
    expected = cost(
        1234,
        567,
        0,
        OVERRIDE["input_per_mtok"],
        OVERRIDE["output_per_mtok"],
        OVERRIDE["cached_input_per_mtok"],
    )
    row = one_row(gw, "stream-1")
    assert Decimal(row["cost_usd"]) == expected
    assert (row["stream"], row["estimated"], row["outcome"]) == (1, 0, "ok")
    assert row["ttft_s"] is not None and row["ttft_s"] <= row["latency_s"]
    assert cost_metric(gw, requested_model="gpt-4o") == pytest.approx(float(expected), abs=1e-12)
    samples = scrape(gw.url)
    assert metric_sum(samples, "gen_ai_server_time_to_first_token_seconds_count") == 1
    assert metric_sum(samples, "gen_ai_server_time_per_output_token_seconds_count") == 1


def test_two_models_on_one_upstream_model_are_each_charged_their_own_price(
    gw: RunningGateway, client: openai.OpenAI
) -> None:
    for name, price in ALIASES.items():
        raw = client.chat.completions.with_raw_response.create(
            model=name, messages=MSG, extra_headers={"x-request-id": f"alias-{name}"}
        )
        expected = cost(
            1234, 567, 0, price["input_per_mtok"], price["output_per_mtok"], price["cached_input_per_mtok"]
        )
        assert Decimal(raw.headers["x-pointsman-cost-usd"]) == expected, name
        row = one_row(gw, f"alias-{name}")
        assert (row["upstream_model"], Decimal(row["cost_usd"])) == ("gpt-4.1", expected), name


def test_the_pricing_report_shows_each_configured_models_own_price(gw: RunningGateway) -> None:
    from tests.conftest import ADMIN_KEY

    report = httpx.get(gw.url + "/admin/pricing", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()
    items = {i["model"]: i for i in report["data"]}
    for name, price in ALIASES.items():
        standard = items[name]["per_mtok"]["standard"]
        assert (standard["input"], standard["output"]) == (price["input_per_mtok"], price["output_per_mtok"])
        assert items[name]["from"] == f"accounting.pricing[{name!r}] over price table entry 'gpt-4.1'"


def test_cached_tokens_priced_at_cached_rate(
    gw: RunningGateway, client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.cached_tokens = 1000
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MSG, extra_headers={"x-request-id": "cached-1"}
    )
    list(
        client.chat.completions.create(
            model="gpt-4o", messages=MSG, stream=True, extra_headers={"x-request-id": "cached-2"}
        )
    )
    expected = cost(
        1234,
        567,
        1000,
        OVERRIDE["input_per_mtok"],
        OVERRIDE["output_per_mtok"],
        OVERRIDE["cached_input_per_mtok"],
    )
    assert expected < cost(1234, 567, 0, OVERRIDE["input_per_mtok"], OVERRIDE["output_per_mtok"], "0")
    assert Decimal(raw.headers["x-pointsman-cost-usd"]) == expected
    assert raw.headers["x-pointsman-tokens-cached-input"] == "1000"
    for rid in ("cached-1", "cached-2"):
        row = one_row(gw, rid)
        assert row["cached_input_tokens"] == 1000
        assert Decimal(row["cost_usd"]) == expected
    samples = scrape(gw.url)
    assert metric_sum(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="cached_input") == 2000
    assert metric_sum(samples, "pointsman_cost_usd_total") == pytest.approx(float(2 * expected), abs=1e-12)


def o200k() -> Any:
    enc = Encodings().get("o200k_base")
    assert enc is not None, "tiktoken's o200k_base must load offline"
    return enc


def test_no_usage_upstream_is_counted_with_tiktoken(gw: RunningGateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini-no_usage", messages=MSG, extra_headers={"x-request-id": "nousage-1"}
    )
    text = raw.parse().choices[0].message.content
    assert text
    enc = o200k()
    # OpenAI's counting recipe: 3 per message + role + content, 3 to prime the reply.
    want_in = 3 + len(enc.encode("user")) + len(enc.encode(MSG[0]["content"])) + 3
    want_out = len(enc.encode(text))
    row = one_row(gw, "nousage-1")
    assert (row["input_tokens"], row["output_tokens"], row["estimated"]) == (want_in, want_out, 1)
    expected = cost(want_in, want_out, 0, "0.15", "0.60", "0.15")
    assert Decimal(row["cost_usd"]) == expected
    assert cost_metric(gw, requested_model="gpt-4o-mini-no_usage") == pytest.approx(
        float(expected), abs=1e-12
    )


def test_a_response_without_usage_is_marked_estimated_not_shown_as_cost_zero(
    gw: RunningGateway, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini-no_usage", messages=MSG, extra_headers={"x-request-id": "nousage-hdr"}
    )
    assert raw.headers["x-pointsman-usage"] == "estimated"
    assert "x-pointsman-cost-usd" not in raw.headers and "x-pointsman-tokens-input" not in raw.headers
    row = one_row(gw, "nousage-hdr")
    assert row["estimated"] == 1 and Decimal(row["cost_usd"]) > 0
    reported = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert reported.headers["x-pointsman-usage"] == "reported" and "x-pointsman-cost-usd" in reported.headers


def test_an_unpriced_models_answer_shows_no_cost_and_says_it_is_unpriced(
    gw: RunningGateway, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="fake-unlisted", messages=MSG, extra_headers={"x-request-id": "unpriced-hdr"}
    )
    assert raw.headers["x-pointsman-priced"] == "false" and "x-pointsman-cost-usd" not in raw.headers
    assert raw.headers["x-pointsman-tokens-input"] == "1234"
    row = one_row(gw, "unpriced-hdr")
    assert (row["priced"], row["input_tokens"]) == (0, 1234)


def _bad_usage_app() -> web.Application:
    """An upstream whose usage counts are strings: a usage that cannot be read."""

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        message = {"role": "assistant", "content": "Hello there"}
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": "3", "completion_tokens": "2", "total_tokens": "5"},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def test_a_usage_that_cannot_be_read_is_estimated_not_counted_as_zero(tmp_path: Path) -> None:
    srv = ThreadedServer(_bad_usage_app).start()
    try:
        with (
            RunningGateway(basic_config(srv.url + "/v1", server={"data_dir": str(tmp_path)})) as gw,
            openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as client,
        ):
            gw.data_dir = tmp_path  # type: ignore[attr-defined]
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MSG, extra_headers={"x-request-id": "bad-usage"}
            )
            assert raw.headers["x-pointsman-usage"] == "estimated"
            assert "x-pointsman-cost-usd" not in raw.headers
            row = one_row(gw, "bad-usage")
    finally:
        srv.stop()
    enc = o200k()
    want_in = 3 + len(enc.encode("user")) + len(enc.encode(MSG[0]["content"])) + 3
    assert (row["estimated"], row["input_tokens"], row["output_tokens"]) == (
        1,
        want_in,
        len(enc.encode("Hello there")),
    )
    assert Decimal(row["cost_usd"]) == cost(want_in, row["output_tokens"], 0, *table_price("gpt-4o-mini")) > 0


def test_an_estimated_responses_request_counts_its_tools(gw: RunningGateway, client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "name": "lookup_invoice",
            "description": "Find an invoice by its number and return its lines and totals.",
            "parameters": {
                "type": "object",
                "properties": {"number": {"type": "string"}},
                "required": ["number"],
            },
        }
    ]
    client.responses.create(
        model="gpt-4o-mini-no_usage",
        input="hi",
        tools=tools,
        extra_headers={"x-request-id": "resp-tools"},  # type: ignore[arg-type]
    )
    row = one_row(gw, "resp-tools")
    enc = o200k()
    sent = gw_tools_json(tools)
    assert (row["estimated"], row["input_tokens"]) == (1, len(enc.encode("hi")) + len(enc.encode(sent)))


def gw_tools_json(tools: list[dict[str, Any]]) -> str:
    """The tools as the estimator counts them: their compact JSON."""
    return json.dumps(tools, separators=(",", ":"), ensure_ascii=False)


def test_no_usage_stream_is_counted_with_tiktoken(gw: RunningGateway, client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini-no_usage",
            messages=MSG,
            stream=True,
            extra_headers={"x-request-id": "nousage-2"},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    enc = o200k()
    row = one_row(gw, "nousage-2")
    assert row["estimated"] == 1
    assert row["output_tokens"] == len(enc.encode(text))
    assert Decimal(row["cost_usd"]) == cost(
        row["input_tokens"], row["output_tokens"], 0, "0.15", "0.60", "0.15"
    )


def test_mid_stream_disconnect_still_counts_prompt_and_streamed_output(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    upstream.chunk_delay = 0.3
    got = b""
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            gw.base_url + "/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": "cut-1"},
            json={"model": "gpt-4o-mini", "messages": MSG, "stream": True},
        ) as resp,
    ):
        for chunk in resp.iter_bytes():
            got += chunk
            if got.count(b"data: ") >= 3:
                break  # hang up mid-stream
    row = one_row(gw, "cut-1")
    assert row["outcome"] == "cancelled" and row["estimated"] == 1
    enc = o200k()
    want_in = 3 + len(enc.encode("user")) + len(enc.encode(MSG[0]["content"])) + 3
    full = len(enc.encode("Hello from primary (gpt-4o-mini)"))
    assert row["input_tokens"] == want_in
    assert 1 <= row["output_tokens"] < full
    expected = cost(row["input_tokens"], row["output_tokens"], 0, *table_price("gpt-4o-mini"))
    assert Decimal(row["cost_usd"]) == expected
    samples = scrape(gw.url)
    assert metric_sum(samples, "pointsman_requests_total", outcome="cancelled") == 1
    assert metric_sum(samples, "pointsman_cost_usd_total") == pytest.approx(float(expected), abs=1e-12)


@pytest.mark.parametrize("stream", [False, True])
def test_hanging_up_before_the_first_byte_still_counts_the_prompt(
    gw: RunningGateway, upstream: FakeOpenAI, stream: bool
) -> None:
    upstream.delay = 2.0  # the upstream holds the request: the client leaves before anything comes back
    rid = f"gone-early-{stream}"
    with httpx.Client(timeout=0.4) as http, pytest.raises(httpx.ReadTimeout):
        http.post(
            gw.base_url + "/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": rid},
            json={"model": "gpt-4o-mini", "messages": MSG, "stream": stream},
        )
    row = one_row(gw, rid)
    enc = o200k()
    want_in = 3 + len(enc.encode("user")) + len(enc.encode(MSG[0]["content"])) + 3
    assert (row["outcome"], row["status"], row["estimated"], row["priced"]) == ("cancelled", 499, 1, 1)
    assert (row["input_tokens"], row["output_tokens"]) == (want_in, 0)
    assert Decimal(row["cost_usd"]) == cost(want_in, 0, 0, *table_price("gpt-4o-mini")) > 0


def test_self_hosted_priced_from_gpu_hours_and_counted_with_vllm_tokenize(
    gw: RunningGateway, client: openai.OpenAI, vllm: FakeVLLM
) -> None:
    client.chat.completions.create(model="llama", messages=MSG, extra_headers={"x-request-id": "gpu-1"})
    row = one_row(gw, "gpu-1")
    # 1 token per word (the fake's tokenizer), +4 per message: counted by the server's own /tokenize.
    want_in = len(MSG[0]["content"].split()) + 4
    want_out = len(FakeVLLM.text.split())
    assert (row["input_tokens"], row["output_tokens"], row["estimated"], row["self_hosted"]) == (
        want_in,
        want_out,
        1,
        1,
    )
    assert vllm.tokenize_calls and vllm.tokenize_calls[0]["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    per_token = Decimal("3.60") * 2 / 3600 / 2000  # gpu_hour_usd x gpus / 3600 / tokens per second
    assert Decimal(row["cost_usd"]) == (want_in + want_out) * per_token
    samples = scrape(gw.url)
    assert metric_sum(samples, "pointsman_cost_usd_total", hosting="self_hosted") == pytest.approx(
        float((want_in + want_out) * per_token), abs=1e-12
    )
    assert metric_sum(samples, "pointsman_selfhosted_cost_per_mtok_usd", model="llama") == pytest.approx(
        float(per_token * 1_000_000)
    )
    assert metric_sum(samples, "pointsman_model_unpriced", model="llama") == 0


def test_spend_api_totals_and_breakdowns_match_the_ledger(gw: RunningGateway, client: openai.OpenAI) -> None:
    for i, (model, task) in enumerate(
        [("gpt-4o-mini", "summarize"), ("gpt-4o", "summarize"), ("gpt-4o", "chat")]
    ):
        client.chat.completions.create(
            model=model, messages=MSG, extra_headers={"x-pointsman-task": task, "x-request-id": f"sp-{i}"}
        )
    r = spend(gw.url, group_by="task,model")
    assert r.status_code == 200, r.text
    doc = r.json()
    by = {(d["task"], d["model"]): d for d in doc["data"]}
    mini = cost(1234, 567, 0, *table_price("gpt-4o-mini"))
    big = cost(1234, 567, 0, OVERRIDE["input_per_mtok"], OVERRIDE["output_per_mtok"], "0")
    assert Decimal(by[("summarize", "gpt-4o-mini")]["cost_usd"]) == mini
    assert Decimal(by[("summarize", "gpt-4o")]["cost_usd"]) == big
    assert by[("chat", "gpt-4o")]["requests"] == 1
    assert Decimal(doc["total"]["cost_usd"]) == mini + 2 * big
    assert doc["total"]["input_tokens"] == 3 * 1234
    # the metrics agree with the ledger to the cent (here: to the nano-dollar)
    assert metric_sum(scrape(gw.url), "pointsman_cost_usd_total") == pytest.approx(
        float(mini + 2 * big), abs=1e-9
    )
    # CSV, per day, filtered, time-bounded
    csv_text = spend(gw.url, group_by="day,backend", format="csv").text
    head, line = csv_text.strip().splitlines()
    assert head.startswith("day,backend,requests")
    assert line.startswith(time.strftime("%Y-%m-%d", time.gmtime()) + ",up,3,")
    assert spend(gw.url, group_by="key", task="chat").json()["total"]["requests"] == 1
    assert spend(gw.url, to="2000-01-01").json()["total"]["requests"] == 0
    assert spend(gw.url, group_by="nope").status_code == 400


def test_spend_filters_by_requested_model_and_refuses_a_filter_it_does_not_know(
    gw: RunningGateway, client: openai.OpenAI
) -> None:
    for model in ("gpt-4o-mini", "alias"):  # alias: gpt-4o-mini upstream, asked for by another name
        client.chat.completions.create(model=model, messages=MSG)
    assert spend(gw.url, model="gpt-4o-mini").json()["total"]["requests"] == 2
    assert spend(gw.url, requested_model="alias").json()["total"]["requests"] == 1
    r = spend(gw.url, modle="gpt-4o-mini")
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["param"], err["code"]) == ("modle", "invalid_value") and "requested_model" in err["message"]


def test_spend_requires_admin_key(gw: RunningGateway) -> None:
    r = httpx.get(gw.url + "/admin/spend", headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert r.status_code == 403
    assert httpx.get(gw.url + "/admin/spend").status_code == 401


def test_cli_spend_reads_the_gateway_and_the_ledger_file(
    gw: RunningGateway, client: openai.OpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    client.chat.completions.create(
        model="gpt-4o", messages=MSG, extra_headers={"x-pointsman-task": "summarize"}
    )
    expected = cost(1234, 567, 0, OVERRIDE["input_per_mtok"], OVERRIDE["output_per_mtok"], "0")
    from tests.conftest import ADMIN_KEY

    assert main(["spend", "--url", gw.url, "--admin-key", ADMIN_KEY, "-g", "task,model", "-f", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["task"], r["model"], Decimal(r["cost_usd"])) for r in rows] == [
        ("summarize", "gpt-4o", expected)
    ]
    wait_for(lambda: ledger_rows(gw.data_dir))  # type: ignore[attr-defined]
    db = str(gw.data_dir / "ledger.sqlite3")  # type: ignore[attr-defined]
    assert main(["spend", "--ledger", db, "-g", "team", "-f", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("team,requests") and out[1].startswith("search,1,")
    assert main(["spend", "--ledger", db, "-g", "day"]) == 0
    table = capsys.readouterr().out
    assert "cost_usd" in table and "1 requests" in table
    assert main(["spend", "--ledger", db, "-g", "nope"]) == 2
