"""Security properties, checked against a running ``pointsman serve``: the admin API refuses client keys (403)
and missing or wrong admin keys (401) on every operation; client keys are stored only as digests and compared
in constant time; scoped keys cannot reach other models or tags (403); no secret appears in logs, metrics,
error bodies or admin responses; CORS is off unless configured; upstream URLs are validated; request ids are
echoed only when safe."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from gateway.keys import ClientKey, KeyRing, admin_ok
from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess, RunningGateway
from tests.reliability.conftest import PROVIDER_KEY, SCOPED_KEY
from tests.reliability.probes import ADMIN, CLIENT, MSG, find_secrets, openai_error

SCOPED = {"authorization": f"Bearer {SCOPED_KEY}"}
HEADER_KEY = "hdr-provider-secret-4b8e2f0a91"  # a provider key sent as a header (Azure's api-key)
WRONG_ADMIN = ADMIN_KEY[:-1] + ("x" if ADMIN_KEY[-1] != "x" else "y")  # one character off


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name="sec-upstream").start()
    yield fake
    fake.stop()


def security_config(upstream_url: str, data_dir: str, **server: Any) -> dict[str, Any]:
    return {
        "admin_key": ADMIN_KEY,
        "server": {"data_dir": data_dir, "log_level": "debug", **server},
        "backends": {
            "up": {
                "type": "openai",
                "base_url": upstream_url,
                "api_key": PROVIDER_KEY,
                "headers": {"api-key": HEADER_KEY},
            }
        },
        "models": {"gpt-4o-mini": {"backend": "up"}, "fake-*": {"backend": "up"}},
        "keys": [
            {"name": "app", "key": CLIENT_KEY, "team": "search"},
            {
                "name": "scoped",
                "key": SCOPED_KEY,
                "team": "batch",
                "models": ["gpt-*"],
                "allowed_tags": {"task": ["summarize"]},
            },
        ],
        "routes": [{"name": "summaries", "match": {"tags": {"task": "summarize"}}, "targets": []}],
    }


@pytest.fixture(scope="module")
def gw(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("security")
    proc = GatewayProcess(security_config(upstream.url, str(tmp / "data")), tmp).start()
    yield proc
    proc.stop()


def admin_operations(url: str) -> list[tuple[str, str]]:
    spec = httpx.get(url + "/openapi.json", timeout=10).json()
    ops = []
    for path, methods in spec["paths"].items():
        if path.startswith("/admin"):
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            ops.extend((m.upper(), concrete) for m in methods)
    return ops


# -- admin authentication ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "headers", "status"),
    [
        ("no key", {}, 401),
        ("wrong key", {"authorization": f"Bearer {WRONG_ADMIN}"}, 401),
        ("client key", CLIENT, 403),
        ("scoped client key", SCOPED, 403),
        ("client key as api-key", {"api-key": CLIENT_KEY}, 403),
        ("client key as x-admin-key", {"x-admin-key": CLIENT_KEY}, 403),
        ("admin key without bearer", {"authorization": ADMIN_KEY}, 401),
    ],
)
def test_every_admin_operation_refuses_non_admin_callers(
    gw: GatewayProcess, who: str, headers: dict[str, str], status: int
) -> None:
    ops = admin_operations(gw.url)
    assert len(ops) >= 40
    with httpx.Client(timeout=30) as c:
        for method, path in ops:
            for body in (b"{}", b"{not json"):  # authentication comes before body validation
                r = c.request(
                    method,
                    gw.url + path,
                    headers={**headers, "content-type": "application/json"},
                    content=body if method in ("POST", "PUT", "PATCH") else None,
                )
                assert r.status_code == status, (
                    f"{who}: {method} {path} {body!r} -> {r.status_code} {r.text[:200]}"
                )
                openai_error(r)


def test_admin_key_is_accepted(gw: GatewayProcess) -> None:
    assert httpx.get(gw.url + "/admin/status", headers=ADMIN, timeout=10).status_code == 200


# -- client keys: stored hashed, compared in constant time --------------------------------------------------------------
def test_client_keys_are_stored_only_as_sha256_digests(gw: GatewayProcess, tmp_path: Path) -> None:
    created = httpx.post(
        gw.url + "/admin/keys", headers=ADMIN, json={"name": "made-by-admin", "team": "search"}, timeout=10
    )
    assert created.status_code in (200, 201), created.text
    secret = created.json()["key"]
    assert (
        httpx.get(
            gw.url + "/v1/models", headers={"authorization": f"Bearer {secret}"}, timeout=10
        ).status_code
        == 200
    )
    listed = httpx.get(gw.url + "/admin/keys", headers=ADMIN, timeout=10).text
    assert not find_secrets(listed, [secret, CLIENT_KEY, SCOPED_KEY])
    data = Path(gw.path).parent / "data"
    stored = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())
    for s in (secret, CLIENT_KEY, SCOPED_KEY):
        assert s.encode() not in stored, "a client key is stored in plain text"
    assert hashlib.sha256(CLIENT_KEY.encode()).hexdigest().encode() in stored  # the digest is what is kept


def test_a_config_files_backend_credentials_are_not_stored_in_the_data_dir(gw: GatewayProcess) -> None:
    """The policy store keeps a marker for the backend's api_key and header values; the file is where they live."""
    data = Path(gw.path).parent / "data"
    stored = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())
    assert PROVIDER_KEY.encode() not in stored
    assert HEADER_KEY.encode() not in stored


