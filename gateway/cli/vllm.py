"""``pointsman vllm ...``: run self-hosted models behind pointsman.

- ``pointsman vllm command MODEL [--lora NAME=PATH ...] [--tensor-parallel N] [--port P] ...`` prints a
  production ``vllm serve`` command line for a GPU host, the matching Kubernetes container (image, args, env,
  probes, GPU resources) and the pointsman config that puts it behind the gateway. It only prints; it needs
  neither vLLM nor a GPU here.
- ``pointsman vllm models BACKEND``, ``pointsman vllm load BACKEND NAME PATH``, ``pointsman vllm unload
  BACKEND NAME``: the vLLM admin API of a running gateway (discovery, LoRA adapters on every endpoint).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from functools import partial
from typing import Any

import orjson
import yaml

from gateway.cli.admin_api import CLIError, print_json, request, run, table

DEFAULT_IMAGE = "vllm/vllm-openai:v0.33.0"
"""The vLLM release the printed flags were checked against (its CLI parser accepts them)."""
RUNTIME_LORA_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"


def _lora(spec: str) -> tuple[str, str]:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--lora {spec!r}: expected NAME=PATH")
    return name, path


def add_parser(sub: Any) -> None:
    p = sub.add_parser("vllm", help="self-hosted models on vLLM: serve command, discovery, LoRA adapters")
    vs = p.add_subparsers(dest="vllm_command", required=True)

    c = vs.add_parser(
        "command",
        help="print a production `vllm serve` command, its Kubernetes container and the pointsman config",
        description="Print the `vllm serve` command line for a GPU host, the matching Kubernetes container "
        "spec and the pointsman backend/models config. Prints only; needs no vLLM or GPU here.",
    )
    c.add_argument("model", help="Hugging Face model id or a path on the GPU host")
    c.add_argument(
        "--lora",
        action="append",
        type=_lora,
        default=[],
        metavar="NAME=PATH",
        help="serve a LoRA adapter as its own model id (repeatable)",
    )
    c.add_argument(
        "--tensor-parallel",
        "-tp",
        type=int,
        default=1,
        metavar="N",
        help="GPUs per server (tensor parallel size; default 1)",
    )
    c.add_argument("--port", type=int, default=8000, help="server port (default 8000)")
    c.add_argument("--host", default="0.0.0.0", help="interface (default 0.0.0.0)")
    c.add_argument(
        "--served-model-name",
        "--name",
        dest="name",
        help="model id clients and pointsman use (default: the last part of MODEL)",
    )
    c.add_argument("--max-model-len", type=int, help="context length (default: the model's)")
    c.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=0.90,
        help="fraction of GPU memory vLLM may use (default 0.90)",
    )
    c.add_argument("--max-loras", type=int, help="adapters in one batch (default: max(4, number of --lora))")
    c.add_argument("--max-lora-rank", type=int, default=16, help="largest adapter rank (default 16)")
    c.add_argument("--dtype", help="weights dtype (default: vLLM's auto)")
    c.add_argument(
        "--no-runtime-lora",
        dest="runtime_lora",
        action="store_false",
        help="do not allow loading adapters at run time (pointsman's admin API needs it)",
    )
    c.add_argument(
        "--no-lora",
        dest="enable_lora",
        action="store_false",
        help="no LoRA support at all (a little faster when no adapter is ever served)",
    )
    c.add_argument(
        "--api-key-secret",
        metavar="SECRET",
        help="Kubernetes secret (key `api-key`) holding the key vLLM requires (VLLM_API_KEY)",
    )
    c.add_argument(
        "--hf-token-secret",
        metavar="SECRET",
        help="Kubernetes secret (key `token`) with a Hugging Face token for gated models",
    )
    c.add_argument("--image", default=DEFAULT_IMAGE, help=f"container image (default {DEFAULT_IMAGE})")
    c.add_argument("--backend", default="selfhosted", help="pointsman backend name (default selfhosted)")
    c.add_argument("--gpu-hour-usd", help="price of one GPU hour, for measured self-hosted pricing")
    c.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `vllm serve` argument(s), passed as given (repeatable; shell-split)",
    )
    c.add_argument(
        "--format",
        choices=("text", "shell", "k8s", "gateway", "json"),
        default="text",
        help="text: all three, commented (default); shell/k8s/gateway: one of them; json: all as JSON",
    )
    c.set_defaults(func=cmd_command)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=None, help="gateway base URL (default $POINTSMAN_URL or http://127.0.0.1:4000)"
    )
    common.add_argument("--admin-key", default=None, help="admin key (default $POINTSMAN_ADMIN_KEY)")
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")

    m = vs.add_parser(
        "models", parents=[common], help="what a vLLM backend's endpoints serve (base models, adapters)"
    )
    m.add_argument("backend")
    m.set_defaults(func=partial(run, cmd_models))

    ld = vs.add_parser(
        "load",
        parents=[common],
        help="load a LoRA adapter on every endpoint of a backend and register it as a model",
    )
    ld.add_argument("backend")
    ld.add_argument("name", help="adapter name (lora_name)")
    ld.add_argument("path", help="adapter directory as the vLLM servers see it")
    ld.add_argument("--model", help="gateway model name (default: NAME)")
    ld.add_argument(
        "--replace", action="store_true", help="reload in place (a new version under the same name)"
    )
    ld.add_argument(
        "--no-register", dest="register", action="store_false", help="only load it on the servers"
    )
    ld.add_argument("--shadow-route", metavar="ROUTE", help="also shadow-test it on this route")
    ld.add_argument("--sample-rate", type=float, help="with --shadow-route: the shadow sample rate")
    ld.set_defaults(func=partial(run, cmd_load))

    ul = vs.add_parser(
        "unload", parents=[common], help="unregister an adapter's models and unload it everywhere"
    )
    ul.add_argument("backend")
    ul.add_argument("name")
    ul.add_argument("--keep-models", action="store_true", help="leave the gateway models registered")
    ul.set_defaults(func=partial(run, cmd_unload))


# -- command ---------------------------------------------------------------------------------------------
def served_name(model: str) -> str:
    return model.rstrip("/").rsplit("/", 1)[-1] or model


def serve_args(a: argparse.Namespace) -> list[str]:
    """The arguments after ``vllm serve``."""
    name = a.name or served_name(a.model)
    args = [a.model, "--served-model-name", name, "--host", a.host, "--port", str(a.port)]
    if a.tensor_parallel > 1:
        args += ["--tensor-parallel-size", str(a.tensor_parallel)]
    args += ["--gpu-memory-utilization", f"{a.gpu_memory_utilization:g}"]
    if a.max_model_len:
        args += ["--max-model-len", str(a.max_model_len)]
    if a.dtype:
        args += ["--dtype", a.dtype]
    if a.enable_lora:
        max_loras = a.max_loras or max(4, len(a.lora))
        args += ["--enable-lora", "--max-lora-rank", str(a.max_lora_rank), "--max-loras", str(max_loras)]
        if a.lora:
            args += ["--lora-modules", *(f"{n}={p}" for n, p in a.lora)]
    elif a.lora:
        raise CLIError("--lora needs LoRA support (drop --no-lora)", 2)
    for extra in a.extra:
        args += shlex.split(extra)
    return args


def env_vars(a: argparse.Namespace) -> dict[str, str]:
    env: dict[str, str] = {}
    if a.enable_lora and a.runtime_lora:
        env[RUNTIME_LORA_ENV] = "True"
    return env


def shell_line(a: argparse.Namespace) -> str:
    env = " ".join(f"{k}={v}" for k, v in env_vars(a).items())
    api_key = ' VLLM_API_KEY="$VLLM_API_KEY"' if a.api_key_secret else ""
    cmd = " ".join(shlex.quote(x) for x in ["vllm", "serve", *serve_args(a)])
    return f"{env}{api_key} {cmd}".strip()


def container(a: argparse.Namespace) -> dict[str, Any]:
    """A Kubernetes container spec (for a Deployment's pod template)."""
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in env_vars(a).items()]
    if a.api_key_secret:
        env.append(
            {
                "name": "VLLM_API_KEY",
                "valueFrom": {"secretKeyRef": {"name": a.api_key_secret, "key": "api-key"}},
            }
        )
    if a.hf_token_secret:
        env.append(
            {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": a.hf_token_secret, "key": "token"}}}
        )
    gpus = str(a.tensor_parallel)

    def probe(period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": period,
            "failureThreshold": failures,
        }

    spec: dict[str, Any] = {
        "name": "vllm",
        "image": a.image,
        "command": ["vllm", "serve"],
        "args": serve_args(a),
        "ports": [{"name": "http", "containerPort": a.port}],
        "resources": {"limits": {"nvidia.com/gpu": gpus}, "requests": {"nvidia.com/gpu": gpus}},
        # weights load before /health answers: startupProbe allows 30 min, then readiness/liveness take over
        "startupProbe": probe(10, 180),
        "readinessProbe": probe(5, 3),
        "livenessProbe": probe(10, 6),
        "volumeMounts": [
            {"name": "model-cache", "mountPath": "/root/.cache/huggingface"},
            {"name": "dshm", "mountPath": "/dev/shm"},  # NCCL / tensor-parallel shared memory
        ],
    }
    if env:
        spec["env"] = env
    return spec


def volumes() -> list[dict[str, Any]]:
    return [
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": "vllm-model-cache"}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
    ]


def gateway_config(a: argparse.Namespace) -> dict[str, Any]:
    name = a.name or served_name(a.model)
    backend: dict[str, Any] = {"type": "vllm", "endpoints": [f"http://vllm:{a.port}/v1"]}
    if a.api_key_secret:
        backend["api_key"] = "${VLLM_API_KEY}"
    if a.gpu_hour_usd:
        backend["gpu_hour_usd"] = str(a.gpu_hour_usd)
        backend["gpu_count"] = a.tensor_parallel
    models: dict[str, Any] = {name: {"backend": a.backend}}
    for n, _ in a.lora:
        models[n] = {"backend": a.backend, "adapter": n}
    return {"backends": {a.backend: backend}, "models": models}


def _yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=120)


