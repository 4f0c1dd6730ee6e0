"""Shared helpers for the deployment tests: tools, deploy files (Prometheus rules, config env), dashboards,
PromQL text, the metric contract."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVE_ARGS = ["serve", "--config", "/etc/pointsman/config.yaml", "--host", "0.0.0.0", "--port", "4000"]
"""What the image and the Kubernetes manifests run ``pointsman`` with: the mounted config, all interfaces, 4000."""
GRAFANA = ROOT / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
DASHBOARDS = ("cost", "latency", "shadow", "fleet")
REQUIRED_VARS = ("task", "model", "backend", "team")
INSTALL_HINT = (
    "run scripts/install_test_tools.sh (installs redis-server, prometheus/promtool, nginx, kubectl, ...)"
)

# vLLM's own metrics (labels per vLLM's /metrics) and what Prometheus adds to every scraped series.
VLLM_METRICS: dict[str, tuple[str, set[str]]] = {
    "vllm:num_requests_waiting": ("gauge", {"model_name", "engine"}),
    "vllm:num_requests_running": ("gauge", {"model_name", "engine"}),
    "vllm:kv_cache_usage_perc": ("gauge", {"model_name", "engine"}),
    "vllm:prompt_tokens_total": ("counter", {"model_name", "engine"}),
    "vllm:generation_tokens_total": ("counter", {"model_name", "engine"}),
    "vllm:time_to_first_token_seconds": ("histogram", {"model_name", "engine"}),
    "vllm:e2e_request_latency_seconds": ("histogram", {"model_name", "engine"}),
}
# `backend` is attached to vLLM series by the scrape config (deploy/prometheus/prometheus.yml, ServiceMonitor)
TARGET_LABELS = {"instance", "job", "backend"}
COMMON_LABELS = {"requested_model", "upstream_model", "backend", "route", "task", "team"}


# ------------------------------------------------------------------------------------------------ tools
def tool(name: str) -> str:
    """Path of an external tool: next to this Python first (venv-installed), then PATH, then sbin."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"{name} not found: {INSTALL_HINT}")
    return found


def run(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def kubernetes_validate_cmd() -> list[str]:
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        return [tool("kubernetes-validate")]
    return [sys.executable, "-m", "kubernetes_validate"]


# ------------------------------------------------------------------------------------------- dashboards
@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel_id: int
    panel: str
    ref: str
    expr: str
    instant: bool

    @property
    def where(self) -> str:
        return f"{self.dashboard}.json panel {self.panel_id} {self.panel!r} {self.ref}"


def load_dashboard(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DASHBOARD_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return doc


def iter_panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in doc.get("panels", []):
        yield p
        yield from p.get("panels", [])  # collapsed rows carry their panels


def panel_queries(name: str) -> list[PanelQuery]:
    out = []
    for p in iter_panels(load_dashboard(name)):
        for t in p.get("targets", []):
            out.append(PanelQuery(name, p["id"], p["title"], t["refId"], t["expr"], bool(t.get("instant"))))
    return out


def all_queries() -> list[PanelQuery]:
    return [q for name in DASHBOARDS for q in panel_queries(name)]


def variables(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in doc["templating"]["list"]}


_VAR_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"}


def used_variables(expr: str) -> set[str]:
    names = {next(g for g in m.groups() if g) for m in _VAR_RE.finditer(expr)}
    return {n for n in names if not n.isdigit()}  # $1 ... are label_replace references, not variables


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Interpolate Grafana variables the way Grafana does for Prometheus (All -> the allValue regex)."""

    def sub(m: re.Match[str]) -> str:
        name = next(g for g in m.groups() if g)
        return values.get(name, m.group(0))

    return _VAR_RE.sub(sub, expr)


def static_values(doc: dict[str, Any], rate_interval: str = "1m", range_: str = "1h") -> dict[str, str]:
    vals = {n: v.get("allValue") or ".*" for n, v in variables(doc).items() if v["type"] == "query"}
    vals.update(
        {
            "__rate_interval": rate_interval,
            "__interval": "15s",
            "__interval_ms": "15000",
            "__range": range_,
            "__range_s": "3600",
            "__range_ms": "3600000",
        }
    )
    return vals


# ----------------------------------------------------------------------------------------------- PromQL
_METRIC_RE = re.compile(
    r"(?<![\w:\"$])(pointsman_[a-z0-9_]+|gen_ai_[a-z0-9_]+|vllm:[a-z0-9_:]+|pointsman:[a-z0-9_:]+)\b(?!\s*(?:=|!=|!~))"
)
_GROUPING_RE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER_RE = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")


def metric_names(expr: str) -> set[str]:
    return set(_METRIC_RE.findall(_GROUPING_RE.sub("", _strip_strings(expr))))


def selector_labels(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names matched) for every ``metric{...}`` selector in the expression."""
    return [(m.group(1), set(_MATCHER_RE.findall(m.group(2)))) for m in _SELECTOR_RE.finditer(expr)]


def _strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


@dataclass(frozen=True)
class ContractMetric:
    name: str
    kind: str
    labels: frozenset[str]


def contract() -> dict[str, ContractMetric]:
    """The Prometheus metric contract table of docs/design.md: name -> type and labels."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    section = text.split("## Prometheus metric contract", 1)[1]
    out: dict[str, ContractMetric] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"[a-z_:][a-z0-9_:]*", cells[0]):
            continue
        name, kind, labels_text = cells
        labels_text = re.sub(r"\([^)]*\)", "", labels_text)
        labels: set[str] = set()
        for part in re.split(r"[,+]", labels_text):
            part = part.strip()
            if part == "common":
                labels |= COMMON_LABELS
            elif part:
                labels.add(part)
        out[name] = ContractMetric(name, kind.split()[0], frozenset(labels))
    assert len(out) >= 20, "docs/design.md: metric contract table not found"
    return out


def series_labels() -> dict[str, set[str]]:
    """Every series name a scrape can hold (histogram _bucket/_sum/_count ...) -> its allowed labels."""
    out: dict[str, set[str]] = {}
    entries = [(m.name, m.kind, set(m.labels)) for m in contract().values()]
    entries += [(n, k, set(lbls)) for n, (k, lbls) in VLLM_METRICS.items()]
    for name, kind, labels in entries:
        labels |= TARGET_LABELS
        if kind == "histogram":
            out[name + "_bucket"] = labels | {"le"}
            out[name + "_sum"] = set(labels)
            out[name + "_count"] = set(labels)
        else:
            out[name] = labels
    return out


def check_expr_against_contract(
    expr: str, known: Mapping[str, set[str]], recorded: frozenset[str] | set[str] = frozenset()
) -> list[str]:
    problems = []
    for name in metric_names(expr):
        if name not in known and name not in recorded:
            problems.append(f"unknown metric {name}")
    for name, labels in selector_labels(expr):
        if name in known:
            extra = labels - known[name]
            if extra:
                problems.append(f"{name} has no label(s) {sorted(extra)}")
    return problems


PROM = DEPLOY / "prometheus"


CONFIG_ENV = {"POINTSMAN_ADMIN_KEY": "admin-key-for-tests", "POINTSMAN_CLIENT_KEY": "client-key-for-tests"}


def promtool(*args: str, cwd: Path | None = None) -> str:
    r = run([tool("promtool"), *args], cwd=cwd)
    assert r.returncode == 0, f"promtool {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules_doc() -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml(PROM / "rules.yml")
    return doc


def required_env(config_text: str) -> set[str]:
    """Environment variables a config file needs (``${NAME}`` without a default)."""
    return {m.group(1) for m in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", config_text)}
