"""``pointsman spend reconcile FILE``: the ledger against a provider's cost export, per UTC day and model, with
files in OpenAI's and Anthropic's export formats (``accounting.reconcile`` and the CLI on a running gateway)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from accounting.reconcile import ExportError, model_key, read_export, reconcile
from gateway.cli.main import main
from tests.accounting.observe import spend, wait_for
from tests.conftest import ADMIN_KEY, CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import RunningGateway

OPENAI_HEADER = (
    "start_time,end_time,start_time_iso,end_time_iso,amount_value,amount_currency,line_item,project_id,"
    "project_name,organization_id,organization_name"
)


def openai_row(day_start: int, usd: str, line_item: str) -> str:
    iso = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(day_start))
    end = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(day_start + 86400))
    return f'{day_start},{day_start + 86400},{iso},{end},{usd},usd,"{line_item}",proj_abc,Default project,org-1,Acme'


def test_an_openai_cost_export_is_summed_per_day_and_model() -> None:
    text = "\n".join(
        [
            OPENAI_HEADER,
            openai_row(1764547200, "0.0150", "gpt-4o-mini-2024-07-18, input"),
            openai_row(1764547200, "0.0300", "gpt-4o-mini-2024-07-18, output"),
            openai_row(1764547200, "0.0100", "gpt-4o-mini-2024-07-18, cached input"),
            openai_row(1764633600, "0.5", "gpt-5, output"),
            openai_row(1764633600, "0.03", "web search tool calls"),
        ]
    )
    provider, rows = read_export(text)
    assert provider == "openai"
    assert rows == {
        ("2025-12-01", "gpt-4o-mini"): Decimal("0.0550"),
        ("2025-12-02", "gpt-5"): Decimal("0.5"),
        ("2025-12-02", "(other)"): Decimal("0.03"),
    }


def test_an_anthropic_cost_export_in_usd_or_in_cents_is_summed_per_day_and_model() -> None:
    usd = (
        "date,model,workspace,token_type,service_tier,cost_usd\n"
        "2025-12-01,claude-haiku-4-5-20251001,Default,uncached_input_tokens,standard,0.003\n"
        "2025-12-01,claude-haiku-4-5-20251001,Default,cache_creation.ephemeral_5m_input_tokens,standard,0.00375\n"
        "2025-12-01,claude-haiku-4-5-20251001,Default,output_tokens,standard,0.01\n"
    )
    cents = (
        "starting_at,ending_at,model,cost_type,token_type,service_tier,context_window,currency,amount\n"
        "2025-12-01T00:00:00Z,2025-12-02T00:00:00Z,claude-haiku-4-5-20251001,tokens,output_tokens,standard,0-200k,"
        "USD,1.675\n"
    )
    for text in (usd, cents):
        provider, rows = read_export(text)
        assert provider == "anthropic"
        assert rows == {("2025-12-01", "claude-haiku-4-5"): Decimal("0.01675")}


def test_a_file_that_is_no_cost_export_is_refused_with_what_was_expected() -> None:
    with pytest.raises(ExportError, match="amount_value, line_item"):
        read_export("day,tokens\n2025-12-01,10\n")


def test_drift_is_ledger_minus_provider_over_the_days_the_export_covers() -> None:
    ledger = {
        ("2025-12-01", "gpt-4o-mini"): Decimal("0.05"),
        ("2025-12-01", "meta/llama"): Decimal("0.01"),
        ("2025-11-30", "gpt-4o-mini"): Decimal("9"),  # a day the export does not cover
    }
    (a, b) = reconcile(ledger, {("2025-12-01", "gpt-4o-mini"): Decimal("0.055")})
    assert (a.model, a.ledger_usd, a.provider_usd, a.drift_usd, a.drift_pct) == (
        "gpt-4o-mini",
        Decimal("0.05"),
        Decimal("0.055"),
        Decimal("-0.005"),
        Decimal("-9.09"),
    )
    assert (b.model, b.provider_usd, b.drift_pct) == ("llama", 0, None)
    assert (
        model_key("claude-3-5-haiku-20241022")
        == model_key("anthropic/claude-3-5-haiku")
        == "claude-3-5-haiku"
    )


def test_cli_reconciles_a_gateways_ledger_with_an_openai_export(
    upstream: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with RunningGateway(basic_config(upstream.url, server={"data_dir": str(tmp_path)})) as gw:
        with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
            for _ in range(3):
                c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        total = wait_for(
            lambda: spend(gw.url).json()["total"] if spend(gw.url).json()["total"]["requests"] == 3 else None
        )
        ours = Decimal(total["cost_usd"])
        day_start = int(time.time()) // 86400 * 86400
        billed = ours + Decimal("0.001")  # the provider billed a tenth of a cent more
        export = tmp_path / "openai-costs.csv"
        export.write_text(
            "\n".join(
                [
                    OPENAI_HEADER,
                    openai_row(
                        day_start, str(billed - Decimal("0.0000005")), "gpt-4o-mini-2024-07-18, output"
                    ),
                    openai_row(day_start, "0.0000005", "gpt-4o-mini-2024-07-18, input"),
                ]
            )
        )
        args = ["spend", "reconcile", str(export), "--url", gw.url, "--admin-key", ADMIN_KEY]
        assert main([*args, "-f", "json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["provider"] == "openai"
        (row,) = doc["data"]
        day = time.strftime("%Y-%m-%d", time.gmtime(day_start))
        assert (row["day"], row["model"]) == (day, "gpt-4o-mini")
        assert Decimal(row["ledger_usd"]) == ours and Decimal(row["provider_usd"]) == billed
        assert Decimal(row["drift_usd"]) == Decimal("-0.001")
        assert main(args) == 0
        out = capsys.readouterr().out
        assert out.startswith("openai export") and "drift $-0.001" in out


def test_reconcile_shows_requests_the_ledger_could_not_price_instead_of_a_zero_cost(
    upstream: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = basic_config(upstream.url, server={"data_dir": str(tmp_path)})
    cfg["models"]["frontier-unlisted"] = {"backend": "up", "upstream_model": "gpt-unlisted-7"}  # type: ignore[index]
    with RunningGateway(cfg) as gw:
        with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0) as c:
            for _ in range(2):
                c.chat.completions.create(
                    model="frontier-unlisted", messages=[{"role": "user", "content": "x"}]
                )
        wait_for(lambda: spend(gw.url).json()["total"]["requests"] == 2)
        day_start = int(time.time()) // 86400 * 86400
        export = tmp_path / "openai-costs.csv"
        export.write_text(
            "\n".join([OPENAI_HEADER, openai_row(day_start, "0.004", "gpt-unlisted-7, output")])
        )
        args = ["spend", "reconcile", str(export), "--url", gw.url, "--admin-key", ADMIN_KEY]
        assert main([*args, "-f", "json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)["data"]
        assert (row["model"], row["ledger_usd"], row["ledger_unpriced_requests"]) == (
            "gpt-unlisted-7",
            "0",
            2,
        )
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "0 + 2 unpriced" in out and "(+ 2 requests to models without a price, not counted)" in out
        assert main([*args, "-f", "csv"]) == 0
        head, line = capsys.readouterr().out.splitlines()
        assert dict(zip(head.split(","), line.split(","), strict=True))["ledger_unpriced_requests"] == "2"
