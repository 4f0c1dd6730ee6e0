from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import free_port
from tests.gateway_runner import GatewayProcess, RunningGateway
from tests.reliability.faults import FaultyOpenAI, RobustOpenAI

PROVIDER_KEY = "sk-provider-secret-7f3a9c1e5b"


def fault_config(faulty_url: str, backup_url: str, data_dir: str, **extra: Any) -> dict[str, Any]:
    """One gateway for every upstream fault: model-name suffixes pick the fault (see tests/reliability/faults.py).

    - ``fault-<behaviour>`` on backend ``up`` (3 s per call), ``tight-<behaviour>`` on ``tight`` (0.3 s),
      ``stall-<behaviour>`` on ``stall`` (1.5 s: a stream's first events arrive well within it on a loaded
      machine, then the stall runs it out);
    - ``refused-model`` on a port nothing listens on;
    - ``backup-model`` on a healthy second upstream;
    - task ``fallback`` falls back to ``backup-model``; task ``retry`` retries the same model twice.
    Breakers never open here (each test owns its own faults)."""
    cfg: dict[str, Any] = {
        "admin_key": ADMIN_KEY,
        "server": {"data_dir": data_dir, "request_timeout_s": 20},
        "backends": {
            "up": {"type": "openai", "base_url": faulty_url, "api_key": PROVIDER_KEY, "timeout_s": 3},
            "tight": {"type": "openai", "base_url": faulty_url, "api_key": PROVIDER_KEY, "timeout_s": 0.3},
            "stall": {"type": "openai", "base_url": faulty_url, "api_key": PROVIDER_KEY, "timeout_s": 1.5},
            "refused": {
                "type": "openai",
                "base_url": f"http://127.0.0.1:{free_port()}/v1",
                "api_key": PROVIDER_KEY,
                "connect_timeout_s": 1,
            },
            "backup": {"type": "openai", "base_url": backup_url, "api_key": PROVIDER_KEY},
        },
        "models": {
            "fault-*": {"backend": "up"},
            "tight-*": {"backend": "tight"},
            "stall-*": {"backend": "stall"},
            "refused-model": {"backend": "refused"},
            "backup-model": {"backend": "backup"},
        },
        "keys": [{"name": "app", "key": CLIENT_KEY, "team": "search"}],
        "routes": [
            {
                "name": "with-fallback",
                "match": {"tags": {"task": "fallback"}},
                "targets": [],
                "fallbacks": ["backup-model"],
            },
            {"name": "with-retries", "match": {"tags": {"task": "retry"}}, "targets": [], "max_retries": 2},
        ],
        "routing": {
            "breaker": {"consecutive_failures": 10_000, "error_rate": 1.0, "min_requests": 1_000_000},
            "backoff": {"base_s": 0.001, "max_s": 0.01},
        },
    }
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="module")
def faulty() -> Iterator[FaultyOpenAI]:
    fake = FaultyOpenAI(name="faulty").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def backup() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name="backup").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fault_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def fault_gateway(faulty: FaultyOpenAI, backup: FakeOpenAI, fault_data: Path) -> Iterator[RunningGateway]:
    with RunningGateway(fault_config(faulty.url, backup.url, str(fault_data))) as gw:
        yield gw


FUZZ_BODY_LIMIT = 256 * 1024
FUZZ_BODY_TIMEOUT_S = 2.0
FUZZ_HEADER_COUNT = 100  # server.max_header_count's default
SCOPED_KEY = "sk-test-scoped-0002"


@pytest.fixture(scope="module")
def fuzz_upstream() -> Iterator[RobustOpenAI]:
    up = RobustOpenAI(name="fuzz-upstream").start()
    yield up
    up.stop()


FUZZ_DEFAULTS = {"max_tokens": 7, "top_p": 0.5}
"""Route defaults for the model ``defaults-model``."""


@pytest.fixture(scope="module")
def fuzz_gateway(
    tmp_path_factory: pytest.TempPathFactory, fuzz_upstream: RobustOpenAI
) -> Iterator[GatewayProcess]:
    """A real ``pointsman serve`` (the bounded HTTP protocol included) in front of a healthy fake upstream,
    with a 256 KiB body limit, a 3 s header timeout, a 2 s body timeout, the admin API on, and two client keys
    (one scoped to ``gpt-*`` models). Models that make the gateway edit what it forwards: ``alias`` (renamed
    upstream), ``stripped-model`` (a backend that takes no ``metadata``), ``defaults-model`` (route defaults)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    up = fuzz_upstream
    cfg: dict[str, Any] = {
        "admin_key": ADMIN_KEY,
        "server": {
            "data_dir": str(tmp / "data"),
            "max_body_bytes": FUZZ_BODY_LIMIT,
            "request_timeout_s": 10,
            "header_timeout_s": 3,
            "body_timeout_s": FUZZ_BODY_TIMEOUT_S,
        },
        "backends": {
            "up": {"type": "openai", "base_url": up.url, "api_key": PROVIDER_KEY, "timeout_s": 5},
            "strip": {
                "type": "openai",
                "base_url": up.url,
                "api_key": PROVIDER_KEY,
                "timeout_s": 5,
                "reject_metadata": True,
            },
        },
        "models": {
            "gpt-4o-mini": {"backend": "up"},
            "fake-*": {"backend": "up"},
            "text-embedding-3-small": {"backend": "up"},
            "alias": {"backend": "up", "upstream_model": "gpt-4o-mini-2024-07-18"},
            "stripped-model": {"backend": "strip"},
            "defaults-model": {"backend": "up"},
        },
        "keys": [
            {"name": "app", "key": CLIENT_KEY, "team": "search"},
            {"name": "scoped", "key": SCOPED_KEY, "team": "batch", "models": ["gpt-*"]},
        ],
        "routes": [
            {"name": "with-defaults", "match": {"model": "defaults-model"}, "defaults": FUZZ_DEFAULTS}
        ],
    }
    gw = GatewayProcess(cfg, tmp).start()
    try:
        yield gw
    finally:
        gw.stop()
