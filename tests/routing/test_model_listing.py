"""Which names ``/v1/models`` lists: exact entries, and the upstream ids each glob entry claims (pure)."""

from __future__ import annotations

from routing.models import ModelTable
from serving.config import ModelConfig


def table() -> ModelTable:
    return ModelTable(
        {
            "gpt-4o-mini": ModelConfig(backend="openai"),
            "support-bot": ModelConfig(backend="vllm", upstream_model="llama"),
            "gpt-4*": ModelConfig(backend="azure", owned_by="azure"),
            "gpt-*": ModelConfig(backend="openai", owned_by="openai"),
        }
    )


def test_exact_entries_come_first_then_matching_upstream_ids_sorted() -> None:
    served = {"openai": ["gpt-5", "gpt-4o-mini", "whisper-1", "gpt-3.5-turbo"]}
    assert [m.name for m in table().listing(served)] == [
        "gpt-4o-mini",
        "support-bot",
        "gpt-3.5-turbo",
        "gpt-5",
    ]


def test_an_id_an_earlier_glob_claims_for_another_backend_is_not_listed_under_this_one() -> None:
    listed = {
        m.name: m for m in table().listing({"openai": ["gpt-4o", "gpt-5"], "azure": ["gpt-4o", "gpt-5"]})
    }
    assert listed["gpt-4o"].backend == "azure" and listed["gpt-4o"].owned_by == "azure"
    assert listed["gpt-5"].backend == "openai" and listed["gpt-5"].owned_by == "openai"


def test_glob_backends_are_named_once_in_order() -> None:
    assert table().glob_backends == ["azure", "openai"]


def test_without_upstream_lists_only_exact_entries_are_listed() -> None:
    assert [m.name for m in table().listing({})] == ["gpt-4o-mini", "support-bot"]
