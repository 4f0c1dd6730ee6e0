"""The gateway's config file: YAML with ``${ENV}`` / ``${ENV:-default}`` interpolation, validated strictly.

Errors name the file, the path in the document (``routes[2].targets[0].weight``) and what was expected.
With no file, ``defaults_from_env`` builds the embedded defaults from the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from accounting.capture.config import CapturePolicy, CaptureSettings, unknown_detectors
from accounting.config import AccountingConfig
from accounting.export.config import ObservabilityConfig
from gateway.yaml_doc import parse_yaml
from routing.config import RouteConfig, RoutingSettings
from serving.config import BackendConfig, ModelConfig
from serving.http_backend import DEFAULT_MAX_RESPONSE_BYTES
from wire.config_model import StrictModel
from wire.sse import StreamBounds

NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
"""Names (backends, models, keys, teams) are echoed in response headers, logs and metrics: no control
characters (a newline would break every response that names it, or forge a log line)."""


def check_names(names: Iterable[str], what: str) -> None:
    for name in names:
        if not name or len(name) > 256 or re.search(r"[\x00-\x1f\x7f]", name):
            raise ValueError(f"{what} name {name!r}: 1 to 256 characters, no control characters")


class ConfigError(Exception):
    """A config document is invalid; ``str()`` is a readable multi-line report."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {path or '<root>'}: {msg}" for path, msg in problems]
        super().__init__("invalid configuration\n  " + "\n  ".join(lines))


class ServerConfig(StrictModel):
    host: str = "127.0.0.1"
    """Interface to listen on."""
    port: int = Field(default=4000, ge=1, le=65535)
    """TCP port."""
    workers: int = Field(default=1, ge=1, le=256)
    """Worker processes (metrics are aggregated across them)."""
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Request bodies larger than this get 413."""
    request_timeout_s: float = Field(default=300.0, gt=0, le=3600)
    """Default total time for one request (routes may override)."""
    graceful_timeout_s: float = Field(default=30.0, ge=0, le=3600)
    """On SIGTERM, how long in-flight requests may take to finish."""
    drain_delay_s: float = Field(default=0.0, ge=0, le=600)
    """On SIGTERM, how long to keep serving with ``/readyz`` answering 503 (so load balancers stop sending)
    before the listener closes and in-flight requests get ``graceful_timeout_s``."""
    shutdown_step_timeout_s: float = Field(default=90.0, gt=0, le=3600)
    """After the last request, how long each component (shadow, policy, ledger, capture, exporters, backends)
    may take to close. One that takes longer is logged with the tasks still running and left behind, so that
    the process exits; the ledger's and capture's own flushes are bounded at 60 s, within the default."""
    max_header_bytes: int = Field(default=64 * 1024, ge=4096, le=16 * 1024 * 1024)
    """Request line plus headers larger than this get 431 and the connection is closed."""
    max_header_count: int = Field(default=100, ge=16, le=10_000)
    """A request with more header fields than this gets 431 and the connection is closed."""
    header_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    """A request whose headers have not all arrived this long after their first byte gets 408 (slow clients
    cannot hold connections open)."""
    body_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    """A request whose body has not all arrived this long after its headers gets 408 and the connection is
    closed."""
    keep_alive_timeout_s: float = Field(default=75.0, gt=0, le=3600)
    """An idle keep-alive connection is closed this long after its last answer. Keep it longer than the idle
    expiry of the clients and load balancers in front: a client that reuses a connection at the moment the
    gateway closes it gets a reset, and its request is lost (httpx and the OpenAI SDKs keep idle connections
    5 s, aiohttp 15 s, an AWS load balancer 60 s)."""
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=64 * 1024)
    """A non-streamed upstream answer larger than this (after decompression) is refused: 502
    ``upstream_response_too_large``, the connection to the upstream closed without reading on."""
    max_event_bytes: int = Field(default=16 * 1024 * 1024, ge=64 * 1024)
    """One streamed event (the bytes before its blank line) larger than this ends the stream with an error event
    (``upstream_response_too_large``)."""
    max_retained_stream_bytes: int = Field(default=8 * 1024 * 1024, ge=0)
    """How much of each stream is kept while it is relayed, for token estimates, shadow comparison and capture;
    a longer stream is relayed whole but recorded with ``error_type: retention_capped`` (see docs/reliability.md)."""
    cors_origins: list[str] = Field(default_factory=list)
    """Origins allowed by CORS; empty means CORS is off."""
    data_dir: str = "./data"
    """Where embedded stores (SQLite policy, ledger, shadow pairs, captures) live, with the price table's cut."""
    log_level: str = "info"
    """Log level."""
    models_refresh_s: float = Field(default=300.0, gt=0, le=86_400)
    """How often the upstreams' own model lists are re-read, for the glob entries ``/v1/models`` lists."""

    @property
    def stream_bounds(self) -> StreamBounds:
        """What the relay holds of one stream (``max_event_bytes``, ``max_retained_stream_bytes``)."""
        return StreamBounds(self.max_event_bytes, self.max_retained_stream_bytes)


