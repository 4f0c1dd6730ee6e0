"""The ``pointsman`` command line: ``serve`` plus admin-API clients (routes, spend, shadow, dataset, vllm)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from gateway.config import ConfigError, GatewayConfig, ServerConfig, defaults_from_env, load_config

_CONFIG_ENV = "POINTSMAN_CONFIG"
# Modules that add subcommands: each has ``add_parser(subparsers) -> None`` setting ``func``.
_COMMAND_MODULES = (
    "gateway.cli.routes",
    "gateway.cli.spend",
    "gateway.cli.pricing",
    "gateway.cli.shadow",
    "gateway.cli.vllm",
    "gateway.cli.dataset",
    "gateway.cli.consent",
    "gateway.cli.demo",
    "gateway.cli.db",
)


def load(path: str | None) -> GatewayConfig:
    return load_config(path) if path else defaults_from_env()


def app_factory() -> Any:
    """Used by uvicorn worker processes (``--workers N``): re-load the config the parent validated."""
    from gateway.app import create_app
    from gateway.http_server import configure
    from gateway.supervision import bind_to_supervisor

    bind_to_supervisor()  # exits when the supervisor is killed outright
    cfg = load(os.environ.get(_CONFIG_ENV) or None)
    configure(cfg.server)
    app = create_app(cfg)
    app.settle_heap = True
    return app


def uvicorn_settings(server: ServerConfig, host: str, port: int) -> dict[str, Any]:
    """uvicorn's settings for the gateway (bounded request heads, graceful drain, no access log); configures
    the HTTP protocol's bounds as a side effect."""
    from gateway.http_server import PROTOCOL, configure

    configure(server)
    return {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": PROTOCOL,  # the gateway's own HTTP/1.1 protocol, with bounds on the request head
        "ws": "none",  # it makes no protocol upgrades: uvicorn need not import a WebSocket protocol
        "proxy_headers": False,  # the client's address is not used: no per-request middleware for it
        "lifespan": "on",
        "access_log": False,
        "log_level": server.log_level,
        "timeout_graceful_shutdown": server.graceful_timeout_s,  # uvicorn takes fractions too
        "timeout_keep_alive": server.keep_alive_timeout_s,  # (read by the gateway's protocol, fractions too)
        "server_header": False,
        "date_header": False,
        "limit_concurrency": None,
        "h11_max_incomplete_event_size": 64 * 1024,
    }


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"pointsman: {exc}", file=sys.stderr)
        return 2
    server = cfg.server
    host = args.host or server.host
    port = args.port or server.port
    workers = args.workers or server.workers
    logging.basicConfig(
        level=getattr(logging, server.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    import uvicorn

    common = uvicorn_settings(server, host, port)
    if workers > 1:
        if args.config:
            os.environ[_CONFIG_ENV] = os.path.abspath(args.config)
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pointsman-metrics-")
        from gateway.heap import resume_collection
        from gateway.supervision import mark_supervisor

        resume_collection()  # the supervisor never settles (its workers do): it collects as usual
        mark_supervisor()
        uvicorn.run("gateway.cli.main:app_factory", factory=True, workers=workers, **common)
    else:
        from gateway.app import create_app

        app = create_app(cfg)
        app.settle_heap = True
        uvicorn.run(app, **common)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from accounting.pricing import unpriced_message
    from gateway.accounting_setup import build_pricing

    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"pointsman: {exc}", file=sys.stderr)
        return 2
    print(
        f"ok: {len(cfg.backends)} backends, {len(cfg.models)} models, {len(cfg.routes)} routes, {len(cfg.keys)} keys"
    )
    try:
        pricing = build_pricing(cfg)
    except ValueError as exc:  # accounting.price_table unreadable
        print(f"pointsman: {exc}", file=sys.stderr)
        return 2
    if pricing.unpriced:
        print(f"unpriced: {len(pricing.unpriced)} configured model(s) have no price")
        for name in pricing.unpriced:
            m = cfg.models[name]
            print(
                f"  {name} (backend {m.backend}): " + unpriced_message(name, pricing.self_hosted(m.backend))
            )
    return 0


def build_parser(commands: Sequence[str] = _COMMAND_MODULES) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pointsman", description="OpenAI-compatible inference gateway")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument(
        "--config", "-c", help="YAML config file (default: embedded defaults from the environment)"
    )
    s.add_argument("--host", help="interface (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default 4000)")
    s.add_argument("--workers", type=int, help="worker processes (default 1)")
    s.set_defaults(func=cmd_serve)
    c = sub.add_parser("check-config", help="validate a config file and exit")
    c.add_argument("config")
    c.set_defaults(func=cmd_check)
    for mod in commands:
        try:
            add: Callable[[Any], None] = importlib.import_module(mod).add_parser
        except ModuleNotFoundError:
            continue
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # `serve` and `check-config` are defined here: a start does not import every other command's module.
    own = bool(argv) and argv[0] in ("serve", "check-config")
    args = build_parser(() if own else _COMMAND_MODULES).parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
