"""Dataset export through a running gateway: valid fine-tuning JSONL, no planted secret, stable split."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.cli import main as cli_main
from tests.capture.conftest import Admin, ask, feedback
from tests.capture.planted import leaked, planted_messages
from tests.conftest import ADMIN_KEY
from tests.gateway_runner import RunningGateway

ROLES = {"system", "user", "assistant", "tool"}


def lines_of(files: dict[str, list[Any]], *names: str) -> list[Any]:
    return [x for n in names for x in files[n]]


@pytest.fixture
def traffic(client: openai.OpenAI, admin: Admin) -> list[str]:
    """Approved team, 20 distinct questions plus the planted conversation; returns request ids."""
    admin.approve()
    ids = [ask(client, f"How do I reset password number {i}?") for i in range(20)]
    ids.append(
        ask(
            client,
            messages=planted_messages(),
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "lookup_account",
                        "parameters": {"type": "object", "properties": {}},
                    },
                }
            ],
        )
    )
    return ids


def test_every_line_is_a_valid_fine_tuning_example(traffic: list[str], admin: Admin) -> None:
    files = admin.export(task="support")["files"]
    examples = lines_of(files, "train.jsonl", "test.jsonl")
    assert len(examples) == 21
    for ex in examples:
        assert set(ex) <= {"messages", "tools", "parallel_tool_calls"}
        assert {m["role"] for m in ex["messages"]} <= ROLES
        assert ex["messages"][-1]["role"] == "assistant"
        assert all(
            m.get("content") or m.get("tool_calls") for m in ex["messages"] if m["role"] == "assistant"
        )


def test_jsonl_files_parse_line_by_line(traffic: list[str], admin: Admin) -> None:
    r = admin.http.get("/admin/datasets/export", params={"task": "support"})
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert set(z.namelist()) == {
            "manifest.json",
            "train.jsonl",
            "test.jsonl",
            "preferences_train.jsonl",
            "preferences_test.jsonl",
        }
        for name in z.namelist():
            if name.endswith(".jsonl"):
                for line in z.read(name).decode().splitlines():
                    assert isinstance(json.loads(line), dict)


def test_json_export_holds_the_same_records_as_the_zip(traffic: list[str], admin: Admin) -> None:
    r = admin.http.get("/admin/datasets/export", params={"task": "support"})
    doc = admin.export(task="support")
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        zipped = json.loads(z.read("manifest.json"))
        assert {**doc["manifest"], "created_at": None} == {**zipped, "created_at": None}  # (made twice)
        assert set(doc["files"]) == {n for n in z.namelist() if n.endswith(".jsonl")}
        for name, records in doc["files"].items():
            assert records == [json.loads(line) for line in z.read(name).decode().splitlines() if line]
    assert doc["files"]["train.jsonl"]  # (the traffic made examples: the comparison compared something)


def test_no_planted_secret_survives_the_export(traffic: list[str], admin: Admin) -> None:
    doc = admin.export(task="support")
    assert leaked([json.dumps(doc)]) == []


def test_tool_definitions_and_calls_are_exported(traffic: list[str], admin: Admin) -> None:
    files = admin.export(task="support")["files"]
    (ex,) = [e for e in lines_of(files, "train.jsonl", "test.jsonl") if "tools" in e]
    assert ex["tools"][0]["function"]["name"] == "lookup_account"
    assert ex["messages"][-1]["tool_calls"][0]["function"]["name"] == "lookup_account"
    assert ex["messages"][3] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": ex["messages"][3]["content"],
    }


def test_split_is_stable_across_runs(traffic: list[str], admin: Admin) -> None:
    a = admin.export(task="support", holdout=0.3)["files"]
    b = admin.export(task="support", holdout=0.3)["files"]
    assert a["test.jsonl"] == b["test.jsonl"]
    assert a["train.jsonl"] == b["train.jsonl"]
    assert 0 < len(a["test.jsonl"]) < 21


def test_split_puts_each_prompt_on_one_side_only(
    client: openai.OpenAI, traffic: list[str], admin: Admin
) -> None:
    ask(client, "How do I reset password number 3?", temperature=0.5)  # same prompt, different parameters
    files = admin.export(task="support", holdout=0.5)["files"]
    train = {json.dumps(e["messages"][:-1]) for e in files["train.jsonl"]}
    test = {json.dumps(e["messages"][:-1]) for e in files["test.jsonl"]}
    assert train.isdisjoint(test)


def test_duplicates_are_exported_once(client: openai.OpenAI, admin: Admin) -> None:
    admin.approve()
    for _ in range(3):
        ask(client, "same question")
    doc = admin.export(task="support")
    assert len(lines_of(doc["files"], "train.jsonl", "test.jsonl")) == 1
    assert doc["manifest"]["counts"]["skipped"] == {"duplicate": 2}


def test_min_feedback_keeps_only_well_rated_requests(
    client: openai.OpenAI, admin: Admin, gateway: RunningGateway
) -> None:
    admin.approve()
    good, bad, unrated = ask(client, "good one"), ask(client, "bad one"), ask(client, "unrated one")
    feedback(gateway, {"request_id": good, "metric": "score", "value": 0.9})
    feedback(gateway, {"request_id": bad, "metric": "score", "value": 0.2})
    doc = admin.export(task="support", min_feedback="score>=0.8", holdout=0)
    assert [e["messages"][0]["content"] for e in doc["files"]["train.jsonl"]] == ["good one"]
    assert doc["manifest"]["counts"]["skipped"] == {"feedback_filter": 2}
    assert unrated


def test_demonstration_becomes_the_answer_and_a_preference_pair(
    client: openai.OpenAI, admin: Admin, gateway: RunningGateway
) -> None:
    admin.approve()
    rid = ask(client, "What is our refund window?")
    feedback(gateway, {"request_id": rid, "metric": "correction", "value": "30 days from delivery."})
    files = admin.export(task="support", holdout=0)["files"]
    (ex,) = files["train.jsonl"]
    assert ex["messages"][-1] == {"role": "assistant", "content": "30 days from delivery."}
    (pref,) = files["preferences_train.jsonl"]
    assert pref["input"]["messages"] == [{"role": "user", "content": "What is our refund window?"}]
    assert pref["preferred_output"] == [{"role": "assistant", "content": "30 days from delivery."}]
    assert pref["non_preferred_output"][0]["content"].startswith("Hello from primary")


def test_manifest_describes_the_export(traffic: list[str], admin: Admin) -> None:
    m = admin.export(task="support", since="1h")["manifest"]
    assert m["format"] == "openai-chat-finetune"
    assert m["counts"]["traces_scanned"] == 21
    assert m["counts"]["examples"]["total"] == 21
    assert m["filters"]["task"] == "support"
    assert m["time_range"]["requested"]["since"] is not None
    assert m["time_range"]["data"]["first"] <= m["time_range"]["data"]["last"]
    assert m["redaction"]["at_capture"]["EMAIL"] >= 2
    assert m["redaction"]["at_export"] == {}
    assert m["files"]["train.jsonl"]["lines"] == m["counts"]["examples"]["train"]


def test_export_filters_by_task(traffic: list[str], admin: Admin) -> None:
    doc = admin.export(task="billing")
    assert doc["manifest"]["counts"]["traces_scanned"] == 0


def test_cli_writes_the_dataset_into_a_directory(
    traffic: list[str], gateway: RunningGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    rc = cli_main(
        [
            "dataset",
            "export",
            "--task",
            "support",
            "--since",
            "1d",
            "--out",
            str(out),
            "--url",
            gateway.url,
            "--admin-key",
            ADMIN_KEY,
        ]
    )
    assert rc == 0
    assert "21 traces scanned" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    n = sum(1 for name in ("train.jsonl", "test.jsonl") for _ in (out / name).read_text().splitlines())
    assert n == manifest["counts"]["examples"]["total"] == 21


def test_cli_reads_the_capture_database_directly(
    traffic: list[str], admin: Admin, gateway: RunningGateway, tmp_path: Path
) -> None:
    admin.flush()
    db = Path(gateway.config.server.data_dir) / "capture.sqlite3"
    via_api = admin.export(task="support")["files"]
    out = tmp_path / "offline"
    rc = cli_main(
        [
            "dataset",
            "export",
            "--task",
            "support",
            "--since",
            "1d",
            "--out",
            str(out),
            "--capture-db",
            str(db),
        ]
    )
    assert rc == 0
    offline = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert offline == via_api["train.jsonl"]


def test_cli_refuses_a_non_empty_output_directory(gateway: RunningGateway, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    rc = cli_main(
        [
            "dataset",
            "export",
            "--task",
            "support",
            "--since",
            "1d",
            "--out",
            str(tmp_path),
            "--url",
            gateway.url,
            "--admin-key",
            ADMIN_KEY,
        ]
    )
    assert rc == 2
