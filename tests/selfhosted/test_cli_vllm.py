"""``pointsman vllm command``: the printed serve command, Kubernetes container and gateway config agree.

(The vLLM tier also parses the printed arguments with the real ``vllm serve`` parser.)"""

from __future__ import annotations

import shlex

import orjson
import pytest
import yaml

from gateway.cli import main
from gateway.config import validate_document


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["vllm", "command", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_form_holds_all_three_consistently(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(
        capsys,
        "meta-llama/Llama-3.1-8B-Instruct",
        "--lora",
        "support-v2=/adapters/support-v2",
        "--lora",
        "triage=/adapters/triage",
        "--tensor-parallel",
        "4",
        "--port",
        "8001",
        "--max-model-len",
        "16384",
        "--gpu-hour-usd",
        "2.50",
        "--api-key-secret",
        "vllm-key",
        "--format",
        "json",
    )
    assert rc == 0
    doc = orjson.loads(out)
    cmd = doc["command"]
    assert cmd[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct"]
    args = cmd[3:]

    def flag(name: str) -> str:
        return args[args.index(name) + 1]

    assert flag("--served-model-name") == "Llama-3.1-8B-Instruct"
    assert (
        flag("--tensor-parallel-size") == "4"
        and flag("--port") == "8001"
        and flag("--max-model-len") == "16384"
    )
    assert "--enable-lora" in args and flag("--max-loras") == "4"
    i = args.index("--lora-modules")
    assert args[i + 1 : i + 3] == ["support-v2=/adapters/support-v2", "triage=/adapters/triage"]
    assert doc["env"] == {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    # the shell line is the same command
    assert shlex.split(doc["shell"]).count("serve") == 1 and doc["shell"].endswith(shlex.join(cmd[2:]))

    (ctr,) = doc["kubernetes"]["containers"]
    assert ctr["command"] == ["vllm", "serve"] and ctr["args"] == cmd[2:]
    assert ctr["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert ctr["ports"] == [{"name": "http", "containerPort": 8001}]
    assert ctr["readinessProbe"]["httpGet"]["path"] == "/health"
    envs = {e["name"]: e for e in ctr["env"]}
    assert envs["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "vllm-key"
    assert {v["name"] for v in doc["kubernetes"]["volumes"]} == {"model-cache", "dshm"}

    gw = doc["pointsman"]
    assert gw["backends"]["selfhosted"]["gpu_count"] == 4
    assert gw["models"]["triage"] == {"backend": "selfhosted", "adapter": "triage"}
    # the printed gateway config is a valid pointsman config
    cfg = validate_document(
        {**gw, "backends": {"selfhosted": {**gw["backends"]["selfhosted"], "api_key": "k"}}}, "t"
    )
    assert cfg.backends["selfhosted"].type == "vllm"


def test_text_form_and_single_sections(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "Qwen/Qwen2.5-7B-Instruct")
    assert rc == 0
    assert "vllm serve Qwen/Qwen2.5-7B-Instruct" in out and "containers:" in out and "backends:" in out
    rc, out, _ = _run(capsys, "Qwen/Qwen2.5-7B-Instruct", "--format", "k8s", "--no-lora")
    k8s = yaml.safe_load(out)
    assert "--enable-lora" not in k8s["containers"][0]["args"] and "&id" not in out
    rc, out, _ = _run(
        capsys,
        "/models/mine",
        "--name",
        "mine",
        "--format",
        "shell",
        "--no-runtime-lora",
        "--extra",
        "--enable-prefix-caching --max-num-seqs 512",
    )
    assert out.startswith("vllm serve /models/mine --served-model-name mine")
    assert out.strip().endswith("--enable-prefix-caching --max-num-seqs 512")


@pytest.mark.parametrize(
    "argv",
    [
        ["m", "--lora", "nameonly"],
        ["m", "--no-lora", "--lora", "a=/b"],
        ["m", "--tensor-parallel", "0"],
        ["m", "--gpu-memory-utilization", "1.5"],
    ],
)
def test_bad_arguments(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    try:
        rc = main(["vllm", "command", *argv])
    except SystemExit as exc:  # argparse's own usage errors
        rc = int(exc.code or 0)
    assert rc == 2