def test_a_config_files_backend_header_still_reaches_the_upstream(
    gw: GatewayProcess, upstream: FakeOpenAI
) -> None:
    body = {"model": "gpt-4o-mini", "messages": MSG}
    assert (
        httpx.post(gw.url + "/v1/chat/completions", headers=CLIENT, json=body, timeout=30).status_code == 200
    )
    sent = {k.lower(): v for k, v in upstream.requests[-1].headers.items()}
    assert sent["api-key"] == HEADER_KEY


def _timed(fn: Any, arg: str, n: int = 30) -> float:
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn(arg)
        best = min(best, time.perf_counter() - t)
    return best


def test_admin_key_comparison_takes_as_long_for_an_early_mismatch_as_for_a_late_one() -> None:
    expected = "k" * 4_000_000  # long enough that a short-circuiting comparison would show
    early = "x" + expected[1:]
    late = expected[:-1] + "x"
    t_early = _timed(lambda s: admin_ok(expected, s), early)
    t_late = _timed(lambda s: admin_ok(expected, s), late)
    assert t_early > 0.5 * t_late, f"early {t_early * 1e6:.0f} us vs late {t_late * 1e6:.0f} us"


def test_client_key_lookup_takes_as_long_for_a_near_miss_as_for_a_far_miss() -> None:
    real = "sk-" + "k" * 4_000_000
    ring = KeyRing([ClientKey(name="app", key_sha256=hashlib.sha256(real.encode()).hexdigest())])
    near = real[:-1] + "x"  # right but for the last character
    far = "x" * len(real)
    assert ring.lookup(real) is not None and ring.lookup(near) is None
    t_near, t_far = _timed(ring.lookup, near), _timed(ring.lookup, far)
    assert 0.5 < t_near / t_far < 2.0, f"near {t_near * 1e6:.0f} us vs far {t_far * 1e6:.0f} us"


# -- scopes -------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["chat/completions", "completions", "embeddings", "responses"])
def test_key_scoped_to_some_models_cannot_use_others(gw: GatewayProcess, endpoint: str) -> None:
    body = {"model": "fake-other", "messages": MSG, "prompt": "hi", "input": "hi"}
    r = httpx.post(
        f"{gw.url}/v1/{endpoint}", headers={**SCOPED, "x-pointsman-task": "summarize"}, json=body, timeout=10
    )
    assert r.status_code == 403
    assert openai_error(r)["type"] == "permission_error"


def test_key_scoped_to_some_models_may_use_those(gw: GatewayProcess) -> None:
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={**SCOPED, "x-pointsman-task": "summarize"},
        json={"model": "gpt-4o-mini", "messages": MSG},
        timeout=10,
    )
    assert r.status_code == 200


def test_models_outside_a_keys_scope_are_not_listed_or_retrievable(gw: GatewayProcess) -> None:
    listed = [m["id"] for m in httpx.get(gw.url + "/v1/models", headers=SCOPED, timeout=10).json()["data"]]
    assert listed == ["gpt-4o-mini"]
    assert httpx.get(gw.url + "/v1/models/fake-other", headers=SCOPED, timeout=10).status_code == 404


