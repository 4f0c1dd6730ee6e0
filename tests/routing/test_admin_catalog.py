"""Models, backends and client keys through the admin API: validated like the config file, secrets never shown.

The tests share one gateway and use distinct names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from routing.config import RouteConfig
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway
from tests.routing.conftest import admin, chat, sdk, two_backend_config

ROUTES = [{"name": "batch", "match": {"tags": {"task": "batch"}}, "targets": [{"model": "m-secondary"}]}]


@pytest.fixture(scope="module")
def gw(shared_upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    with RunningGateway(two_backend_config(*shared_upstreams, routes=ROUTES)) as g:
        yield g


def test_created_backend_and_model_serve_the_next_request(
    gw: Any, fresh: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    api = admin(gw)
    r = api.put(
        "/admin/backends/third",
        json={"type": "openai", "base_url": fresh[1].url, "api_key": "sk-third-secret"},
    )
    assert r.status_code == 200, r.text
    assert (
        api.post(
            "/admin/models", json={"name": "new-model", "backend": "third", "upstream_model": "nm-1"}
        ).status_code
        == 201
    )
    assert chat(sdk(gw), "new-model")["x-pointsman-backend"] == "third"
    assert fresh[1].requests[-1].body["model"] == "nm-1"
    assert fresh[1].requests[-1].headers["authorization"] == "Bearer sk-third-secret"


def test_backend_credentials_are_never_shown(gw: Any) -> None:
    api = admin(gw)
    assert api.get("/admin/backends/up").json()["backend"]["api_key"] == "***"
    assert "sk-upstream-secret" not in api.get("/admin/backends").text
    assert "sk-upstream-secret" not in api.get("/admin/routes/history/1").text


def test_sending_the_redaction_marker_back_keeps_the_credential(
    gw: Any, fresh: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    api = admin(gw)
    backend = api.get("/admin/backends/up").json()["backend"]
    assert api.put("/admin/backends/up", json={**backend, "timeout_s": 60}).status_code == 200
    chat(sdk(gw))
    assert fresh[0].requests[-1].headers["authorization"] == "Bearer sk-upstream-secret"


def test_model_on_an_unknown_backend_is_rejected_with_its_path(gw: Any) -> None:
    r = admin(gw).put("/admin/models/x-model", json={"backend": "nowhere"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "models.x-model.backend"


def test_backend_with_a_bad_url_is_rejected_with_its_path(gw: Any) -> None:
    r = admin(gw).put("/admin/backends/bad", json={"type": "openai", "base_url": "ftp://x"})
    assert r.json()["error"]["param"] == "backends.bad.base_url"


def test_deleting_a_model_a_rule_uses_is_rejected(gw: Any) -> None:
    r = admin(gw).delete("/admin/models/m-secondary")
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "routes[0].targets[0].model"


def test_created_key_is_shown_once_and_works(gw: Any) -> None:
    api = admin(gw)
    r = api.post("/admin/keys", json={"name": "created", "team": "ml"})
    assert r.status_code == 201, r.text
    secret = r.json()["key"]
    assert secret.startswith("sk-pm-")
    assert chat(sdk(gw, secret))["x-pointsman-backend"] == "up"
    assert secret not in api.get("/admin/keys").text
    assert api.get("/admin/keys/created").json()["team"] == "ml"
    assert secret not in api.get("/admin/keys/created").text
    assert secret not in api.get(f"/admin/routes/history/{r.json()['version']}").text


def test_deleted_key_stops_working(gw: Any) -> None:
    api = admin(gw)
    secret = api.post("/admin/keys", json={"name": "temp"}).json()["key"]
    client = sdk(gw, secret)
    chat(client)
    assert api.delete("/admin/keys/temp").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        chat(client)


def test_rotated_key_replaces_the_old_secret(gw: Any) -> None:
    api = admin(gw)
    old = api.post("/admin/keys", json={"name": "rotating"}).json()["key"]
    new = api.post("/admin/keys/rotating/rotate").json()["key"]
    assert new != old
    chat(sdk(gw, new))
    with pytest.raises(openai.AuthenticationError):
        chat(sdk(gw, old))


def test_a_secret_in_use_stops_working_once_rotated(gw: Any) -> None:
    api = admin(gw)
    old = api.post("/admin/keys", json={"name": "busy"}).json()["key"]
    client = sdk(gw, old)
    chat(client)  # the gateway now knows this Authorization header
    api.post("/admin/keys/busy/rotate")
    with pytest.raises(openai.AuthenticationError):
        chat(client)


def test_key_secrets_cannot_be_chosen_by_the_caller(gw: Any) -> None:
    r = admin(gw).post("/admin/keys", json={"name": "mine", "key": "sk-my-own-secret"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "key"


def test_key_default_tags_route_after_an_update(gw: Any) -> None:
    api = admin(gw)
    secret = api.post("/admin/keys", json={"name": "jobs"}).json()["key"]
    assert chat(sdk(gw, secret))["x-pointsman-route"] == "default"
    assert api.patch("/admin/keys/jobs", json={"tags": {"task": "batch"}}).status_code == 200
    assert chat(sdk(gw, secret))["x-pointsman-route"] == "batch"


def test_admin_endpoints_are_in_the_openapi_schema(gw: Any) -> None:
    paths = admin(gw).get("/openapi.json").json()["paths"]
    for p in (
        "/admin/routes",
        "/admin/routes/{name}",
        "/admin/routes/explain",
        "/admin/routes/history",
        "/admin/routes/rollback",
        "/admin/routes/reorder",
        "/admin/models",
        "/admin/backends",
        "/admin/keys",
    ):
        assert p in paths, p
    body = paths["/admin/routes"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"name", "match", "targets", "fallbacks", "strategy"} <= set(body["properties"])


def test_admin_body_schemas_describe_each_field_as_the_config_file_does(gw: Any) -> None:
    paths = admin(gw).get("/openapi.json").json()["paths"]
    body = paths["/admin/routes"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    docs = RouteConfig.model_json_schema()["properties"]
    assert body["properties"]["targets"]["description"] == docs["targets"]["description"]
    key = paths["/admin/keys"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert key["properties"]["team"]["description"]
