"""Custom scorers loaded by import path in tests (``tests.shadow.scorers:...``)."""

from __future__ import annotations

from typing import Any

from routing.shadow.extract import Output


def shorter_is_fine(primary: Output, candidate: Output, request: dict[str, Any], slack: int = 0) -> bool:
    return len(candidate.text) <= len(primary.text) + slack


async def length_ratio(primary: Output, candidate: Output, request: dict[str, Any]) -> float | None:
    if not primary.text:
        return None
    return len(candidate.text) / len(primary.text)
