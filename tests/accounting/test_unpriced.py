"""No model is silently free: a model without a price (frontier or self-hosted, configured or let through by a
glob) is flagged in metrics, the log, the ledger, the spend report and ``check-config``; ``accounting.on_unpriced``
decides whether a key with a dollar budget may use it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from gateway.cli import main
from tests.accounting.observe import ledger_rows, metric_sum, scrape, wait_for
from tests.conftest import ADMIN_KEY, CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

MSG: list[Any] = [{"role": "user", "content": "x"}]
UNLISTED = "gpt-unlisted-7"
"""A frontier model name the bundled price table does not have (configured as ``frontier-unlisted``)."""
GLOBBED = "gpt-unlisted-9"
"""Another, that only the ``gpt-*`` glob lets through."""


def _config(upstream: FakeOpenAI, tmp_path: Path, **accounting: Any) -> dict[str, Any]:
    cfg = basic_config(upstream.url, server={"data_dir": str(tmp_path)}, accounting=accounting)
    models: dict[str, Any] = cfg["models"]  # type: ignore[assignment]
    models["frontier-unlisted"] = {"backend": "up", "upstream_model": UNLISTED}
    models["gpt-*"] = {"backend": "up"}
    return cfg


def _budget(scope: str = "key", name: str = "app") -> dict[str, Any]:
    return {"budgets": [{"scope": scope, "name": name, "daily_usd": "10"}]}


def test_a_configured_frontier_model_without_a_price_is_flagged_at_startup(
    upstream: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="pointsman.accounting"),
        RunningGateway(_config(upstream, tmp_path)) as gw,
    ):
        warnings = [
            r.getMessage() for r in caplog.records if "'frontier-unlisted' has no price" in r.getMessage()
        ]
        assert len(warnings) == 1 and "accounting.pricing['frontier-unlisted']" in warnings[0]
        samples = scrape(gw.url)
        assert metric_sum(samples, "pointsman_model_unpriced", model="frontier-unlisted") == 1
        assert metric_sum(samples, "pointsman_model_unpriced", model="gpt-4o-mini") == 0


def test_requests_to_an_unpriced_model_are_ledgered_as_unpriced_not_as_zero_spend(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    with (
        RunningGateway(_config(upstream, tmp_path)) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        c.chat.completions.create(model="frontier-unlisted", messages=MSG)
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        rows = wait_for(lambda: ledger_rows(tmp_path) if len(ledger_rows(tmp_path)) == 2 else None)
        by_model = {r["requested_model"]: r for r in rows}
        assert by_model["frontier-unlisted"]["priced"] == 0 and by_model["gpt-4o-mini"]["priced"] == 1
        spend = httpx.get(
            gw.url + "/admin/spend",
            params={"group_by": "requested_model"},
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        ).json()
        groups = {r["requested_model"]: r for r in spend["data"]}
        assert groups["frontier-unlisted"]["unpriced_requests"] == 1
        assert groups["gpt-4o-mini"]["unpriced_requests"] == 0
        assert spend["total"]["unpriced_requests"] == 1


def test_the_spend_table_never_shows_unpriced_requests_as_zero_cost(
    upstream: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        RunningGateway(_config(upstream, tmp_path)) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        c.chat.completions.create(model="frontier-unlisted", messages=MSG)
        assert main(["spend", "-g", "requested_model", "--url", gw.url, "--admin-key", ADMIN_KEY]) == 0
    out = capsys.readouterr().out
    assert "0 + 1 unpriced" in out and "(+ 1 requests to models without a price, not counted)" in out


def test_a_name_a_glob_lets_through_is_flagged_once_when_first_charged(
    upstream: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="pointsman.accounting"),
        RunningGateway(_config(upstream, tmp_path)) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        assert metric_sum(scrape(gw.url), "pointsman_model_unpriced", model=GLOBBED) == 0
        for _ in range(3):
            c.chat.completions.create(model=GLOBBED, messages=MSG)
        wait_for(lambda: metric_sum(scrape(gw.url), "pointsman_model_unpriced", model=GLOBBED) == 1)
        warned = [r for r in caplog.records if f"{GLOBBED!r} has no price" in r.getMessage()]
        assert len(warned) == 1


def test_on_unpriced_reject_refuses_a_budgeted_key_naming_the_model(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    with (
        RunningGateway(_config(upstream, tmp_path, **_budget())) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        with pytest.raises(openai.PermissionDeniedError) as exc:
            c.chat.completions.create(model="frontier-unlisted", messages=MSG)
        err = exc.value.body
        assert isinstance(err, dict) and err["code"] == "model_unpriced"
        assert "`frontier-unlisted`" in err["message"] and "accounting.pricing" in err["message"]
        assert "on_unpriced: allow" in err["message"]
        assert c.chat.completions.create(model="gpt-4o-mini", messages=MSG).choices  # priced: served
        assert [r.path for r in upstream.requests] == ["/v1/chat/completions"]  # the refusal never went out


def test_on_unpriced_reject_covers_a_team_budget(upstream: FakeOpenAI, tmp_path: Path) -> None:
    with (
        RunningGateway(_config(upstream, tmp_path, **_budget("team", "search"))) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
        pytest.raises(openai.PermissionDeniedError),
    ):
        c.chat.completions.create(model=GLOBBED, messages=MSG)


def test_on_unpriced_allow_serves_a_budgeted_key_and_records_the_request_as_unpriced(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    cfg = _config(upstream, tmp_path, on_unpriced="allow", **_budget())
    with (
        RunningGateway(cfg) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        assert c.chat.completions.create(model="frontier-unlisted", messages=MSG).choices
        rows = wait_for(lambda: ledger_rows(tmp_path))
        assert rows[-1]["priced"] == 0


def test_a_key_without_a_budget_is_served_an_unpriced_model_under_reject(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    cfg = _config(upstream, tmp_path, **_budget("key", "someone-else"))
    with (
        RunningGateway(cfg) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
    ):
        assert c.chat.completions.create(model="frontier-unlisted", messages=MSG).choices


def test_an_unpriced_fallback_is_refused_for_a_budgeted_key(upstream: FakeOpenAI, tmp_path: Path) -> None:
    cfg = _config(upstream, tmp_path, **_budget())
    cfg["routes"] = [
        {"name": "r", "match": {}, "targets": [{"model": "gpt-4o-mini"}], "fallbacks": ["frontier-unlisted"]}
    ]
    with (
        RunningGateway(cfg) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c,
        pytest.raises(openai.PermissionDeniedError, match="frontier-unlisted"),
    ):
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)


def test_check_config_lists_configured_models_without_a_price(
    upstream: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(upstream, tmp_path)
    cfg["backends"]["gpu"] = {"type": "vllm", "endpoints": [upstream.url]}
    cfg["models"]["llama-free"] = {"backend": "gpu"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "unpriced: 2 configured model(s) have no price" in out
    assert "  frontier-unlisted (backend up): model 'frontier-unlisted' has no price" in out
    assert "  llama-free (backend gpu): self-hosted model 'llama-free' has no price" in out
    assert "gpt-4o-mini (backend" not in out
