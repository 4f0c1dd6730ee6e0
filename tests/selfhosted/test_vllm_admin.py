"""vLLM admin operations on a two-endpoint fleet of fake vLLM servers: discovery, LoRA load/unload (all or
nothing), the fleet throughput meter, and the same through the gateway's admin API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from gateway.cli import main
from serving.config import VLLMBackendConfig
from serving.http_backend import OpenAIHTTPBackend
from serving.vllm.admin import VLLMAdminError, discover, load_adapter, server_root, unload_adapter
from serving.vllm.fleet import FleetMeter
from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.fakes.vllm_lora import FakeVLLMLora
from tests.gateway_runner import RunningGateway

MSG: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def fleet() -> Iterator[tuple[FakeVLLMLora, FakeVLLMLora]]:
    a = FakeVLLMLora(name="a").start()
    b = FakeVLLMLora(name="b").start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
async def backend(fleet: tuple[FakeVLLMLora, FakeVLLMLora]) -> AsyncIterator[OpenAIHTTPBackend]:
    cfg = VLLMBackendConfig(type="vllm", endpoints=[fleet[0].url, fleet[1].url])
    be = OpenAIHTTPBackend("fleet", cfg)
    await be.start()
    yield be
    await be.close()


def test_server_root() -> None:
    assert server_root("http://h:8000/v1") == "http://h:8000"
    assert server_root("http://h:8000") == "http://h:8000"


async def test_discover_merges_endpoints_and_flags_disagreement(
    fleet: tuple[FakeVLLMLora, FakeVLLMLora], backend: OpenAIHTTPBackend
) -> None:
    a, b = fleet
    a.adapters["only-a"] = "/adapters/a1"
    d = await discover(backend)
    assert [m.id for m in d.models] == ["base", "only-a"]
    base, only_a = d.models
    assert not base.is_adapter and base.max_model_len == 256
    assert only_a.parent == "base" and only_a.endpoints == [a.url]
    assert base.endpoints == [a.url, b.url]
    assert not d.consistent
    b.adapters["only-a"] = "/adapters/a1"
    assert (await discover(backend)).consistent


async def test_discover_reports_an_unreachable_endpoint() -> None:
    cfg = VLLMBackendConfig(type="vllm", endpoints=["http://127.0.0.1:9/v1"], connect_timeout_s=1)
    be = OpenAIHTTPBackend("dead", cfg)
    await be.start()
    try:
        d = await discover(be, timeout_s=2)
    finally:
        await be.close()
    assert d.models == [] and "unreachable" in d.errors["http://127.0.0.1:9/v1"]


async def test_load_and_unload_on_every_endpoint(
    fleet: tuple[FakeVLLMLora, FakeVLLMLora], backend: OpenAIHTTPBackend
) -> None:
    a, b = fleet
    results = await load_adapter(backend, "a1", "/adapters/a1")
    assert [r.changed for r in results] == [True, True]
    assert a.adapters == b.adapters == {"a1": "/adapters/a1"}
    # loading again is a no-op that succeeds; replace reloads in place
    again = await load_adapter(backend, "a1", "/adapters/a1")
    assert [(r.ok, r.changed) for r in again] == [(True, False), (True, False)]
    await load_adapter(backend, "a1", "/adapters/a2", replace=True)
    assert a.load_calls[-1]["load_inplace"] is True and a.adapters["a1"] == "/adapters/a2"
    out = await unload_adapter(backend, "a1")
    assert [r.changed for r in out] == [True, True] and a.adapters == b.adapters == {}
    # unloading what is not there counts as done
    out = await unload_adapter(backend, "a1")
    assert [(r.ok, r.changed) for r in out] == [(True, False), (True, False)]


async def test_partial_load_failure_rolls_back(
    fleet: tuple[FakeVLLMLora, FakeVLLMLora], backend: OpenAIHTTPBackend
) -> None:
    a, b = fleet
    b.valid_paths = set()  # b cannot read the adapter
    with pytest.raises(VLLMAdminError) as ei:
        await load_adapter(backend, "a1", "/adapters/a1")
    err = ei.value
    assert err.status == 404 and "rolled back" in err.message
    assert [r.ok for r in err.results] == [True, False]
    assert a.adapters == {} and a.unload_calls == [{"lora_name": "a1"}]


async def test_server_without_runtime_lora_updates(
    fleet: tuple[FakeVLLMLora, FakeVLLMLora], backend: OpenAIHTTPBackend
) -> None:
    for f in fleet:
        f.lora_disabled = True
    with pytest.raises(VLLMAdminError) as ei:
        await load_adapter(backend, "a1", "/adapters/a1")
    assert ei.value.status == 404 and "Not Found" in ei.value.message


async def test_bad_adapter_names_are_refused(backend: OpenAIHTTPBackend) -> None:
    for bad in ("", "-x", "a b", "x" * 200):
        with pytest.raises(VLLMAdminError):
            await load_adapter(backend, bad, "/adapters/a1")


async def test_fleet_meter_sums_endpoints_over_the_window(
    fleet: tuple[FakeVLLMLora, FakeVLLMLora], backend: OpenAIHTTPBackend
) -> None:
    a, b = fleet
    now = [1000.0]
    meter = FleetMeter(backend, window_s=60, clock=lambda: now[0])
    a.generation_tokens, b.generation_tokens = 1000, 50_000
    a.prompt_tokens, b.prompt_tokens = 10, 20
    first = await meter.scrape()
    assert first.window_s == 0 and first.total_tps == 0
    now[0] += 10
    a.generation_tokens += 500  # 50/s
    b.generation_tokens += 1500  # 150/s
    a.prompt_tokens += 100  # 10/s
    a.running, b.waiting = 3, 4
    fl = await meter.scrape()
    assert (fl.generation_tps, fl.prompt_tps, fl.total_tps) == (200.0, 10.0, 210.0)
    assert (fl.generation_tokens, fl.prompt_tokens, fl.window_s) == (2000.0, 100.0, 10.0)
    assert (fl.running, fl.waiting, fl.scraped, fl.errors) == (3.0, 4.0, 2, {})
    # b stops answering: its counters leave the sums; back again, it starts a new run
    b.metrics_status = 500
    now[0] += 10
    a.generation_tokens += 500
    fl = await meter.scrape()
    assert fl.scraped == 1 and "HTTP 500" in fl.errors[b.url]
    assert fl.generation_tps == pytest.approx(50.0)


def _gateway_config(fleet: tuple[FakeVLLMLora, FakeVLLMLora], **backend: Any) -> dict[str, Any]:
    return {
        "admin_key": ADMIN_KEY,
        "backends": {
            "fleet": {"type": "vllm", "endpoints": [fleet[0].url, fleet[1].url], **backend},
            "frontier": {"type": "openai", "base_url": fleet[0].url},
        },
        "models": {"base": {"backend": "fleet"}, "gpt-x": {"backend": "frontier"}},
        "routes": [
            {"name": "support", "match": {"tags": {"task": "support"}}, "targets": [{"model": "gpt-x"}]}
        ],
        "keys": [{"name": "app", "key": CLIENT_KEY, "team": "search"}],
    }


@pytest.fixture
def admin_gw(fleet: tuple[FakeVLLMLora, FakeVLLMLora]) -> Iterator[tuple[RunningGateway, httpx.Client]]:
    with (
        RunningGateway(_gateway_config(fleet)) as gw,
        httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as admin,
    ):
        yield gw, admin


def test_admin_adapter_lifecycle(
    fleet: tuple[FakeVLLMLora, FakeVLLMLora], admin_gw: tuple[RunningGateway, httpx.Client]
) -> None:
    gw, admin = admin_gw
    a, b = fleet
    with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="support-v2", messages=MSG)
        r = admin.post(
            "/admin/backends/fleet/adapters",
            json={"name": "a1", "path": "/adapters/a1", "model": "support-v2"},
        )
        assert r.status_code == 201, r.text
        doc = r.json()
        assert doc["model"] == "support-v2" and [e["changed"] for e in doc["endpoints"]] == [True, True]
        assert a.adapters == b.adapters == {"a1": "/adapters/a1"}
        # routable at once, sent upstream as the adapter name
        raw = client.chat.completions.with_raw_response.create(model="support-v2", messages=MSG)
        assert raw.headers["x-pointsman-model"] == "a1"
        assert a.requests[-1].body["model"] == "a1" or b.requests[-1].body["model"] == "a1"
        # it is in the stored policy (survives restarts, other replicas follow)
        assert admin.get("/admin/models/support-v2").json()["model"] == {"backend": "fleet", "adapter": "a1"}
        models = admin.get("/admin/backends/fleet/models").json()
        assert models["consistent"] is True
        by_id = {m["id"]: m for m in models["models"]}
        assert by_id["a1"]["kind"] == "adapter" and by_id["a1"]["registered_as"] == ["support-v2"]
        assert by_id["base"]["registered_as"] == ["base"] and models["unserved"] == []

        r = admin.delete("/admin/backends/fleet/adapters/a1")
        assert r.status_code == 200, r.text
        assert r.json()["unregistered"] == ["support-v2"] and a.adapters == b.adapters == {}
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="support-v2", messages=MSG)


def test_admin_load_failure_is_reported_per_endpoint_and_registers_nothing(
    fleet: tuple[FakeVLLMLora, FakeVLLMLora], admin_gw: tuple[RunningGateway, httpx.Client]
) -> None:
    _, admin = admin_gw
    a, b = fleet
    b.valid_paths = set()
    r = admin.post("/admin/backends/fleet/adapters", json={"name": "a1", "path": "/adapters/a1"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "adapter_error" and [e["ok"] for e in err["endpoints"]] == [True, False]
    assert a.adapters == {} and "a1" not in admin.get("/admin/models").json()["models"]


def test_admin_refuses_bad_requests(admin_gw: tuple[RunningGateway, httpx.Client]) -> None:
    _, admin = admin_gw
    assert admin.post("/admin/backends/nope/adapters", json={"name": "a1", "path": "/x"}).status_code == 404
    r = admin.post("/admin/backends/frontier/adapters", json={"name": "a1", "path": "/x"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "not_vllm"
    r = admin.post("/admin/backends/fleet/adapters", json={"name": "a1"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "path"
    r = admin.post(
        "/admin/backends/fleet/adapters", json={"name": "a1", "path": "/adapters/a1", "model": "gpt-x"}
    )
    assert r.status_code == 409
    assert admin.get("/admin/backends/fleet/models", headers={"authorization": "Bearer x"}).status_code == 401


def test_admin_registration_that_fails_validation_unloads_again(
    fleet: tuple[FakeVLLMLora, FakeVLLMLora], admin_gw: tuple[RunningGateway, httpx.Client]
) -> None:
    _, admin = admin_gw
    r = admin.post(
        "/admin/backends/fleet/adapters",
        json={"name": "a1", "path": "/adapters/a1", "shadow": {"route": "no-such-route"}},
    )
    assert r.status_code == 404, r.text
    assert fleet[0].adapters == fleet[1].adapters == {}


def test_admin_delete_refused_while_a_route_uses_the_model(
    fleet: tuple[FakeVLLMLora, FakeVLLMLora], admin_gw: tuple[RunningGateway, httpx.Client]
) -> None:
    _, admin = admin_gw
    assert (
        admin.post("/admin/backends/fleet/adapters", json={"name": "a1", "path": "/adapters/a1"}).status_code
        == 201
    )
    r = admin.put(
        "/admin/routes/support", json={"match": {"tags": {"task": "support"}}, "targets": [{"model": "a1"}]}
    )
    assert r.status_code == 200, r.text
    r = admin.delete("/admin/backends/fleet/adapters/a1")
    assert r.status_code == 400, r.text
    assert fleet[0].adapters == {"a1": "/adapters/a1"}  # still served: the route needs it


def test_measured_pricing_reaches_the_price_and_the_metric(
    fleet: tuple[FakeVLLMLora, FakeVLLMLora], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = fleet
    cfg = _gateway_config(
        fleet,
        gpu_hour_usd="3.60",
        gpu_count=2,
        health_interval_s=0.2,
        throughput_window_s=60,
        throughput_min_tokens=100,
    )
    cfg["models"]["lora-x"] = {"backend": "fleet", "adapter": "a1"}
    a.adapters["a1"] = b.adapters["a1"] = "/adapters/a1"
    # the fleet processes 400 tokens/s (200 per endpoint: 150 generated + 50 prompt)
    for f in fleet:
        f.rates_since, f.token_rates = time.monotonic(), (150.0, 50.0)
    with (
        RunningGateway(cfg) as gw,
        httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as admin,
    ):
        doc = admin.get("/admin/backends/fleet/pricing").json()
        assert doc["fleet_usd_per_hour"] == "14.40"  # 3.60 x 2 GPUs x 2 endpoints
        deadline = time.monotonic() + 15
        measured: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            time.sleep(0.1)
            measured = admin.get("/admin/backends/fleet/pricing").json()["measured"]
            if measured is not None and measured["window_s"] >= 1.0:
                break
        assert measured is not None, "no measurement in force"
        tps = measured["tokens_per_s"]
        assert tps == pytest.approx(400, rel=0.05)
        assert measured["generation_tokens_per_s"] == pytest.approx(300, rel=0.05)
        per_ep = Decimal(str(measured["tokens_per_s_per_endpoint"]))
        expected = Decimal("3.60") * 2 / 3600 / per_ep * 1_000_000
        doc = admin.get("/admin/backends/fleet/pricing").json()
        prices = {m["model"]: m for m in doc["models"]}
        for model in ("base", "lora-x"):
            got = Decimal(prices[model]["cost_per_mtok_usd"])
            assert prices[model]["source"] == "gpu"
            assert abs(got - expected) / expected < Decimal("0.05")
        metrics = httpx.get(gw.url + "/metrics").text
        line = next(
            ln
            for ln in metrics.splitlines()
            if ln.startswith('pointsman_selfhosted_cost_per_mtok_usd{model="lora-x"}')
        )
        assert float(line.split()[-1]) > 0
        # the spend report (API and CLI) shows the measured prices in force
        spend = admin.get("/admin/spend").json()["self_hosted_pricing"]
        assert [b["backend"] for b in spend] == ["fleet"] and spend[0]["measured"]["tokens_per_s"] > 0
        assert main(["spend", "--url", gw.url, "--admin-key", ADMIN_KEY]) == 0
        out = capsys.readouterr().out
        assert "self-hosted fleet: $14.40/h for 2 endpoint(s); measured" in out
        assert "lora-x: $" in out and "per million tokens (gpu)" in out
        # the token counters come from the health monitor's scrape: each endpoint is scraped once per interval
        listeners = gw.state.registry.monitors["fleet"].metrics_listeners
        assert [type(cb.__self__).__name__ for cb in listeners] == ["FleetMeter"]
        hits0, t0 = a.metrics_hits, time.monotonic()
        time.sleep(2)
        assert a.metrics_hits - hits0 <= (time.monotonic() - t0) / 0.2 + 2