@pytest.mark.parametrize("where", ["header", "tags-header", "metadata"])
def test_key_scoped_to_some_tags_cannot_send_others(gw: GatewayProcess, where: str) -> None:
    headers = dict(SCOPED)
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MSG}
    if where == "header":
        headers["x-pointsman-task"] = "chat"
    elif where == "tags-header":
        headers["x-pointsman-tags"] = "task=chat"
    else:
        body["metadata"] = {"task": "chat"}
    r = httpx.post(gw.url + "/v1/chat/completions", headers=headers, json=body, timeout=10)
    assert r.status_code == 403
    assert openai_error(r)["type"] == "permission_error"


def test_feedback_on_another_teams_request_is_refused(gw: GatewayProcess) -> None:
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={**CLIENT, "x-request-id": "team-search-req"},
        json={"model": "gpt-4o-mini", "messages": MSG},
        timeout=10,
    )
    assert r.status_code == 200
    fb = httpx.post(
        gw.url + "/v1/feedback",
        headers=SCOPED,
        timeout=30,
        json={"request_id": "team-search-req", "metric": "thumbs_up", "value": True},
    )
    assert fb.status_code == 404
    openai_error(fb)


# -- no secret anywhere -----------------------------------------------------------------------------------------------------
def test_no_secret_appears_in_logs_metrics_error_bodies_or_admin_responses(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    proc = GatewayProcess(security_config(upstream.url, str(tmp_path / "data")), tmp_path).start()
    seen: list[tuple[str, str]] = []  # (what, text) to scan
    made: list[str] = []
    try:
        with httpx.Client(timeout=30) as c:

            def keep(what: str, r: httpx.Response) -> httpx.Response:
                seen.append((what, r.text))
                return r

            new = keep(
                "POST /admin/keys",
                c.post(proc.url + "/admin/keys", headers=ADMIN, json={"name": "made", "team": "search"}),
            )
            made.append(new.json()["key"])  # returned once, to its creator: the only place it may appear
            seen.pop()
            rotated = c.post(proc.url + "/admin/keys/made/rotate", headers=ADMIN)
            made.append(rotated.json()["key"])
            for key in (CLIENT_KEY, made[-1]):
                keep(
                    "chat",
                    c.post(
                        proc.url + "/v1/chat/completions",
                        headers={"authorization": f"Bearer {key}"},
                        json={"model": "gpt-4o-mini", "messages": MSG},
                    ),
                )
                keep(
                    "stream",
                    c.post(
                        proc.url + "/v1/chat/completions",
                        headers={"authorization": f"Bearer {key}"},
                        json={"model": "gpt-4o-mini", "messages": MSG, "stream": True},
                    ),
                )
            # wrong and near-miss keys, in every place a key is read: error bodies must not echo them
            for bad in (CLIENT_KEY + "x", ADMIN_KEY + "x", PROVIDER_KEY, made[0]):
                for h in ({"authorization": f"Bearer {bad}"}, {"api-key": bad}):
                    keep(
                        "wrong key",
                        c.post(
                            proc.url + "/v1/chat/completions",
                            headers=h,
                            json={"model": "gpt-4o-mini", "messages": MSG},
                        ),
                    )
                    keep("wrong admin", c.get(proc.url + "/admin/status", headers=h))
            keep(
                "no usage",
                c.post(
                    proc.url + "/v1/chat/completions",
                    headers=CLIENT,  # estimated: a DEBUG line
                    json={"model": "fake-no_usage", "messages": MSG},
                ),
            )
            keep(
                "upstream error",
                c.post(
                    proc.url + "/v1/chat/completions",
                    headers=CLIENT,
                    json={"model": "fake-fail_500", "messages": MSG},
                ),
            )
            keep(
                "scope",
                c.post(
                    proc.url + "/v1/chat/completions",
                    headers=SCOPED,
                    json={"model": "fake-x", "messages": MSG},
                ),
            )
            c.put(
                proc.url + "/admin/backends/up",
                headers=ADMIN,
                json={
                    "type": "openai",
                    "base_url": upstream.url,
                    "api_key": "***",
                    "headers": {"api-key": "***"},
                },
            )  # keeps the stored ones
            keep(
                "explain",
                c.post(
                    proc.url + "/admin/routes/explain",
                    headers=ADMIN,
                    json={"body": {"model": "gpt-4o-mini", "messages": MSG}, "key": "app"},
                ),
            )
            # every admin GET, with the names that exist filled in
            names = {
                "name": ["up", "made", "app", "summaries", "gpt-4o-mini"],
                "version": ["1", "2", "3"],
                "request_id": ["x"],
                "team": ["search"],
                "adapter": ["x"],
            }
            spec = c.get(proc.url + "/openapi.json").json()
            for path, methods in spec["paths"].items():
                if not path.startswith("/admin") or "get" not in methods:
                    continue
                params = re.findall(r"\{([^}]+)\}", path)
                for value in names.get(params[0], ["x"]) if params else [None]:
                    concrete = re.sub(r"\{[^}]+\}", value or "", path)
                    keep(f"GET {concrete}", c.get(proc.url + concrete, headers=ADMIN))
            keep("metrics", c.get(proc.url + "/metrics"))
            keep("openapi", c.get(proc.url + "/openapi.json"))
            keep("models", c.get(proc.url + "/v1/models", headers=CLIENT))
    finally:
        proc.stop()
    secrets = [PROVIDER_KEY, HEADER_KEY, CLIENT_KEY, SCOPED_KEY, ADMIN_KEY, *made]
    leaks = [(what, find_secrets(text, secrets)) for what, text in seen if find_secrets(text, secrets)]
    assert not leaks, leaks
    log = proc.log.read_text(errors="replace")
    assert " DEBUG " in log  # the most verbose level was on
    assert not find_secrets(log, secrets), find_secrets(log, secrets)
    assert len(seen) > 60


# -- CORS -----------------------------------------------------------------------------------------------------------------------
def preflight(url: str, path: str, origin: str) -> httpx.Response:
    return httpx.options(
        url + path,
        timeout=10,
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )


def test_cors_is_off_unless_configured(gw: GatewayProcess) -> None:
    for path in ("/v1/chat/completions", "/v1/models", "/admin/status"):
        r = preflight(gw.url, path, "https://evil.example")
        assert "access-control-allow-origin" not in r.headers, (path, r.status_code, r.headers)
    r = httpx.get(gw.url + "/v1/models", headers={**CLIENT, "origin": "https://evil.example"}, timeout=10)
    assert "access-control-allow-origin" not in r.headers


def test_cors_allows_only_the_configured_origins(upstream: FakeOpenAI, tmp_path: Path) -> None:
    cfg = security_config(upstream.url, str(tmp_path / "data"), cors_origins=["https://app.example"])
    with RunningGateway(cfg) as g:
        ok = preflight(g.url, "/v1/chat/completions", "https://app.example")
        assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == "https://app.example"
        bad = preflight(g.url, "/v1/chat/completions", "https://evil.example")
        assert "access-control-allow-origin" not in bad.headers
        r = httpx.post(
            g.url + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MSG},
            timeout=10,
            headers={**CLIENT, "origin": "https://app.example"},
        )
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"


