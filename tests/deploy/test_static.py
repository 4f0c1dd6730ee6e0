"""Static checks of everything under grafana/ and deploy/: they must work the first time.

Tools (promtool, kubectl, kubernetes-validate, nginx, compose-spec) come from scripts/install_test_tools.sh;
a missing tool fails the test with that hint. Only the Docker image build is skipped, where no Docker
engine runs.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.dashboards import (
    DASHBOARDS,
    DEPLOY,
    GRAFANA,
    INSTALL_HINT,
    REQUIRED_VARS,
    ROOT,
    all_queries,
    check_expr_against_contract,
    contract,
    iter_panels,
    kubernetes_validate_cmd,
    load_dashboard,
    metric_names,
    run,
    series_labels,
    static_values,
    substitute,
    tool,
    used_variables,
    variables,
)

PROM = DEPLOY / "prometheus"
K8S = DEPLOY / "k8s" / "base"
REQUIRED_ALERTS = {
    "PointsmanErrorBudgetBurnFast",
    "PointsmanErrorBudgetBurnSlow",
    "PointsmanLatencyBudgetBurnFast",
    "PointsmanLatencyBudgetBurnSlow",
    "PointsmanBudgetBurnHigh",
    "PointsmanCircuitOpen",
    "PointsmanShadowCandidateFailing",
    "PointsmanRedisUnreachable",
    "PointsmanModelUnpriced",
}
CONFIG_ENV = {"POINTSMAN_ADMIN_KEY": "admin-key-for-tests", "POINTSMAN_CLIENT_KEY": "client-key-for-tests"}


def promtool(*args: str, cwd: Path | None = None) -> str:
    r = run([tool("promtool"), *args], cwd=cwd)
    assert r.returncode == 0, f"promtool {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


def check_promql(exprs: dict[str, str], tmp_path: Path) -> None:
    """Parse PromQL with promtool: each expression becomes a recording rule of a throwaway rules file."""
    names = list(exprs)
    doc = {
        "groups": [
            {
                "name": "parse",
                "rules": [{"record": f"parse:check:{i}", "expr": exprs[n]} for i, n in enumerate(names)],
            }
        ]
    }
    path = tmp_path / "parse_rules.yml"
    path.write_text(yaml.safe_dump(doc, width=10_000))
    r = run([tool("promtool"), "check", "rules", str(path)])
    if r.returncode != 0:
        # find the culprits one by one for a readable failure
        bad = []
        for n in names:
            one = tmp_path / "one.yml"
            one.write_text(
                yaml.safe_dump({"groups": [{"name": "p", "rules": [{"record": "p:c", "expr": exprs[n]}]}]})
            )
            r1 = run([tool("promtool"), "check", "rules", str(one)])
            if r1.returncode != 0:
                bad.append(f"{n}: {exprs[n]}\n    {r1.stdout.strip()} {r1.stderr.strip()}")
        pytest.fail("PromQL that does not parse:\n" + "\n".join(bad or [r.stdout + r.stderr]))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules_doc() -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml(PROM / "rules.yml")
    return doc


def all_rules() -> list[dict[str, Any]]:
    return [r for g in rules_doc()["groups"] for r in g["rules"]]


# -------------------------------------------------------------------------------------------- grafana
def test_dashboards_are_generated_from_build_script() -> None:
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, text in mod.render().items():
        on_disk = (GRAFANA / "dashboards" / name).read_text(encoding="utf-8")
        assert on_disk == text, f"grafana/dashboards/{name} is stale: run python grafana/build_dashboards.py"
    assert sorted(p.stem for p in (GRAFANA / "dashboards").glob("*.json")) == sorted(DASHBOARDS)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_structure(name: str) -> None:
    doc = load_dashboard(name)
    assert doc["schemaVersion"] >= 39, "current Grafana schema"
    assert doc["uid"] == f"pointsman-{name}" and doc["title"]
    assert "id" not in doc or doc["id"] is None, "provisioned dashboards carry no database id"
    vs = variables(doc)
    ds = vs["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for var in REQUIRED_VARS:
        v = vs[var]
        assert v["type"] == "query", var
        assert v["multi"] is True and v["includeAll"] is True and v["allValue"] == ".*", var
        assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, var
        assert re.fullmatch(r"label_values\([^,]+, \w+\)", v["definition"]), v["definition"]
        assert v["query"]["query"] == v["definition"]
    ids = [p["id"] for p in iter_panels(doc)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    occupied: set[tuple[int, int]] = set()
    for p in iter_panels(doc):
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & occupied, f"panel {p['title']!r} overlaps another"
        occupied |= cells
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert t["expr"].strip()
            unknown = used_variables(t["expr"]) - set(vs) - set(static_values(doc))
            assert not unknown, f"{p['title']}: undefined variables {unknown}"


def test_dashboard_queries_use_the_metric_contract() -> None:
    known = series_labels()
    problems = []
    for q in all_queries():
        for problem in check_expr_against_contract(q.expr, known):
            problems.append(f"{q.where}: {problem}")
    for name in DASHBOARDS:
        for v in variables(load_dashboard(name)).values():
            if v["type"] == "query":
                problems += [
                    f"{name} variable {v['name']}: {p}"
                    for p in check_expr_against_contract(v["definition"], known)
                ]
    assert not problems, "\n".join(problems)


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    exprs = {}
    for name in DASHBOARDS:
        vals = static_values(load_dashboard(name))
        for q in all_queries():
            if q.dashboard == name:
                exprs[q.where] = substitute(q.expr, vals)
    assert len(exprs) > 60
    check_promql(exprs, tmp_path)


def test_grafana_provisioning_matches_compose() -> None:
    ds = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yaml")
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    for name in DASHBOARDS:
        assert variables(load_dashboard(name))["datasource"]["current"]["value"] == source["uid"]
    prov = load_yaml(GRAFANA / "provisioning" / "dashboards" / "pointsman.yaml")
    (provider,) = prov["providers"]
    assert provider["type"] == "file"
    mounts = load_yaml(DEPLOY / "compose.yaml")["services"]["grafana"]["volumes"]
    assert f"../grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "../grafana/provisioning/datasources:/etc/grafana/provisioning/datasources:ro" in mounts
    assert "../grafana/provisioning/dashboards:/etc/grafana/provisioning/dashboards:ro" in mounts


# ------------------------------------------------------------------------------------------ prometheus
def test_promtool_check_config() -> None:
    out = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert "SUCCESS" in out


def test_promtool_check_rules() -> None:
    out = promtool("check", "rules", str(PROM / "rules.yml"))
    assert "SUCCESS" in out


def test_promtool_test_rules() -> None:
    out = promtool("test", "rules", "rules_test.yml", cwd=PROM)
    assert "SUCCESS" in out


def test_every_alert_fires_in_a_unit_test() -> None:
    alerts = {r["alert"] for r in all_rules() if "alert" in r}
    assert REQUIRED_ALERTS <= alerts
    fired = set()
    for t in load_yaml(PROM / "rules_test.yml")["tests"]:
        for a in t.get("alert_rule_test", []):
            if a.get("exp_alerts"):
                fired.add(a["alertname"])
    assert alerts == fired, f"alerts without a firing unit test: {sorted(alerts - fired)}"


def test_rules_use_the_metric_contract() -> None:
    known = series_labels() | {"up": {"job", "instance"}}
    recorded = {r["record"] for r in all_rules() if "record" in r}
    problems = []
    for r in all_rules():
        problems += [
            f"{r.get('alert') or r.get('record')}: {p}"
            for p in check_expr_against_contract(r["expr"], known, recorded)
        ]
    assert not problems, "\n".join(problems)
    # every alert has a severity and a summary
    for r in all_rules():
        if "alert" in r:
            assert r["labels"]["severity"] in {"page", "ticket", "critical", "warning"}
            assert r["annotations"]["summary"]


def test_prometheus_scrapes_gateways_and_vllm() -> None:
    cfg = load_yaml(PROM / "prometheus.yml")
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["pointsman"]["dns_sd_configs"][0]["names"] == ["gateway"]
    assert jobs["pointsman"]["dns_sd_configs"][0]["port"] == 4000
    assert jobs["vllm"]["static_configs"][0]["labels"]["backend"] == "vllm"
    assert cfg["rule_files"] == ["rules.yml"]


# ------------------------------------------------------------------------------------------ kubernetes
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
    assert c["args"] == [
        "serve",
        "--config",
        "/etc/pointsman/config.yaml",
        "--host",
        "0.0.0.0",
        "--port",
        "4000",
    ]
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


def required_env(config_text: str) -> set[str]:
    """Environment variables a config file needs (``${NAME}`` without a default)."""
    return {m.group(1) for m in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", config_text)}


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


# --------------------------------------------------------------------------------------------- compose
def compose_interpolate(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise AssertionError(f"compose needs {name}: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", sub, text)


def test_compose_file() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    doc = yaml.safe_load(text)
    services = doc["services"]
    assert {"gateway", "lb", "redis", "prometheus", "grafana", "vllm"} <= set(services)
    gw = services["gateway"]
    assert gw["deploy"]["replicas"] == 2
    assert gw["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert "ports" not in gw, "replicas are reached through the load balancer only"
    assert any(p.endswith(":4000") for p in services["lb"]["ports"])
    assert "./config.example.yaml:/etc/pointsman/config.yaml:ro" in gw["volumes"]
    assert required_env((DEPLOY / "config.example.yaml").read_text()) <= set(gw["environment"])
    prom_mounts = services["prometheus"]["volumes"]
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom_mounts
    assert "./prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in prom_mounts
    vllm = services["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    assert vllm["command"][0].startswith("/models/") and "--enable-lora" in vllm["command"]
    (dev,) = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert dev["driver"] == "nvidia" and "gpu" in dev["capabilities"]
    # references resolve: depends_on services and bind-mount sources exist
    for name, svc in services.items():
        deps = svc.get("depends_on", [])
        assert set(deps) <= set(services), f"{name}: depends_on {deps}"
        for v in svc.get("volumes", []):
            src = v.split(":", 1)[0]
            if src.startswith("."):
                assert (DEPLOY / src).exists(), f"{name}: mount source {src} missing"
    # full Compose-spec validation after interpolation, as docker compose would see it
    from compose_spec import PyCompose

    env = {"POINTSMAN_ADMIN_KEY": "x" * 12, "POINTSMAN_CLIENT_KEY": "y" * 12}
    parsed = PyCompose.from_yaml(compose_interpolate(text, env))
    assert set(parsed.service_names()) == set(services)
    with pytest.raises(AssertionError, match="POINTSMAN_ADMIN_KEY"):
        compose_interpolate(text, {})


def test_compose_spec_validator_rejects_typos() -> None:
    from compose_spec import PyCompose

    with pytest.raises(ValueError):
        PyCompose.from_yaml("services:\n  a:\n    image: x\n    deploy:\n      replicsa: 2\n")


def test_nginx_config(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {DEPLOY / 'nginx' / 'pointsman.conf'};\n}}\n"
    )
    r = run([tool("nginx"), "-t", "-q", "-c", str(conf), "-p", str(tmp_path)])
    assert r.returncode == 0, r.stderr


# -------------------------------------------------------------------------------------------- docker
def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_static() -> None:
    ins = dockerfile_instructions()
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for w, rest in ins if w == "ARG" and "=" in rest}
    froms = [rest for w, rest in ins if w == "FROM"]
    assert args["PYTHON_IMAGE"] == "python:3.11-slim" and all(f.startswith("${PYTHON_IMAGE}") for f in froms)
    user = [rest for w, rest in ins if w == "USER"]
    assert user and user[-1].split(":")[0] not in {"root", "0"}
    (hc,) = [rest for w, rest in ins if w == "HEALTHCHECK"]
    assert "/healthz" in hc
    entry = [rest for w, rest in ins if w == "ENTRYPOINT"][-1]
    cmd = [rest for w, rest in ins if w == "CMD"][-1]
    argv = yaml.safe_load(entry) + yaml.safe_load(cmd)
    assert argv == [
        "pointsman",
        "serve",
        "--config",
        "/etc/pointsman/config.yaml",
        "--host",
        "0.0.0.0",
        "--port",
        "4000",
    ]
    # every file COPY'd from the context exists and is let through by deploy/Dockerfile.dockerignore
    allowed = [
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for w, rest in ins:
        if w == "COPY" and "--from" not in rest:
            *sources, _dest = shlex.split(rest)
            for src in sources:
                src = src.rstrip("/")
                assert (ROOT / src).exists(), src
                assert any(src == a or src.startswith(a + "/") for a in allowed), f"{src} is dockerignored"


def docker_engine() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    r = run([docker, "info", "--format", "{{.ServerVersion}}"], timeout=20)
    return docker if r.returncode == 0 and r.stdout.strip() else None


@pytest.mark.docker
def test_dockerfile_builds() -> None:
    docker = docker_engine()
    assert docker is not None, "the docker tier needs a Docker engine (docker info fails)"
    r = run(
        [docker, "build", "-f", str(DEPLOY / "Dockerfile"), "-t", "pointsman:test", str(ROOT)], timeout=1800
    )
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
    r = run([docker, "run", "--rm", "--entrypoint", "id", "pointsman:test", "-u"], timeout=120)
    assert r.stdout.strip() != "0", "runs as non-root"


# ---------------------------------------------------------------------------------------- misc
def test_install_script_is_valid_bash() -> None:
    script = ROOT / "scripts" / "install_test_tools.sh"
    assert os.access(script, os.X_OK)
    r = run(["bash", "-n", str(script)])
    assert r.returncode == 0, r.stderr


def test_contract_table_parses() -> None:
    c = contract()
    assert c["pointsman_requests_total"].kind == "counter"
    assert {"outcome", "shadow", "task", "team"} <= c["pointsman_requests_total"].labels
    assert c["gen_ai_client_token_usage"].labels >= {"gen_ai_token_type", "shadow", "upstream_model"}
    assert metric_names('sum(rate(pointsman_requests_total{x="pointsman_fake"}[1m]))') == {
        "pointsman_requests_total"
    }
    assert INSTALL_HINT