class KeyConfig(StrictModel):
    """A client API key. Give either ``key`` (hashed at load) or ``key_sha256``."""

    name: str = Field(min_length=1, max_length=128, pattern=NAME_PATTERN)
    """Key name (in the ledger and metrics)."""
    key: str | None = Field(default=None, min_length=8, repr=False)
    """The secret itself (bootstrap); stored hashed, never logged."""
    key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """SHA-256 hex digest of the key, when the secret is not in the config."""
    team: str | None = Field(default=None, min_length=1, max_length=128, pattern=NAME_PATTERN)
    """Team the key belongs to."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Default tags for requests made with this key (e.g. ``task``)."""
    models: list[str] | None = None
    """Model names (globs) this key may use; None allows all."""
    allowed_tags: dict[str, list[str]] | None = None
    """If set, requests may only carry these tag values (e.g. ``{task: [summarize]}``)."""
    capture: CapturePolicy | None = None
    """Capture policy for this key's requests on every route (before its team's and the route's; needs the
    team's approval). ``sample_rate: 0`` keeps this key's traffic out of capture."""


class RedisConfig(StrictModel):
    url: str | None = None
    """``redis://`` URL; when set, policy, limits, budgets and the ledger are shared through Redis."""
    on_unavailable: str = Field(default="fail_open", pattern=r"^(fail_open|fail_closed)$")
    """What limits and budgets do when Redis is unreachable: ``fail_open`` (local limits) or ``fail_closed``. Also
    what a Responses request citing a previous response gets while the record of their owners (Redis or the
    database) cannot be read: forwarded unchecked, or 503 (docs/routing.md)."""


class DatabaseConfig(StrictModel):
    """A PostgreSQL database the replicas share for the routing policy, shadow pairs and approvals."""

    backend: Literal["none", "postgres"] = "none"
    """``postgres``: the policy store, the shadow pair store and the approval store live in the database at
    ``dsn`` (each in its own schema: ``policy``, ``shadow``, ``approvals``), shared by every replica, instead of
    Redis or the local files. The ledger has its own setting (``accounting.ledger.backend``)."""
    dsn: str | None = None
    """PostgreSQL connection string (``postgresql://user:pass@host:5432/db``); ``pointsman db migrate``."""

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> DatabaseConfig:
        if self.backend == "postgres" and not self.dsn:
            raise ValueError("backend postgres needs dsn")
        return self

    @property
    def shared_dsn(self) -> str | None:
        """The DSN the shared stores use, or None when they stay on Redis or the local files."""
        return self.dsn if self.backend == "postgres" else None


ENVIRONMENT = "<environment>"
"""The source of the embedded defaults built from environment variables (no config file)."""
ENV_KEY = "env"
"""The name of the client key whose secret is ``POINTSMAN_API_KEY`` (when the config file has no key so named)."""
ENV_KEY_VARIABLE = "POINTSMAN_API_KEY"


class ConsoleConfig(StrictModel):
    """The web console at ``/console`` (routes, spend, shadow tests, capture consent, keys)."""

    enabled: bool = False
    """Serve the console (it also needs ``admin_key``: people log in with it, or with ``read_only_key``)."""
    read_only_key: str | None = Field(default=None, min_length=16, repr=False)
    """A second login that can look at every page but change nothing. Never logged."""
    session_ttl_s: float = Field(default=12 * 3600, ge=60, le=30 * 86400)
    """How long a login lasts."""


class ConsentConfig(StrictModel):
    """Third-party processing consent (docs/consent.md): whether a team (or key) must have approved it before its
    request data may reach a backend with ``third_party: true``. Approvals are made through the admin API, the
    CLI (``pointsman consent``) or the console, recorded with who and when, and shared across replicas."""

    third_party: Literal["required", "not_required"] = "not_required"
    """``required``: a team or key without a recorded approval is served only by in-house backends (403
    ``third_party_processing_not_approved`` when none can serve). ``not_required`` (the default, as before
    consent existed): only teams or keys whose approval was explicitly revoked are kept in-house."""
    approval_refresh_s: float = Field(default=1.0, gt=0, le=3600)
    """How often a worker re-reads approvals made elsewhere (other workers, other replicas)."""