# -- upstream URLs ------------------------------------------------------------------------------------------------------------------
BAD_URLS = [
    "file:///etc/passwd",
    "ftp://example.com/v1",
    "javascript:alert(1)",
    "http://user:pw@example.com/v1",
    "http://example.com:99999/v1",
    "http://example.com:0/v1",
    "http://exa mple.com/v1",
    "http://example.com/v1?key=x",
    "http://example.com/v1#x",
    "http://[::1/v1",
    "http://example.com\n/v1",
    "example.com/v1",
    "http:///v1",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_invalid_upstream_url_in_a_config_file_is_refused(tmp_path: Path, url: str) -> None:
    cfg = {"backends": {"up": {"type": "openai", "base_url": url}}, "models": {"m": {"backend": "up"}}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stdout
    assert "backends.up.base_url" in r.stderr


@pytest.mark.parametrize("url", BAD_URLS[:6])
def test_invalid_upstream_url_through_the_admin_api_is_400(gw: GatewayProcess, url: str) -> None:
    r = httpx.post(
        gw.url + "/admin/backends",
        headers=ADMIN,
        timeout=10,
        json={"name": "evil", "type": "vllm", "endpoints": [url]},
    )
    assert r.status_code == 400
    assert openai_error(r)["code"] == "invalid_policy"


# -- request ids ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rid",
    [
        "<script>alert(1)</script>",
        "a" * 200,
        "id with spaces",
        "caf\u00e9",
        "a;b=c",
        "${jndi:ldap://x}",
        "../../etc",
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models", "/admin/status", "/v1/nope"])
def test_unsafe_request_ids_are_replaced_not_echoed(gw: GatewayProcess, rid: str, path: str) -> None:
    headers = {**(ADMIN if path.startswith("/admin") else CLIENT), "x-request-id": rid.encode("utf-8")}
    if path == "/v1/chat/completions":
        r = httpx.post(
            gw.url + path, headers=headers, json={"model": "gpt-4o-mini", "messages": MSG}, timeout=10
        )
    else:
        r = httpx.get(gw.url + path, headers=headers, timeout=10)
    echoed = r.headers["x-request-id"]
    assert echoed != rid and re.fullmatch(r"[0-9a-f]{32}", echoed), echoed
    assert rid not in r.text


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models"])
def test_safe_request_ids_are_echoed(gw: GatewayProcess, path: str) -> None:
    rid = "req-2026.11:abc_DEF"
    headers = {**CLIENT, "x-request-id": rid}
    if path == "/v1/chat/completions":
        r = httpx.post(
            gw.url + path, headers=headers, json={"model": "gpt-4o-mini", "messages": MSG}, timeout=10
        )
    else:
        r = httpx.get(gw.url + path, headers=headers, timeout=10)
    assert r.headers["x-request-id"] == rid


def test_unsafe_request_id_never_reaches_the_upstream_or_the_ledger(
    gw: GatewayProcess, upstream: FakeOpenAI
) -> None:
    rid = "<img src=x onerror=alert(1)>"
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={**CLIENT, "x-request-id": rid},
        json={"model": "gpt-4o-mini", "messages": MSG},
        timeout=10,
    )
    assigned = r.headers["x-request-id"]
    assert upstream.requests[-1].headers["x-request-id"] == assigned
    httpx.get(gw.url + "/admin/spend", headers=ADMIN, timeout=30)  # flushes the ledger
    con = sqlite3.connect(f"file:{Path(gw.path).parent / 'data' / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        ids = {row[0] for row in con.execute("SELECT request_id FROM requests")}
    finally:
        con.close()
    assert assigned in ids and rid not in ids


def test_error_bodies_do_not_echo_the_presented_key(gw: GatewayProcess) -> None:
    bogus = "sk-" + "q" * 40
    for path in ("/v1/chat/completions", "/v1/models", "/admin/status"):
        r = httpx.request(
            "POST" if path.endswith("completions") else "GET",
            gw.url + path,
            timeout=10,
            headers={"authorization": f"Bearer {bogus}"},
            content=orjson.dumps({"model": "gpt-4o-mini", "messages": MSG}),
        )
        assert r.status_code == 401
        assert bogus[:12] not in r.text


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/chat/completions/"), ("POST", "/v1/embeddings/"), ("GET", "/admin/keys/")],
)
def test_a_trailing_slash_on_an_api_path_is_a_404_not_a_redirect_built_from_the_host_header(
    gw: GatewayProcess, method: str, path: str
) -> None:
    headers = {**(ADMIN if path.startswith("/admin") else CLIENT), "host": "evil.example"}
    body = {"model": "gpt-4o-mini", "messages": MSG, "input": "hi"} if method == "POST" else None
    r = httpx.request(method, gw.url + path, json=body, headers=headers, timeout=10)
    assert r.status_code == 404, r.text
    assert "location" not in r.headers
    assert openai_error(r)["code"] == "not_found"


def test_a_console_page_with_a_trailing_slash_redirects_to_its_path_alone(gw: GatewayProcess) -> None:
    r = httpx.get(gw.url + "/console/", headers={"host": "evil.example"}, timeout=10)
    assert r.status_code == 307
    assert r.headers["location"] == "/console"


def test_an_unknown_console_page_is_a_404(gw: GatewayProcess) -> None:
    assert httpx.get(gw.url + "/console/nothing-here", timeout=10, follow_redirects=False).status_code == 404
