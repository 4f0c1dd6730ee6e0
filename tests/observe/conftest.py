from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.telemetry import FakeTelemetry


@pytest.fixture
def telemetry() -> Iterator[FakeTelemetry]:
    t = FakeTelemetry().start()
    yield t
    t.stop()
