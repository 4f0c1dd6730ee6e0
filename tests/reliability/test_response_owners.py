"""A Responses API continuation stays within its team: a key may cite (``previous_response_id``) a stored response
its own team made (its own key when it has no team), and gets the provider's 404 for one another team made, the
request never reaching the provider. Teams share one provider account here, as they often do, so without the
check the provider would continue the other team's conversation. The same holds for the items of a stored response
(its output items, and the input items a listing showed): an input item citing one by id (an ``item_reference``, a
replayed reasoning item) is the provider's to resolve from the account's store; and for a conversation
(``conversation``) a team's answers were added to: the provider would prepend its items to the other team's input. Against running gateways, with the
official SDK; the fake provider keeps what it stores and answers an unknown response or item id with its 404, like
the API."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess, RunningGateway
from tests.redis_server import RedisServer

SAME_TEAM_KEY = "sk-test-search-other-0001"
OTHER_TEAM_KEY = "sk-test-billing-0001"
LONE_KEY = "sk-test-lone-0001"
LONE_KEY_2 = "sk-test-lone-0002"


def config(upstream: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "admin_key": ADMIN_KEY,
        "backends": {"up": {"type": "openai", "base_url": upstream.url, "api_key": "sk-upstream-secret"}},
        "models": {"gpt-4o-mini": {"backend": "up"}},
        "keys": [
            {"name": "app", "key": CLIENT_KEY, "team": "search"},
            {"name": "search-batch", "key": SAME_TEAM_KEY, "team": "search"},
            {"name": "billing", "key": OTHER_TEAM_KEY, "team": "billing"},
            {"name": "lone", "key": LONE_KEY},
            {"name": "lone-2", "key": LONE_KEY_2},
        ],
        **extra,
    }


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name="shared-account").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(upstream: FakeOpenAI) -> Iterator[RunningGateway]:
    with RunningGateway(config(upstream)) as g:
        yield g


def sdk(gw: RunningGateway | GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def recorded(data_dir: Path | str, response_id: str) -> None:
    """Wait until the embedded store holds ``response_id``'s owner (written just after the answer is sent; an item
    id's too)."""
    deadline = time.monotonic() + 5
    path = Path(data_dir) / "responses.sqlite3"
    while True:
        if path.exists():
            with sqlite3.connect(path) as db:
                if db.execute("SELECT 1 FROM response_owners WHERE id = ?", (response_id,)).fetchone():
                    return
        assert time.monotonic() < deadline, f"{response_id} was not recorded"
        time.sleep(0.01)


def started(gw: RunningGateway, key: str = CLIENT_KEY, **kw: Any) -> str:
    """A stored response made with ``key``, its owner recorded; its id."""
    with sdk(gw, key) as c:
        rid = c.responses.create(model="gpt-4o-mini", input="Remember: the launch code is 0000.", **kw).id
    recorded(gw.config.server.data_dir, rid)
    return rid


def continue_with(gw: RunningGateway | GatewayProcess, key: str, rid: str) -> str:
    with sdk(gw, key) as c:
        return c.responses.create(
            model="gpt-4o-mini", input="What was the code?", previous_response_id=rid
        ).id


def test_a_key_continues_a_response_its_own_team_made(gw: RunningGateway) -> None:
    rid = started(gw)
    assert continue_with(gw, SAME_TEAM_KEY, rid).startswith("resp_")


def test_another_teams_key_gets_the_providers_404_for_the_response(gw: RunningGateway) -> None:
    rid = started(gw)
    with pytest.raises(openai.NotFoundError) as caught:
        continue_with(gw, OTHER_TEAM_KEY, rid)
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"], error["type"]) == (
        "previous_response_not_found",
        "previous_response_id",
        "invalid_request_error",
    )
    assert error["message"] == f"Previous response with id '{rid}' not found."


def test_a_refused_continuation_never_reaches_the_provider(gw: RunningGateway, upstream: FakeOpenAI) -> None:
    rid = started(gw)
    before = len(upstream.requests)
    with pytest.raises(openai.NotFoundError):
        continue_with(gw, OTHER_TEAM_KEY, rid)
    assert len(upstream.requests) == before


