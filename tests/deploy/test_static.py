"""Static checks of grafana/ and deploy/ (Kubernetes: test_kubernetes.py): they must work the first time.

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
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.dashboards import (
    DASHBOARDS,
    DEPLOY,
    GRAFANA,
    INSTALL_HINT,
    PROM,
    REQUIRED_VARS,
    ROOT,
    SERVE_ARGS,
    all_queries,
    check_expr_against_contract,
    contract,
    iter_panels,
    load_dashboard,
    load_yaml,
    metric_names,
    promtool,
    required_env,
    rules_doc,
    run,
    series_labels,
    static_values,
    substitute,
    tool,
    used_variables,
    variables,
)

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


def all_rules() -> list[dict[str, Any]]:
    return [r for g in rules_doc()["groups"] for r in g["rules"]]


# -------------------------------------------------------------------------------------------- grafana
def test_dashboards_are_generated_from_build_script() -> None:
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(GRAFANA))  # its sibling modules, as when it runs as a script
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(GRAFANA))
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
    assert argv == ["pointsman", *SERVE_ARGS]
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


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    # pip install . in the build stage installs only what was copied: a package left out fails the image's import
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    wanted = {name.rstrip("*") for name in packages["include"]}
    copied = {
        src.rstrip("/")
        for w, rest in dockerfile_instructions()
        if w == "COPY" and "--from" not in rest
        for src in shlex.split(rest)[:-1]
    }
    allowed = {
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert wanted <= copied, f"not copied into the image: {sorted(wanted - copied)}"
    assert wanted <= allowed, f"dockerignored: {sorted(wanted - allowed)}"


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
    probe = "import gateway.inference.handler as h; print(h.__file__)"
    r = run([docker, "run", "--rm", "--entrypoint", "python", "pointsman:test", "-c", probe], timeout=120)
    assert r.stdout.strip().endswith(".so"), "the image runs the compiled request path"


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