def cmd_command(a: argparse.Namespace) -> int:
    try:
        if a.tensor_parallel < 1:
            raise CLIError("--tensor-parallel must be at least 1", 2)
        if not 0 < a.gpu_memory_utilization <= 1:
            raise CLIError("--gpu-memory-utilization must be in (0, 1]", 2)
        line = shell_line(a)
        ctr = container(a)
        gw = gateway_config(a)
    except CLIError as exc:
        print(f"pointsman: {exc}", file=sys.stderr)
        return exc.status
    if a.format == "shell":
        print(line)
    elif a.format == "k8s":
        print(_yaml({"containers": [ctr], "volumes": volumes()}), end="")
    elif a.format == "gateway":
        print(_yaml(gw), end="")
    elif a.format == "json":
        print(
            orjson.dumps(
                {
                    "command": ["vllm", "serve", *serve_args(a)],
                    "env": env_vars(a),
                    "shell": line,
                    "kubernetes": {"containers": [ctr], "volumes": volumes()},
                    "pointsman": gw,
                },
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
    else:
        notes = [
            f"# GPU host ({a.tensor_parallel} GPU{'s' if a.tensor_parallel > 1 else ''}); "
            "pip install 'pointsman[vllm]' or 'vllm' on it"
        ]
        if a.enable_lora and a.runtime_lora:
            notes.append(
                f"# {RUNTIME_LORA_ENV}=True lets `pointsman vllm load` add adapters without a restart;"
                " expose the server only to the gateway"
            )
        print("\n".join(notes))
        print(line)
        print("\n# Kubernetes: the pod template's containers and volumes")
        print(_yaml({"containers": [ctr], "volumes": volumes()}), end="")
        print("\n# pointsman config (backends/models sections)")
        print(_yaml(gw), end="")
    return 0


# -- admin API clients -------------------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    doc = request(args, "GET", f"/admin/backends/{args.backend}/models")
    if args.json:
        print_json(doc)
        return 0
    n = len(doc["endpoints"])
    rows = [
        [
            m["id"],
            m["kind"],
            m.get("parent") or "-",
            f"{len(m['endpoints'])}/{n}",
            ", ".join(m.get("registered_as") or []) or "-",
        ]
        for m in doc["models"]
    ]
    print(f"backend {doc['backend']}: {n} endpoints" + ("" if doc["consistent"] else " (they disagree)"))
    if rows:
        print(table(["model", "kind", "parent", "endpoints", "gateway models"], rows))
    for ep, err in (doc.get("errors") or {}).items():
        print(f"! {ep}: {err}")
    if doc.get("unserved"):
        print("gateway models no endpoint serves: " + ", ".join(doc["unserved"]))
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "name": args.name,
        "path": args.path,
        "replace": args.replace,
        "register": args.register,
    }
    if args.model:
        body["model"] = args.model
    if args.shadow_route:
        body["shadow"] = {"route": args.shadow_route}
        if args.sample_rate is not None:
            body["shadow"]["sample_rate"] = args.sample_rate
    doc = request(args, "POST", f"/admin/backends/{args.backend}/adapters", json=body)
    if args.json:
        print_json(doc)
        return 0
    loaded = sum(1 for e in doc["endpoints"] if e["changed"])
    print(
        f"adapter {doc['adapter']} on {doc['backend']}: loaded on {loaded}, already there on "
        f"{len(doc['endpoints']) - loaded} endpoints"
    )
    if doc.get("model"):
        print(f"registered as model {doc['model']} (policy version {doc['version']})")
    if doc.get("shadow_route"):
        print(f"shadow-testing on route {doc['shadow_route']}")
    return 0


def cmd_unload(args: argparse.Namespace) -> int:
    q = "?unregister=false" if args.keep_models else ""
    doc = request(args, "DELETE", f"/admin/backends/{args.backend}/adapters/{args.name}{q}")
    if args.json:
        print_json(doc)
        return 0
    if doc["unregistered"]:
        print(f"unregistered models: {', '.join(doc['unregistered'])} (policy version {doc['version']})")
    removed = sum(1 for e in doc["endpoints"] if e["changed"])
    print(f"adapter {doc['adapter']} unloaded from {removed} of {len(doc['endpoints'])} endpoints")
    return 0