class GatewayConfig(StrictModel):
    """The whole config file."""

    _source: str = PrivateAttr(default="")
    _env_keys: frozenset[str] = PrivateAttr(default=frozenset())

    server: ServerConfig = Field(default_factory=ServerConfig)
    """HTTP server settings."""
    admin_key: str | None = Field(default=None, min_length=8, repr=False)
    """Key for ``/admin`` (or ``POINTSMAN_ADMIN_KEY``). Without one the admin API refuses everything."""
    redis: RedisConfig = Field(default_factory=RedisConfig)
    """Shared state (or ``POINTSMAN_REDIS_URL``)."""
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    """A PostgreSQL database the replicas share for the routing policy, shadow pairs and approvals."""
    backends: dict[str, BackendConfig] = Field(default_factory=dict)
    """Upstreams by name."""
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    """Model names clients send (exact, or globs like ``gpt-*``) -> backend + upstream id."""
    keys: list[KeyConfig] = Field(default_factory=list)
    """Client API keys."""
    routes: list[RouteConfig] = Field(default_factory=list)
    """Routing rules, first match wins."""
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    """How rules are executed: breakers, retry backoff, latency tracking, policy sync, seed."""
    accounting: AccountingConfig = Field(default_factory=AccountingConfig)
    """Pricing, budgets, rate limits, metric label allowlists, ledger."""
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    """Consent-gated capture of traffic and feedback as post-training data (docs/data-loop.md)."""
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    """Request logs, OpenTelemetry traces and PostHog LLM-analytics events (docs/observability.md)."""
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    """The web console (off unless enabled)."""
    consent: ConsentConfig = Field(default_factory=ConsentConfig)
    """Third-party processing consent: who must approve before request data reaches a third-party backend."""

    @property
    def source(self) -> str:
        """Where this config came from: the file's path, ``ENVIRONMENT`` for the embedded defaults, or the name
        a caller gave ``validate_document``."""
        return self._source

    @property
    def env_keys(self) -> frozenset[str]:
        """Names of the client keys whose secret comes from the environment (``ENV_KEY``, from
        ``POINTSMAN_API_KEY``), not from the config file."""
        return self._env_keys

    @field_validator("backends", "models")
    @classmethod
    def _names_printable(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        check_names(v, "backend" if info.field_name == "backends" else "model")
        return v

    @field_validator("keys")
    @classmethod
    def _keys_unique(cls, v: list[KeyConfig]) -> list[KeyConfig]:
        names = [k.name for k in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate key names: {sorted(dup)}")
        for k in v:
            if (k.key is None) == (k.key_sha256 is None):
                raise ValueError(f"key {k.name!r}: give exactly one of key or key_sha256")
        return v


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str], source: str) -> str:
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    out = _ENV_RE.sub(sub, text)
    if missing:
        raise ConfigError(
            source, [("", f"environment variable {n} is not set (use ${{{n}:-default}})") for n in missing]
        )
    return out


def format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # Drop pydantic's discriminated-union tags (e.g. backends.x.openai.base_url -> backends.x.base_url).
    return tuple(
        p
        for p in loc
        if p not in ("openai", "vllm", "litellm", "simulated", "function-after[_keys_unique()]")
    )


def validate_document(doc: Any, source: str) -> GatewayConfig:
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(source, [("", "the document must be a mapping")])
    try:
        cfg = GatewayConfig.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append((format_loc(_clean_loc(err["loc"])), msg))
        raise ConfigError(source, problems) from None
    check_references(cfg, source)
    cfg._source = source
    return cfg


def check_references(cfg: GatewayConfig, source: str) -> None:
    problems: list[tuple[str, str]] = []
    for name, m in cfg.models.items():
        if m.backend not in cfg.backends:
            problems.append((f"models.{name}.backend", f"unknown backend {m.backend!r}"))
    known = set(cfg.models)
    seen: set[str] = set()
    for i, r in enumerate(cfg.routes):
        if r.name in seen:
            problems.append((f"routes[{i}].name", f"duplicate route name {r.name!r}"))
        seen.add(r.name)
        for j, t in enumerate(r.targets):
            if not model_known(t.model, known):
                problems.append((f"routes[{i}].targets[{j}].model", f"unknown model {t.model!r}"))
        if r.targets and sum(t.weight for t in r.targets) <= 0:
            problems.append((f"routes[{i}].targets", "weights must not all be zero"))
        for j, f in enumerate(r.fallbacks):
            if not model_known(f, known):
                problems.append((f"routes[{i}].fallbacks[{j}]", f"unknown model {f!r}"))
        if r.shadow is not None:
            if not model_known(r.shadow.model, known):
                problems.append((f"routes[{i}].shadow.model", f"unknown model {r.shadow.model!r}"))
            for j, c in enumerate(r.shadow.compare):
                ref = getattr(c, "model", None)
                if isinstance(ref, str) and not model_known(ref, known):
                    problems.append((f"routes[{i}].shadow.compare[{j}].model", f"unknown model {ref!r}"))
        if r.capture is not None and (bad := unknown_detectors(r.capture, cfg.capture)):
            problems.append((f"routes[{i}].capture.redact", f"unknown detectors {bad}"))
    for i, k in enumerate(cfg.keys):
        if k.capture is not None and (bad := unknown_detectors(k.capture, cfg.capture)):
            problems.append((f"keys[{i}].capture.redact", f"unknown detectors {bad}"))
    if problems:
        raise ConfigError(source, problems)


