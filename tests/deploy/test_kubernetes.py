"""Static checks of the Kubernetes manifests under deploy/k8s: they render with kustomize, validate strictly
against the Kubernetes schemas (and the Prometheus operator's CRDs structurally), and the deployments have the
shape the gateway and vLLM need. Tools come from scripts/install_test_tools.sh."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.dashboards import (
    CONFIG_ENV,
    DEPLOY,
    ROOT,
    SERVE_ARGS,
    kubernetes_validate_cmd,
    promtool,
    required_env,
    rules_doc,
    run,
    tool,
)

K8S = DEPLOY / "k8s" / "base"


def rendered_manifests() -> list[dict[str, Any]]:
    r = run([tool("kubectl"), "kustomize", str(K8S)])
    assert r.returncode == 0, f"kubectl kustomize failed: {r.stderr}"
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


CRD_GROUP = "monitoring.coreos.com/"


@pytest.mark.parametrize("k8s_version", ["1.29.0", "1.31.0", "1.34.0"])
def test_kustomize_renders_and_core_kinds_validate_strictly(tmp_path: Path, k8s_version: str) -> None:
    docs = rendered_manifests()
    core = [d for d in docs if not d["apiVersion"].startswith(CRD_GROUP)]
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump_all(core))
    r = run([*kubernetes_validate_cmd(), "--strict", "-k", k8s_version, str(path)])
    assert r.returncode == 0, f"kubernetes-validate --strict failed:\n{r.stdout}\n{r.stderr}"
    assert "WARN" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert r.stdout.count("passed") + r.stderr.count("passed") == len(core)
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "StatefulSet",
        "PersistentVolumeClaim",
        "ServiceMonitor",
        "PrometheusRule",
    } <= kinds


_RELABEL = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "action": {
            "enum": [
                "replace",
                "keep",
                "drop",
                "hashmod",
                "labelmap",
                "labeldrop",
                "labelkeep",
                "lowercase",
                "uppercase",
                "keepequal",
                "dropequal",
            ]
        },
        "sourceLabels": {"type": "array", "items": {"type": "string"}},
        "separator": {"type": "string"},
        "targetLabel": {"type": "string"},
        "regex": {"type": "string"},
        "modulus": {"type": "integer"},
        "replacement": {"type": "string"},
    },
}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
# The parts of the prometheus-operator v1 CRD schemas these manifests use (unknown fields are errors).
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "namespaceSelector": {"type": "object"},
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": {"type": "object"}, "matchExpressions": {"type": "array"}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                            "relabelings": {"type": "array", "items": _RELABEL},
                            "metricRelabelings": {"type": "array", "items": _RELABEL},
                        },
                    },
                },
            },
        },
    },
}
PROMETHEUS_RULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "interval": _DURATION,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "record": {"type": "string"},
                                        "alert": {"type": "string"},
                                        "expr": {"type": "string"},
                                        "for": _DURATION,
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}


def test_crds_validate_structurally(tmp_path: Path) -> None:
    docs = rendered_manifests()
    monitors = by_kind(docs, "ServiceMonitor")
    rules = by_kind(docs, "PrometheusRule")
    assert set(monitors) == {"pointsman", "pointsman-vllm"} and set(rules) == {"pointsman"}
    for d in monitors.values():
        jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA).validate(d)
    jsonschema.Draft202012Validator(PROMETHEUS_RULE_SCHEMA).validate(rules["pointsman"])
    # the operator's rules are the same rules, and they are valid Prometheus rules
    assert rules["pointsman"]["spec"]["groups"] == rules_doc()["groups"], (
        "regenerate deploy/k8s/base/prometheusrule.yaml"
    )
    path = tmp_path / "operator-rules.yml"
    path.write_text(yaml.safe_dump({"groups": rules["pointsman"]["spec"]["groups"]}))
    promtool("check", "rules", str(path))
    # each ServiceMonitor selects a Service that has the named port
    services = by_kind(docs, "Service")
    for mon in monitors.values():
        sel = mon["spec"]["selector"]["matchLabels"]
        matched = [s for s in services.values() if sel.items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1, f"ServiceMonitor {mon['metadata']['name']} selects {len(matched)} services"
        (svc,) = matched
        job = svc["metadata"]["labels"][mon["spec"]["jobLabel"]]
        assert job in {"pointsman", "vllm"}, (
            "job names match deploy/prometheus/prometheus.yml and the alert rules"
        )
        ports = {p["name"] for p in svc["spec"]["ports"]}
        assert {e["port"] for e in mon["spec"]["endpoints"]} <= ports


def pod_spec(d: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = d["spec"]["template"]["spec"]
    return spec


def test_gateway_deployment_shape() -> None:
    docs = rendered_manifests()
    dep = by_kind(docs, "Deployment")["pointsman"]
    spec = pod_spec(dep)
    (c,) = spec["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["args"] == SERVE_ARGS
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert {"/etc/pointsman", "/tmp", "/var/lib/pointsman"} <= set(mounts)
    volumes = {v["name"]: v for v in spec["volumes"]}
    cm_name = volumes[mounts["/etc/pointsman"]]["configMap"]["name"]
    cms = by_kind(docs, "ConfigMap")
    assert cm_name in cms, "the config volume names the generated ConfigMap"
    config_text = cms[cm_name]["data"]["config.yaml"]
    assert config_text == (DEPLOY / "config.example.yaml").read_text(), (
        "k8s/base/config.yaml = config.example.yaml"
    )
    # every environment reference the config requires is set by the Deployment or the Secret
    provided = {e["name"] for e in c["env"]}
    secret_name = c["envFrom"][0]["secretRef"]["name"]
    provided |= set(by_kind(docs, "Secret")[secret_name]["stringData"])
    assert required_env(config_text) <= provided
    labels = dep["spec"]["template"]["metadata"]["labels"]
    pdb = by_kind(docs, "PodDisruptionBudget")["pointsman"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = by_kind(docs, "HorizontalPodAutoscaler")["pointsman"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "pointsman",
    }
    assert hpa["spec"]["minReplicas"] >= 2 and pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    svc = by_kind(docs, "Service")["pointsman"]
    assert svc["spec"]["selector"].items() <= labels.items()
    # the Services the config talks to exist
    env = {e["name"]: e.get("value", "") for e in c["env"]}
    services = by_kind(docs, "Service")
    assert "pointsman-redis" in services and "//pointsman-redis:6379/" in env["POINTSMAN_REDIS_URL"]
    assert "pointsman-vllm" in services and "//pointsman-vllm:8000/" in env["POINTSMAN_VLLM_URL"]


def test_vllm_deployment_shape() -> None:
    docs = rendered_manifests()
    dep = by_kind(docs, "Deployment")["pointsman-vllm"]
    spec = pod_spec(dep)
    (c,) = spec["containers"]
    assert c["image"].startswith("vllm/vllm-openai:")
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    pvcs = by_kind(docs, "PersistentVolumeClaim")
    assert volumes[mounts["/models"]["name"]]["persistentVolumeClaim"]["claimName"] in pvcs
    assert volumes[mounts["/adapters"]["name"]]["persistentVolumeClaim"]["claimName"] in pvcs
    assert "--enable-lora" in c["args"] and c["args"][0].startswith("/models/"), (
        "model path first: vllm serve MODEL"
    )
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    svc = by_kind(docs, "Service")["pointsman-vllm"]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def test_example_config_is_valid_for_the_gateway() -> None:
    env = {**os.environ, **CONFIG_ENV}
    r = run(
        [sys.executable, "-m", "gateway.cli", "check-config", str(DEPLOY / "config.example.yaml")],
        env=env,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (K8S / "config.yaml").read_text() == (DEPLOY / "config.example.yaml").read_text()
    assert required_env((DEPLOY / "config.example.yaml").read_text()) == set(CONFIG_ENV)
