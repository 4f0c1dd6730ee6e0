"""Config loading: interpolation, strict validation with paths, embedded defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, defaults_from_env, load_config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_env_interpolation_with_default(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "backends:\n  b: {type: openai, base_url: '${UP:-http://127.0.0.1:1/v1}', api_key: '${KEY}'}\n",
    )
    cfg = load_config(p, env={"KEY": "sk-xyz"})
    assert cfg.backends["b"].base_url == "http://127.0.0.1:1/v1"  # type: ignore[union-attr]
    assert cfg.backends["b"].api_key == "sk-xyz"


def test_missing_env_variable_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, "admin_key: '${NOPE_NOT_SET}'\n")
    with pytest.raises(ConfigError, match="NOPE_NOT_SET"):
        load_config(p, env={})


def test_unknown_key_fails_with_its_path(tmp_path: Path) -> None:
    p = write(tmp_path, "server: {port: 4000, prot: 1}\n")
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    assert "server.prot: unknown key" in str(info.value)
    assert str(p) in str(info.value)


def test_bad_route_weight_fails_with_its_path(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "backends: {b: {type: openai, base_url: 'http://x/v1'}}\nmodels: {m: {backend: b}}\n"
        "routes:\n  - {name: a, targets: [{model: m}]}\n  - {name: b2, targets: [{model: m}]}\n"
        "  - {name: c, targets: [{model: m, weight: -1}]}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    assert "routes[2].targets[0].weight" in str(info.value)


def test_unknown_backend_reference_fails(tmp_path: Path) -> None:
    p = write(tmp_path, "models: {m: {backend: missing}}\n")
    with pytest.raises(ConfigError, match=r"models\.m\.backend: unknown backend"):
        load_config(p, env={})


def test_backend_url_with_credentials_is_rejected(tmp_path: Path) -> None:
    p = write(tmp_path, "backends: {b: {type: openai, base_url: 'http://user:pw@x/v1'}}\n")
    with pytest.raises(ConfigError, match=r"backends\.b\.base_url"):
        load_config(p, env={})


@pytest.mark.parametrize(
    "headers",
    ["{'x-a': \"one\\r\\nx-b: two\"}", "{'bad name': v}", "{'x-a': \"nul\\0\"}"],
    ids=["crlf", "space", "nul"],
)
def test_backend_headers_that_could_break_the_request_are_rejected(tmp_path: Path, headers: str) -> None:
    p = write(tmp_path, f"backends: {{b: {{type: openai, base_url: 'http://x/v1', headers: {headers}}}}}\n")
    with pytest.raises(ConfigError, match=r"backends\.b\.headers"):
        load_config(p, env={})


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    p = write(tmp_path, "server: [1,\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p, env={})


def test_defaults_from_environment() -> None:
    cfg = defaults_from_env(
        {
            "OPENAI_API_KEY": "sk-o",
            "ANTHROPIC_API_KEY": "sk-a",
            "POINTSMAN_VLLM_URL": "http://127.0.0.1:8000/v1",
        }
    )
    assert {b.type for b in cfg.backends.values()} == {"openai", "litellm", "vllm"}
    assert cfg.models["claude-*"].backend == "anthropic"


def test_serve_exits_2_with_a_readable_error(tmp_path: Path) -> None:
    p = write(tmp_path, "server: {port: 'x'}\n")
    r = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(p)], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert "server.port" in r.stderr and "Traceback" not in r.stderr


def test_starting_without_litellm_backend_does_not_import_litellm() -> None:
    code = (
        "import sys; from gateway.config import defaults_from_env; from gateway.app import create_app;"
        "create_app(defaults_from_env({'OPENAI_API_KEY': 'x'})); print('litellm' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_starting_imports_neither_fastapi_nor_aiohttp() -> None:
    """The admin app (FastAPI) is built on the first request that needs it; upstream calls use the gateway's own
    client: a start (and a gateway that only serves inference) never pays for importing either."""
    code = (
        "import sys; from gateway.config import defaults_from_env; from gateway.app import create_app;"
        "create_app(defaults_from_env({'OPENAI_API_KEY': 'x'})); print('fastapi' in sys.modules, 'aiohttp' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False False"


def test_starting_without_vllm_fleets_imports_neither_the_fleet_meter_nor_a_websocket_protocol() -> None:
    """What a start with default settings leaves for later: the vLLM fleet meter (first metered fleet) and uvicorn's
    WebSocket protocol (the gateway's HTTP protocol makes no upgrades)."""
    code = (
        "import sys; from gateway.config import defaults_from_env; from gateway.app import create_app;"
        "from gateway.cli.main import uvicorn_settings; import uvicorn;"
        "cfg = defaults_from_env({'OPENAI_API_KEY': 'x'}); app = create_app(cfg);"
        "uvicorn.Config(app, **uvicorn_settings(cfg.server, '127.0.0.1', 0)).load();"
        "print(sorted(m for m in ('serving.vllm.fleet', 'websockets') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_env_references_in_comments_are_ignored(tmp_path: Path) -> None:
    p = write(tmp_path, "# set ${NOT_SET_ANYWHERE} to override\nserver: {port: 4001}\n")
    assert load_config(p, env={}).server.port == 4001


def test_env_value_is_substituted_into_numeric_field(tmp_path: Path) -> None:
    p = write(tmp_path, "server: {port: '${PORT:-4002}'}\n")
    assert load_config(p, env={}).server.port == 4002


def test_unknown_shadow_model_fails_with_its_path(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "backends: {b: {type: openai, base_url: 'http://x/v1'}}\nmodels: {m: {backend: b}}\n"
        "routes:\n  - {name: a, targets: [{model: m}], shadow: {model: nope}}\n",
    )
    with pytest.raises(ConfigError, match=r"routes\[0\]\.shadow\.model: unknown model"):
        load_config(p, env={})


@pytest.mark.parametrize("member", ["model", "stream"])
def test_a_route_default_the_gateway_decides_fails_with_its_path(tmp_path: Path, member: str) -> None:
    p = write(
        tmp_path,
        "backends: {b: {type: openai, base_url: 'http://x/v1'}}\nmodels: {m: {backend: b}}\n"
        f"routes:\n  - {{name: a, targets: [{{model: m}}], defaults: {{{member}: true, top_p: 0.5}}}}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    assert "routes[0].defaults" in str(info.value) and f"{member} cannot be a default" in str(info.value)