def test_a_streamed_responses_owner_is_recorded_too(gw: RunningGateway) -> None:
    with sdk(gw, CLIENT_KEY) as c:
        with c.responses.stream(model="gpt-4o-mini", input="Remember this.") as s:
            rid = s.get_final_response().id
    recorded(gw.config.server.data_dir, rid)
    with pytest.raises(openai.NotFoundError):
        continue_with(gw, OTHER_TEAM_KEY, rid)
    assert continue_with(gw, SAME_TEAM_KEY, rid).startswith("resp_")


def test_a_key_without_a_team_continues_only_its_own_responses(gw: RunningGateway) -> None:
    rid = started(gw, LONE_KEY)
    assert continue_with(gw, LONE_KEY, rid).startswith("resp_")
    with pytest.raises(openai.NotFoundError):
        continue_with(gw, LONE_KEY_2, rid)


def test_a_response_the_gateway_never_relayed_is_left_to_the_provider(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    """Made before the gateway was deployed (or at the provider directly): nothing says whose it is."""
    upstream.stored_responses["resp_made_elsewhere_0001"] = ({}, [])
    assert continue_with(gw, OTHER_TEAM_KEY, "resp_made_elsewhere_0001").startswith("resp_")


def test_an_unstored_response_gets_no_owner(gw: RunningGateway, upstream: FakeOpenAI) -> None:
    """``store: false``: the provider keeps nothing to continue, so the gateway records nothing either; citing it
    gets the provider's own 404."""
    with sdk(gw, CLIENT_KEY) as c:
        rid = c.responses.create(model="gpt-4o-mini", input="Forget this.", store=False).id
    started(gw)  # a later stored one recorded: the unstored one's would have been written before it
    before = len(upstream.requests)
    with pytest.raises(openai.NotFoundError):
        continue_with(gw, CLIENT_KEY, rid)
    assert len(upstream.requests) == before + 1  # the provider's 404, not the gateway's
    with sqlite3.connect(Path(gw.config.server.data_dir) / "responses.sqlite3") as db:
        assert db.execute("SELECT 1 FROM response_owners WHERE id = ?", (rid,)).fetchone() is None


# -- items of a stored response, cited by id in a request's input ---------------------------------------------------


def stored_item(gw: RunningGateway, key: str = CLIENT_KEY) -> str:
    """The output message's id of a stored response made with ``key``, its owner recorded."""
    with sdk(gw, key) as c:
        item = (
            c.responses.create(model="gpt-4o-mini", input="Remember: the launch code is 0000.").output[0].id
        )
    assert item is not None
    recorded(gw.config.server.data_dir, item)
    return item


def cite(gw: RunningGateway | GatewayProcess, key: str, item: dict[str, Any]) -> str:
    with sdk(gw, key) as c:
        given: Any = [item, {"role": "user", "content": "What was the code?"}]
        return c.responses.create(model="gpt-4o-mini", input=given).id


def test_another_teams_key_gets_the_providers_404_citing_an_item_of_its_response(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    item = stored_item(gw)
    before = len(upstream.requests)
    with pytest.raises(openai.NotFoundError) as caught:
        cite(gw, OTHER_TEAM_KEY, {"type": "item_reference", "id": item})
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["message"], error["type"], error["param"], error["code"]) == (
        f"Item with id '{item}' not found.",
        "invalid_request_error",
        "input",
        None,
    )
    assert len(upstream.requests) == before  # never reached the provider


def test_a_key_cites_its_own_teams_items(gw: RunningGateway) -> None:
    item = stored_item(gw)
    assert cite(gw, SAME_TEAM_KEY, {"type": "item_reference", "id": item}).startswith("resp_")


def test_a_replayed_item_carrying_another_teams_id_is_refused(gw: RunningGateway) -> None:
    """A reasoning item replayed with its id is looked up in the provider's store like a reference."""
    item = stored_item(gw)
    with pytest.raises(openai.NotFoundError):
        cite(gw, OTHER_TEAM_KEY, {"type": "reasoning", "id": item, "summary": []})


def test_a_streamed_responses_items_are_recorded_too(gw: RunningGateway) -> None:
    with sdk(gw, CLIENT_KEY) as c:
        with c.responses.stream(model="gpt-4o-mini", input="Remember this.") as s:
            item = s.get_final_response().output[0].id
    assert item is not None
    recorded(gw.config.server.data_dir, item)
    with pytest.raises(openai.NotFoundError):
        cite(gw, OTHER_TEAM_KEY, {"type": "item_reference", "id": item})


def test_input_items_listed_to_their_owner_are_recorded_as_its(gw: RunningGateway) -> None:
    rid = started(gw)
    with sdk(gw, CLIENT_KEY) as c:
        item = c.responses.input_items.list(rid).data[0].id
    recorded(gw.config.server.data_dir, item)
    assert cite(gw, SAME_TEAM_KEY, {"type": "item_reference", "id": item}).startswith("resp_")
    with pytest.raises(openai.NotFoundError):
        cite(gw, OTHER_TEAM_KEY, {"type": "item_reference", "id": item})


def test_an_item_the_gateway_never_relayed_is_left_to_the_provider(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    before = len(upstream.requests)
    with pytest.raises(openai.NotFoundError) as caught:
        cite(gw, OTHER_TEAM_KEY, {"type": "item_reference", "id": "msg_made_elsewhere_0001"})
    assert len(upstream.requests) == before + 1  # the provider's own 404
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["message"] == "Item with id 'msg_made_elsewhere_0001' not found."


# -- conversations (``conversation``: the provider prepends the conversation's items to the input) -------------------
def in_conversation(
    gw: RunningGateway, key: str, conv: str | dict[str, str], stream: bool = False, **kw: Any
) -> str:
    """A Responses answer added to ``conv`` (its id, or ``{"id": ...}``); its id."""
    with sdk(gw, key) as c:
        if stream:
            with c.responses.stream(model="gpt-4o-mini", input="Note this.", conversation=conv, **kw) as s:
                return s.get_final_response().id
        return c.responses.create(model="gpt-4o-mini", input="Note this.", conversation=conv, **kw).id


def used_conversation(gw: RunningGateway, **kw: Any) -> str:
    """A conversation the first key's team added an answer to, its owner recorded; its id."""
    conv = f"conv_{secrets.token_hex(12)}"
    in_conversation(gw, CLIENT_KEY, conv, **kw)
    recorded(gw.config.server.data_dir, conv)
    return conv


def test_another_teams_key_gets_the_providers_404_for_a_teams_conversation(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    conv = used_conversation(gw)
    before = len(upstream.requests)
    with pytest.raises(openai.NotFoundError) as caught:
        in_conversation(gw, OTHER_TEAM_KEY, conv)
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", "conversation", None)
    assert error["message"] == f"Conversation with id '{conv}' not found."
    assert len(upstream.requests) == before  # the provider never saw it


def test_a_team_goes_on_in_its_own_conversation(gw: RunningGateway) -> None:
    conv = used_conversation(gw)
    assert in_conversation(gw, SAME_TEAM_KEY, conv).startswith("resp_")
    assert in_conversation(gw, CLIENT_KEY, {"id": conv}).startswith("resp_")


def test_a_conversation_named_by_an_object_is_checked_too(gw: RunningGateway) -> None:
    conv = used_conversation(gw)
    with pytest.raises(openai.NotFoundError):
        in_conversation(gw, OTHER_TEAM_KEY, {"id": conv})


def test_a_streamed_answers_conversation_is_recorded_too(gw: RunningGateway) -> None:
    conv = used_conversation(gw, stream=True)
    with pytest.raises(openai.NotFoundError):
        in_conversation(gw, OTHER_TEAM_KEY, conv, stream=True)


def test_an_unstored_answers_conversation_is_recorded_too(gw: RunningGateway) -> None:
    """``store: false`` keeps the response out of the provider's store, not the conversation's items."""
    conv = used_conversation(gw, store=False)
    with pytest.raises(openai.NotFoundError):
        in_conversation(gw, OTHER_TEAM_KEY, conv)


def test_a_conversation_the_gateway_never_relayed_is_left_to_the_provider(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    """Nothing says whose it is (made at the provider directly): the first team whose answer is added to it
    through the gateway is recorded as its owner."""
    conv = f"conv_{secrets.token_hex(12)}"
    before = len(upstream.requests)
    assert in_conversation(gw, OTHER_TEAM_KEY, conv).startswith("resp_")
    assert len(upstream.requests) == before + 1
    recorded(gw.config.server.data_dir, conv)
    with pytest.raises(openai.NotFoundError):
        in_conversation(gw, CLIENT_KEY, conv)


def recorded_at(data_dir: Path | str, i: str) -> float:
    with sqlite3.connect(Path(data_dir) / "responses.sqlite3") as db:
        return float(db.execute("SELECT at FROM response_owners WHERE id = ?", (i,)).fetchone()[0])


def test_a_conversation_in_use_stays_its_owners_past_the_first_records_retention(gw: RunningGateway) -> None:
    """Each answer added to it keeps the record another retention period (the provider keeps a conversation
    longer than the 30 days of a response); another owner's refused request does not."""
    data = gw.config.server.data_dir
    conv = used_conversation(gw)
    first = recorded_at(data, conv)
    time.sleep(0.05)
    in_conversation(gw, SAME_TEAM_KEY, conv)
    deadline = time.monotonic() + 5
    while (again := recorded_at(data, conv)) == first:
        assert time.monotonic() < deadline, "the same owner's answer did not refresh the record"
        time.sleep(0.01)
    assert again > first
    with pytest.raises(openai.NotFoundError):
        in_conversation(gw, OTHER_TEAM_KEY, conv)
    assert recorded_at(data, conv) == again


# -- the stored-response endpoints: GET / DELETE /v1/responses/{id}, /input_items, /cancel -------------------------


def test_a_team_retrieves_its_stored_response(gw: RunningGateway) -> None:
    rid = started(gw)
    with sdk(gw, SAME_TEAM_KEY) as c:
        got = c.responses.retrieve(rid)
    assert got.id == rid and got.output_text


def test_another_team_gets_the_providers_404_retrieving_it_without_the_provider_being_asked(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    rid = started(gw)
    asked = len(upstream.stored_requests)
    with sdk(gw, OTHER_TEAM_KEY) as c, pytest.raises(openai.NotFoundError) as caught:
        c.responses.retrieve(rid)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["message"] == f"Response with id '{rid}' not found."
    assert len(upstream.stored_requests) == asked


def test_a_response_the_gateway_never_relayed_cannot_be_retrieved_through_it(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    """Nothing says whose it is, nor on which backend it is kept."""
    upstream.stored_responses["resp_made_elsewhere_0002"] = ({"id": "resp_made_elsewhere_0002"}, [])
    with sdk(gw, CLIENT_KEY) as c, pytest.raises(openai.NotFoundError):
        c.responses.retrieve("resp_made_elsewhere_0002")


def test_a_team_lists_its_responses_input_items(gw: RunningGateway, upstream: FakeOpenAI) -> None:
    rid = started(gw)
    with sdk(gw, CLIENT_KEY) as c:
        items = c.responses.input_items.list(rid, limit=5, order="asc")
    first = items.data[0]
    assert first.type == "message" and first.content[0].text == "Remember: the launch code is 0000."  # type: ignore[union-attr]
    method, path, headers = upstream.stored_requests[-1]
    assert (method, path) == ("GET", f"/v1/responses/{rid}/input_items?limit=5&order=asc")
    assert {k.lower(): v for k, v in headers.items()}["authorization"] == "Bearer sk-upstream-secret"


def test_a_team_deletes_its_stored_response(gw: RunningGateway, upstream: FakeOpenAI) -> None:
    rid = started(gw)
    with sdk(gw, SAME_TEAM_KEY) as c:
        c.responses.delete(rid)
    assert rid not in upstream.stored_responses


def test_another_team_cannot_delete_a_stored_response(gw: RunningGateway, upstream: FakeOpenAI) -> None:
    rid = started(gw)
    with sdk(gw, OTHER_TEAM_KEY) as c, pytest.raises(openai.NotFoundError):
        c.responses.delete(rid)
    assert rid in upstream.stored_responses


def test_a_cancel_is_relayed_with_the_providers_answer(gw: RunningGateway) -> None:
    rid = started(gw)
    with sdk(gw, CLIENT_KEY) as c, pytest.raises(openai.BadRequestError) as caught:
        c.responses.cancel(rid)
    assert isinstance(caught.value.body, dict)
    assert "background" in caught.value.body["message"]


def test_streaming_a_stored_response_again_is_refused(gw: RunningGateway) -> None:
    rid = started(gw)
    with sdk(gw, CLIENT_KEY) as c, pytest.raises(openai.BadRequestError) as caught:
        list(c.responses.retrieve(rid, stream=True))
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "unsupported_parameter"


def test_owners_survive_a_restart(upstream: FakeOpenAI, tmp_path: Path) -> None:
    cfg = config(upstream)
    first = GatewayProcess(cfg, tmp_path).start()
    try:
        with sdk(first, CLIENT_KEY) as c:
            rid = c.responses.create(model="gpt-4o-mini", input="Remember this.").id
        recorded(tmp_path / "data", rid)
    finally:
        first.stop()
    again = GatewayProcess(cfg, tmp_path).start()
    try:
        with pytest.raises(openai.NotFoundError):
            continue_with(again, OTHER_TEAM_KEY, rid)
    finally:
        again.stop()


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def shared(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The config sections of a shared store: Redis (a database of its own, emptied: the session's Redis keeps what
    other files' tests left, revocations among them), or PostgreSQL (a database per test)."""
    if request.param == "redis":
        import redis

        url = request.getfixturevalue("redis_server").rpartition("/")[0] + "/7"
        with redis.Redis.from_url(url) as r:
            r.flushdb()
        return {"redis": {"url": url}}
    return {"database": {"backend": "postgres", "dsn": request.getfixturevalue("shared_db")}}


def refused_within(gw: GatewayProcess, rid: str, seconds: float) -> None:
    """Wait until ``gw`` refuses the other team's continuation of ``rid`` (its owner read from the shared store)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            continue_with(gw, OTHER_TEAM_KEY, rid)
        except openai.NotFoundError:
            return
        assert time.monotonic() < deadline, f"the other team's continuation of {rid} was never refused"
        time.sleep(0.05)


def test_replicas_sharing_a_store_refuse_each_others_other_team_citations(
    upstream: FakeOpenAI, shared: dict[str, Any], tmp_path: Path
) -> None:
    """Made through one replica, cited through another (a new data_dir each: nothing local in common)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = GatewayProcess(config(upstream, **shared), tmp_path / "a").start()
    two = GatewayProcess(config(upstream, **shared), tmp_path / "b").start()
    try:
        with sdk(one, CLIENT_KEY) as c:
            made = c.responses.create(model="gpt-4o-mini", input="Remember this.")
        rid, item = made.id, made.output[0].id
        assert item is not None
        refused_within(two, rid, 5)  # the owner is written just after the answer
        assert continue_with(two, SAME_TEAM_KEY, rid).startswith("resp_")
        with pytest.raises(openai.NotFoundError):  # its items, recorded in the same write
            cite(two, OTHER_TEAM_KEY, {"type": "item_reference", "id": item})
        with sdk(two, SAME_TEAM_KEY) as c:
            assert c.responses.retrieve(rid).id == rid  # where it is kept, from the shared record
        assert not (tmp_path / "b" / "data" / "responses.sqlite3").exists()
    finally:
        one.stop()
        two.stop()


@pytest.mark.redis
def test_an_owner_made_while_the_store_is_down_is_written_when_it_is_back(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    """Nothing accepted is lost: the replica that relayed the answer keeps its owner in memory (and checks against
    it) until Redis takes it, and then every replica refuses the other team."""
    srv = RedisServer().start()
    cfg = config(upstream, redis={"url": srv.url})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = GatewayProcess(cfg, tmp_path / "a").start()
    two: GatewayProcess | None = None
    try:
        srv.stop()
        with sdk(one, CLIENT_KEY) as c:
            rid = c.responses.create(model="gpt-4o-mini", input="Remember this.").id
        with pytest.raises(openai.NotFoundError):  # the replica that relayed it knows whose it is
            continue_with(one, OTHER_TEAM_KEY, rid)
        srv.start()
        two = GatewayProcess(cfg, tmp_path / "b").start()
        refused_within(two, rid, 10)  # written at the next attempt (every 1 s, then longer)
    finally:
        one.stop()
        if two is not None:
            two.stop()
        srv.stop()


@pytest.mark.parametrize(("policy", "refused"), [("fail_closed", True), ("fail_open", False)])
def test_a_continuation_while_the_record_is_unreachable_follows_redis_on_unavailable(
    upstream: FakeOpenAI, policy: str, refused: bool
) -> None:
    upstream.stored_responses["resp_cited_during_an_outage"] = ({}, [])
    cfg = config(upstream, redis={"url": "redis://127.0.0.1:9/0", "on_unavailable": policy})
    with RunningGateway(cfg) as g:
        if refused:
            with pytest.raises(openai.InternalServerError) as caught:
                continue_with(g, CLIENT_KEY, "resp_cited_during_an_outage")
            assert caught.value.status_code == 503
            assert isinstance(caught.value.body, dict)
            assert caught.value.body["code"] == "response_owners_unavailable"
        else:
            assert continue_with(g, CLIENT_KEY, "resp_cited_during_an_outage").startswith("resp_")


def test_a_stored_response_cannot_be_retrieved_while_the_record_is_unreachable(upstream: FakeOpenAI) -> None:
    """Without the record there is neither an owner to check nor a backend to ask, whatever ``on_unavailable``."""
    cfg = config(upstream, redis={"url": "redis://127.0.0.1:9/0", "on_unavailable": "fail_open"})
    with (
        RunningGateway(cfg) as g,
        sdk(g, CLIENT_KEY) as c,
        pytest.raises(openai.InternalServerError) as caught,
    ):
        c.responses.retrieve("resp_cited_during_an_outage")
    assert caught.value.status_code == 503


def test_a_shared_store_keeps_a_conversation_in_use_for_its_owner(
    upstream: FakeOpenAI, shared: dict[str, Any]
) -> None:
    """Redis (the key's TTL) and PostgreSQL (the record's time) alike: the owner's next answer resets the record's
    age, and another owner is still refused."""
    conv = f"conv_{secrets.token_hex(12)}"
    with RunningGateway(config(upstream, **shared)) as g:
        in_conversation(g, CLIENT_KEY, conv)
        deadline = time.monotonic() + 5
        while (age := _age(shared, conv)) is None:
            assert time.monotonic() < deadline, f"{conv} was not recorded"
            time.sleep(0.02)
        assert age < 100
        _age(shared, conv, older_by=1000)
        assert (_age(shared, conv) or 0) > 900
        in_conversation(g, SAME_TEAM_KEY, conv)
        deadline = time.monotonic() + 5
        while (_age(shared, conv) or 0) > 100:
            assert time.monotonic() < deadline, "the owner's answer did not renew the record"
            time.sleep(0.02)
        with pytest.raises(openai.NotFoundError):
            in_conversation(g, OTHER_TEAM_KEY, conv)


def _age(shared: dict[str, Any], conv: str, older_by: int = 0) -> float | None:
    """How old ``conv``'s record looks (seconds of its TTL gone in Redis, since its time in PostgreSQL), None
    before it is written; ``older_by``: first make it look that much older."""
    if "redis" in shared:
        import redis

        full = 30 * 86400  # routing.response_owners_days
        with redis.Redis.from_url(shared["redis"]["url"]) as r:
            key = f"pointsman:responses:owner:{conv}"
            ttl = int(r.ttl(key))
            if ttl <= 0:
                return None
            if older_by:
                r.expire(key, ttl - older_by)
                ttl -= older_by
            return float(full - ttl)
    import psycopg

    with psycopg.connect(shared["database"]["dsn"], autocommit=True) as db:
        if older_by:
            db.execute("UPDATE policy.response_owners SET at = at - %s WHERE id = %s", (older_by, conv))
        row = db.execute("SELECT at FROM policy.response_owners WHERE id = %s", (conv,)).fetchone()
        return None if row is None else time.time() - float(row[0])
