"""Schemathesis against a running gateway's own OpenAPI schema: ``python -m tests.reliability.schema_fuzz URL
quick|thorough`` prints the run (cases, statuses, failures) as JSON on its last line.

Its own process (``tests/reliability/test_fuzz_schema.py`` runs it): in the test process, coverage's tracer
followed every call of the fuzzer (hypothesis, schemathesis, httpx), doubling the quick profile's time (69 s
against 38) while measuring nothing: the gateway it fuzzes is a process of its own.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.reliability.conftest import SCOPED_KEY
from tests.reliability.probes import is_anthropic_error, is_openai_error

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


def fuzz(url: str, thorough: bool) -> Run:
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    run = Run()
    t0 = time.monotonic()
    with httpx.Client(timeout=30) as client:
        for op in ops:
            for mode, auth, examples in plan(op, thorough):
                fuzz_operation(run, client, url, op, mode, auth, examples)
    print(
        f"schemathesis ({'thorough' if thorough else 'quick'}): {run.cases} cases over {len(ops)} operations "
        f"in {time.monotonic() - t0:.0f} s; statuses {dict(sorted(run.statuses.items()))}",
        file=sys.stderr,
    )
    return run


def main(argv: list[str]) -> int:
    url, profile = argv
    run = fuzz(url, thorough=profile == "thorough")
    doc = {"cases": run.cases, "statuses": run.statuses, "failures": run.failures}
    print(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
