"""Completions, embeddings, Responses API, models, health."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway


def test_completions(client: openai.OpenAI) -> None:
    r = client.completions.create(model="gpt-4o-mini", prompt="Say hi")
    assert r.choices[0].text.startswith("Hello from primary")
    assert r.usage is not None and r.usage.completion_tokens == 7


def test_streamed_completions(client: openai.OpenAI) -> None:
    text = "".join(
        c.choices[0].text
        for c in client.completions.create(model="gpt-4o-mini", prompt="x", stream=True)
        if c.choices
    )
    assert text.startswith("Hello from primary")


def test_embeddings(client: openai.OpenAI) -> None:
    r = client.embeddings.create(model="gpt-4o-mini", input=["a", "b"])
    assert len(r.data) == 2 and r.usage.prompt_tokens == 11


def test_responses_api(client: openai.OpenAI) -> None:
    r = client.responses.create(model="gpt-4o-mini", input="hi")
    assert r.output_text == "Hello from primary (gpt-4o-mini)"
    assert r.usage is not None and r.usage.input_tokens == 11


def test_streamed_responses_api(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Hello from primary (gpt-4o-mini)"


@pytest.mark.parametrize("stream", [False, True])
def test_a_background_response_is_refused_before_it_reaches_the_provider(
    client: openai.OpenAI, upstream: FakeOpenAI, stream: bool
) -> None:
    """Its tokens are generated after the request ends, where the gateway cannot count or price them."""
    before = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o-mini", input="hi", background=True, stream=stream)
    assert isinstance(caught.value.body, dict)
    assert (caught.value.body["code"], caught.value.body["param"]) == ("unsupported_parameter", "background")
    assert len(upstream.requests) == before


def test_a_response_with_background_false_is_served(client: openai.OpenAI) -> None:
    assert client.responses.create(model="gpt-4o-mini", input="hi", background=False).output_text


def test_models_lists_configured_exact_names(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"gpt-4o-mini", "alias"} <= ids


def test_model_retrieve_resolves_glob_models(client: openai.OpenAI) -> None:
    assert client.models.retrieve("fake-anything").id == "fake-anything"


def test_model_retrieve_unknown_is_404(client: openai.OpenAI) -> None:
    try:
        client.models.retrieve("nope")
    except openai.NotFoundError as exc:
        assert exc.body["code"] == "model_not_found"  # type: ignore[index]
    else:
        raise AssertionError


def test_healthz_and_readyz(gateway: RunningGateway) -> None:
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200 and "up" in ready.json()["backends"]


def test_metrics_endpoint_serves_prometheus_text(gateway: RunningGateway) -> None:
    r = httpx.get(gateway.url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")


def test_openapi_documents_inference_and_admin_endpoints(gateway: RunningGateway) -> None:
    paths = httpx.get(gateway.url + "/openapi.json").json()["paths"]
    assert "/v1/chat/completions" in paths and "/v1/models" in paths
    assert any(p.startswith("/admin") for p in paths)


def test_api_key_header_is_accepted(gateway: RunningGateway) -> None:
    r = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        headers={"api-key": CLIENT_KEY},
    )
    assert r.status_code == 200


@pytest.mark.parametrize("header", ["api-key", "x-api-key"])
def test_a_key_in_any_accepted_header_lists_and_reads_models(gateway: RunningGateway, header: str) -> None:
    listed = httpx.get(gateway.base_url + "/models", headers={header: CLIENT_KEY})
    assert listed.status_code == 200, listed.text
    one = httpx.get(gateway.base_url + "/models/gpt-4o-mini", headers={header: CLIENT_KEY})
    assert one.status_code == 200, one.text
