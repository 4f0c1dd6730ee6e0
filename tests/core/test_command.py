"""``gateway.command``: the ``pointsman`` command's entry point, run in this process. What ``serve`` sets up before
importing the gateway is checked on a config that does not exist: serve stops before it would settle the heap, so
what it set up is still in place (and is put back here)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.command import main

_PLUGINS = "PYDANTIC_DISABLE_PLUGINS"


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(_PLUGINS, raising=False)  # (and put back as it was afterwards)
    try:
        yield
    finally:
        gc.enable()


def test_serve_starts_with_the_collector_paused_and_pydantic_plugins_off(
    restored: None, tmp_path: Path
) -> None:
    assert main(["serve", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert not gc.isenabled() and os.environ.get(_PLUGINS) == "__all__"


def test_serve_keeps_a_pydantic_plugins_setting_the_environment_gives(
    restored: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_PLUGINS, "")
    assert main(["serve", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert os.environ[_PLUGINS] == ""


def test_other_commands_leave_the_collector_and_pydantic_alone(restored: None, tmp_path: Path) -> None:
    assert main(["check-config", str(tmp_path / "missing.yaml")]) == 2
    assert gc.isenabled() and _PLUGINS not in os.environ
