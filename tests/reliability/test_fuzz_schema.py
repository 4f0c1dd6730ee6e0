"""Schemathesis against the gateway's own OpenAPI schema (every public and admin operation), over real
sockets to a running ``pointsman serve``: schema-valid and schema-violating requests, with no key, a client
key, a scoped client key, the admin key and a wrong key. Every answer is a 2xx or an OpenAI-shaped 4xx (in
Anthropic's shape for its Messages API) — never a 5xx, a dropped connection or a hang — and the server is healthy
afterwards.

Quick profile in the default tier (a few hundred cases); the thorough one (thousands) in the slow tier.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.gateway_runner import GatewayProcess
from tests.reliability.conftest import SCOPED_KEY
from tests.reliability.probes import CLIENT, MSG, is_anthropic_error, is_openai_error

AUTH: dict[str, dict[str, str]] = {
    "none": {},
    "client": {"authorization": f"Bearer {CLIENT_KEY}"},
    "scoped": {"authorization": f"Bearer {SCOPED_KEY}"},
    "admin": {"authorization": f"Bearer {ADMIN_KEY}"},
    "wrong": {"authorization": "Bearer sk-not-a-key-000000"},
}
POS, NEG = GenerationMode.POSITIVE, GenerationMode.NEGATIVE


@dataclass
class Run:
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def own_auth(path: str) -> str:
    return "admin" if path.startswith("/admin") else "client" if path.startswith("/v1/") else "none"


def plan(op: Any, thorough: bool) -> list[tuple[GenerationMode, str, int]]:
    """(mode, auth, examples) for one operation; schema-violating cases only where there is an input."""
    modes = (
        (POS, NEG)
        if any(len(getattr(op, a)) for a in ("path_parameters", "query", "headers", "body"))
        else (POS,)
    )
    own = own_auth(op.path)
    if thorough:  # most cases with the operation's own credential, where they get past authentication
        return [(mode, auth, 40 if auth == own else 5) for mode in modes for auth in AUTH]
    steps = [(mode, own, 2) for mode in modes] + [(POS, "none", 1), (POS, "wrong", 1)]
    if own == "admin":
        steps.append((POS, "client", 1))  # a client key on the admin API
    return steps


def send(client: httpx.Client, kwargs: dict[str, Any]) -> httpx.Response:
    kwargs = dict(kwargs)
    kwargs.pop("cookies", None)
    data = kwargs.pop("data", None)
    if isinstance(data, bytes | str):
        kwargs["content"] = data
    elif data is not None:
        kwargs["data"] = data
    return client.request(**kwargs)


def check(
    run: Run, client: httpx.Client, base_url: str, where: str, case: Any, headers: dict[str, str]
) -> None:
    kwargs = case.as_transport_kwargs(base_url=base_url, headers=headers)
    run.cases += 1
    where = f"{where} { ({k: v for k, v in kwargs.items() if k != 'headers'})!r:.600}"
    try:
        resp = send(client, kwargs)
    except httpx.HTTPError as exc:  # a dropped connection or a hang
        run.failures.append(f"{where}: {exc!r}")
        return
    run.statuses[resp.status_code] += 1
    if resp.status_code >= 500:
        run.failures.append(f"{where}: {resp.status_code} {resp.text[:300]}")
    elif resp.status_code >= 400 and case.path.startswith("/v1/messages"):
        if not is_anthropic_error(resp):
            run.failures.append(f"{where}: {resp.status_code} not Anthropic-shaped: {resp.text[:300]}")
    elif resp.status_code >= 400 and not is_openai_error(resp):
        run.failures.append(f"{where}: {resp.status_code} not OpenAI-shaped: {resp.text[:300]}")


def fuzz_operation(
    run: Run, client: httpx.Client, base_url: str, op: Any, mode: GenerationMode, auth: str, examples: int
) -> None:
    where = f"{op.label} [{mode.value}, {auth}]"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        phases=[Phase.generate],
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        check(run, client, base_url, where, case, AUTH[auth])

    try:
        one()
    except Unsatisfiable:
        pass  # no schema-violating variant exists (an operation without parameters or body)


def fuzz(gw: GatewayProcess, thorough: bool) -> Run:
    schema = schemathesis.openapi.from_url(gw.url + "/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    run = Run()
    t0 = time.monotonic()
    with httpx.Client(timeout=30) as client:
        for op in ops:
            for mode, auth, examples in plan(op, thorough):
                fuzz_operation(run, client, gw.url, op, mode, auth, examples)
    print(
        f"\nschemathesis ({'thorough' if thorough else 'quick'}): {run.cases} cases over {len(ops)} operations "
        f"in {time.monotonic() - t0:.0f} s; statuses {dict(sorted(run.statuses.items()))}"
    )
    return run


def assert_healthy(gw: GatewayProcess) -> None:
    assert gw.proc is not None and gw.proc.poll() is None, "the gateway died"
    assert httpx.get(gw.url + "/healthz", timeout=10).status_code == 200
    assert httpx.get(gw.url + "/readyz", timeout=10).status_code == 200
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        headers=CLIENT,
        json={"model": "gpt-4o-mini", "messages": MSG},
        timeout=10,
    )
    assert r.status_code < 500, r.text
    log = gw.log.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 300 :][:3000]


@pytest.mark.no_cover  # the gateway runs in its own process: the tracer measured nothing here, it only slowed the fuzzer ~2x
def test_schemathesis_quick_profile_finds_no_5xx_and_only_openai_shaped_errors(
    fuzz_gateway: GatewayProcess,
) -> None:
    run = fuzz(fuzz_gateway, thorough=False)
    assert run.cases >= 300
    assert not run.failures, f"{len(run.failures)} failures:\n" + "\n".join(run.failures[:20])
    assert_healthy(fuzz_gateway)


@pytest.mark.slow
def test_schemathesis_thorough_profile_finds_no_5xx_and_only_openai_shaped_errors(
    fuzz_gateway: GatewayProcess,
) -> None:
    run = fuzz(fuzz_gateway, thorough=True)
    assert run.cases >= 3000
    assert not run.failures, f"{len(run.failures)} failures:\n" + "\n".join(run.failures[:20])
    assert_healthy(fuzz_gateway)