def model_known(name: str, known: set[str]) -> bool:
    if name in known:
        return True
    return any(fnmatchcase(name, pat) for pat in known if any(c in pat for c in "*?["))


def interpolate_doc(doc: Any, env: Mapping[str, str], source: str) -> Any:
    """Substitute ``${ENV}`` in string values of a parsed document (comments and keys are left alone,
    and a value from the environment can never inject YAML structure)."""
    if isinstance(doc, str):
        return interpolate(doc, env, source) if "${" in doc else doc
    if isinstance(doc, dict):
        return {k: interpolate_doc(v, env, source) for k, v in doc.items()}
    if isinstance(doc, list):
        return [interpolate_doc(v, env, source) for v in doc]
    return doc


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> GatewayConfig:
    p = Path(path)
    source = str(p)
    environ = os.environ if env is None else env
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            source, [("", f"cannot read file: {getattr(exc, 'strerror', None) or exc}")]
        ) from None
    try:
        doc = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(source, [(where, f"invalid YAML: {getattr(exc, 'problem', exc)}")]) from None
    doc = interpolate_doc(doc, environ, source)
    cfg = validate_document(doc, source)
    return apply_env_overrides(cfg, environ)


def apply_env_overrides(cfg: GatewayConfig, env: Mapping[str, str]) -> GatewayConfig:
    update: dict[str, Any] = {}
    if env.get("POINTSMAN_ADMIN_KEY") and not cfg.admin_key:
        update["admin_key"] = env["POINTSMAN_ADMIN_KEY"]
    if env.get("POINTSMAN_REDIS_URL") and not cfg.redis.url:
        update["redis"] = cfg.redis.model_copy(update={"url": env["POINTSMAN_REDIS_URL"]})
    from_env = bool(env.get(ENV_KEY_VARIABLE)) and not any(k.name == ENV_KEY for k in cfg.keys)
    if from_env:
        update["keys"] = [*cfg.keys, KeyConfig(name=ENV_KEY, key=env[ENV_KEY_VARIABLE])]
    if env.get("POINTSMAN_DATA_DIR"):
        update["server"] = cfg.server.model_copy(update={"data_dir": env["POINTSMAN_DATA_DIR"]})
    if not update:
        return cfg
    out = cfg.model_copy(update=update)
    if from_env:
        out._env_keys = frozenset({ENV_KEY})
    return out


def defaults_from_env(env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Embedded defaults: backends from ``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``POINTSMAN_VLLM_URL``."""
    env = os.environ if env is None else env
    backends: dict[str, Any] = {}
    models: dict[str, Any] = {}
    if env.get("OPENAI_API_KEY"):
        backends["openai"] = {
            "type": "openai",
            "api_key": env["OPENAI_API_KEY"],
            "base_url": env.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        }
        for pat in ("gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "text-embedding-*"):
            models[pat] = {"backend": "openai", "owned_by": "openai"}
    if env.get("ANTHROPIC_API_KEY"):
        backends["anthropic"] = {
            "type": "litellm",
            "provider": "anthropic",
            "api_key": env["ANTHROPIC_API_KEY"],
        }
        if env.get("ANTHROPIC_BASE_URL"):
            backends["anthropic"]["api_base"] = env["ANTHROPIC_BASE_URL"]
        models["claude-*"] = {"backend": "anthropic", "owned_by": "anthropic"}
    if env.get("POINTSMAN_VLLM_URL"):
        backends["vllm"] = {
            "type": "vllm",
            "endpoints": [u.strip() for u in env["POINTSMAN_VLLM_URL"].split(",")],
        }
        name = env.get("POINTSMAN_VLLM_MODEL", "*")
        models[name] = {"backend": "vllm", "owned_by": "vllm"}
    cfg = validate_document({"backends": backends, "models": models}, ENVIRONMENT)
    return apply_env_overrides(cfg, env)
