"""``/v1/models`` and ``/v1/models/{id}`` under third-party consent, over real sockets with the official OpenAI
client: a key lists (and retrieves) only what a request from it naming the model would be served by, so a team
without approval does not see the models it would be refused for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import CLIENT_KEY
from tests.consent.conftest import HOUSE_MODELS, OTHER_KEY, PROVIDER_MODELS, consent_config, decide
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

ROUTES: list[dict[str, Any]] = [
    {  # a third-party model whose route can serve an unapproved team in-house
        "name": "mostly-provider",
        "match": {"model": "gpt-y"},
        "targets": [{"model": "gpt-y", "weight": 9}, {"model": "llama-b", "weight": 1}],
    },
    {  # an in-house name whose route only goes out
        "name": "judge-out",
        "match": {"model": "house-judge"},
        "targets": [{"model": "provider-judge"}],
    },
    {  # chosen by a tag: requests that do not send it are not routed by it
        "name": "away",
        "match": {"tags": {"task": "away"}},
        "targets": [{"model": "gpt-x"}],
    },
]


@pytest.fixture(scope="module")
def gw(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    """Team ``growth`` (key ``app``) without approval, team ``search`` (key ``other``) approved; no routes."""
    with RunningGateway(consent_config(*upstreams)) as g:
        decide(g.url, "team", "search", True)
        yield g


@pytest.fixture(scope="module")
def routed(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    with RunningGateway(consent_config(*upstreams, routes=ROUTES)) as g:
        yield g


def client(gw: RunningGateway, key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def listed(gw: RunningGateway, key: str = CLIENT_KEY) -> set[str]:
    with client(gw, key) as c:
        return {m.id for m in c.models.list()}


def test_a_team_without_approval_lists_only_in_house_models(gw: RunningGateway) -> None:
    assert listed(gw) == set(HOUSE_MODELS)


def test_an_approved_team_lists_every_model(gw: RunningGateway) -> None:
    assert listed(gw, OTHER_KEY) == {*HOUSE_MODELS, *PROVIDER_MODELS}


def test_retrieving_a_third_party_model_without_approval_is_a_404(gw: RunningGateway) -> None:
    with client(gw) as c, pytest.raises(openai.NotFoundError) as exc:
        c.models.retrieve("gpt-x")
    e = exc.value
    assert (e.status_code, e.type, e.code, e.param) == (
        404,
        "invalid_request_error",
        "model_not_found",
        "model",
    )
    assert "`gpt-x` does not exist or you do not have access to it" in e.message


def test_retrieving_an_in_house_model_without_approval_answers_it(gw: RunningGateway) -> None:
    with client(gw) as c:
        assert c.models.retrieve("llama-a").id == "llama-a"


def test_an_approved_team_retrieves_a_third_party_model(gw: RunningGateway) -> None:
    with client(gw, OTHER_KEY) as c:
        assert c.models.retrieve("gpt-x").id == "gpt-x"


def test_approving_a_team_lists_its_third_party_models(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    with RunningGateway(consent_config(*upstreams)) as g:
        assert "gpt-x" not in listed(g)
        decide(g.url, "team", "growth", True)
        assert listed(g) == {*HOUSE_MODELS, *PROVIDER_MODELS}


def test_a_third_party_model_whose_route_serves_the_team_in_house_is_listed(routed: RunningGateway) -> None:
    assert "gpt-y" in listed(routed)
    with client(routed) as c:
        assert c.models.retrieve("gpt-y").id == "gpt-y"


def test_an_in_house_model_whose_route_only_goes_to_a_third_party_is_not_listed(
    routed: RunningGateway,
) -> None:
    assert "house-judge" not in listed(routed)
    with client(routed) as c, pytest.raises(openai.NotFoundError):
        c.models.retrieve("house-judge")


def test_the_listing_is_what_requests_naming_each_model_get(routed: RunningGateway) -> None:
    names = listed(routed)
    assert names == {"llama-a", "llama-b", "house-fail", "house-embed", "gpt-y"}
    refused = set()
    with client(routed) as c:
        for model in (*HOUSE_MODELS, *PROVIDER_MODELS):
            try:
                c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            except openai.PermissionDeniedError:
                refused.add(model)
            except (
                openai.InternalServerError
            ):  # house-fail's upstream answers 503 on purpose: served, not refused
                pass
    assert names == {*HOUSE_MODELS, *PROVIDER_MODELS} - refused
