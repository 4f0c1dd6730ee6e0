"""What the gateway logs at startup: the config's source, what is in force, and what to do when nothing is."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.build import compiled_modules, describe
from gateway.config import defaults_from_env, validate_document
from gateway.startup_report import report
from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.server import free_port


def lines(cfg_file: object = None, **env: str) -> list[str]:
    cfg = defaults_from_env(env) if cfg_file is None else cfg_file
    return [f"{logging.getLevelName(level)} {msg}" for level, msg in report(cfg, cfg, 1)]  # type: ignore[arg-type]


def test_environment_defaults_are_named_as_such() -> None:
    out = lines(OPENAI_API_KEY="sk-x", POINTSMAN_API_KEY=CLIENT_KEY)
    assert out[0].startswith("INFO config: the environment defaults (no config file")
    assert "INFO models: gpt-* -> openai, o1* -> openai" in "\n".join(out)
    assert not any(line.startswith("WARNING") for line in out)


def test_a_config_file_is_named_with_its_models_routes_and_key_names_never_secrets() -> None:
    doc = basic_config("http://127.0.0.1:9/v1", routes=[{"name": "canary", "targets": [{"model": "alias"}]}])
    out = "\n".join(lines(validate_document(doc, "/etc/pointsman.yaml")))
    assert "config: the config file /etc/pointsman.yaml; policy version 1 in force" in out
    assert "backends: up (openai at http://127.0.0.1:9/v1)" in out
    assert "models: gpt-4o-mini -> up, alias -> up, fake-* -> up" in out
    assert "routes: canary -> alias" in out and "client keys: app" in out
    assert CLIENT_KEY not in out and "sk-upstream-secret" not in out


def test_nothing_configured_says_what_to_do() -> None:
    out = "\n".join(lines())
    assert "WARNING nothing to serve: no backends are configured. Set OPENAI_API_KEY" in out
    assert "WARNING no client keys: every inference request gets 401. Set POINTSMAN_API_KEY" in out


def test_serve_without_a_config_file_logs_the_environment_defaults(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "POINTSMAN_VLLM_URL")
    }
    env["POINTSMAN_DATA_DIR"] = str(tmp_path / "data")
    log = tmp_path / "serve.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(20)
    text = log.read_text()
    assert "imported from the environment defaults (no config file" in text
    assert "imported from the config file" not in text
    assert "nothing to serve: no backends are configured" in text
    assert "without any key or network: `pointsman demo`" in text
    import gateway.inference.handler  # noqa: F401  (the test process imports what the gateway does)

    # the compiled tier's gateway says it runs compiled
    assert ("compiled with mypyc" if compiled_modules() else describe([])) in text


def test_the_ledger_line_names_the_database_and_the_outbox_bound_never_credentials() -> None:
    doc = basic_config(
        "http://127.0.0.1:9/v1",
        server={"data_dir": "/var/lib/pointsman"},
        accounting={
            "ledger": {"backend": "postgres", "dsn": "postgresql://acct:s3cret@db.internal:6543/books"}
        },
    )
    out = "\n".join(lines(validate_document(doc, "/etc/pointsman.yaml")))
    assert (
        "INFO ledger: PostgreSQL at db.internal:6543/books; outbox /var/lib/pointsman/ledger.sqlite3 holds up "
        "to 5,000,000 unshipped rows (ledger.outbox_max_rows)" in out
    )
    assert "s3cret" not in out and "acct" not in out


def test_the_ledger_line_of_the_embedded_default_names_its_file() -> None:
    doc = basic_config("http://127.0.0.1:9/v1", server={"data_dir": "/srv/pm"})
    assert "INFO ledger: SQLite at /srv/pm/ledger.sqlite3" in lines(validate_document(doc, "x.yaml"))
