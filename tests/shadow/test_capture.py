"""Raw prompts and outputs are stored with a pair only where the route enables capture AND the key's team is
allowed to capture (the ``capture_allowed`` hook, which team capture approval provides; default: nobody)."""

from __future__ import annotations

from pathlib import Path

from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import admin, config, drive, settle
from tests.shadow.fakes import ModelZoo


def test_capture_stays_off_while_the_team_is_not_allowed(zoo: ModelZoo, tmp_path: Path) -> None:
    with RunningGateway(config(zoo, tmp_path, {"model": "cand", "sample_rate": 1.0, "capture": True})) as gw:
        drive(gw, range(1, 4))
        settle(gw, 3)
        with admin(gw) as a:
            pairs = a.get("/admin/shadow/pairs").json()["data"]
    assert [p["capture"] for p in pairs] == [None, None, None]


def test_capture_stores_the_request_and_both_answers_when_the_team_is_allowed(zoo: ModelZoo, tmp_path: Path) -> None:
    with RunningGateway(config(zoo, tmp_path, {"model": "cand", "sample_rate": 1.0, "capture": True})) as gw:
        gw.app.state.shadow.hub.capture_allowed = lambda team: team == "search"  # the approval hook
        drive(gw, [7])
        settle(gw, 1)
        with admin(gw) as a:
            cap = a.get("/admin/shadow/pairs/req-7").json()["capture"]
    assert cap["request"]["messages"][0]["content"] == "Extract item 7 as JSON."
    assert cap["primary"]["text"] == cap["candidate"]["text"] == '{"item":7,"label":"positive"}'


def test_capture_needs_the_route_to_enable_it(zoo: ModelZoo, tmp_path: Path) -> None:
    with RunningGateway(config(zoo, tmp_path, {"model": "cand", "sample_rate": 1.0})) as gw:
        gw.app.state.shadow.hub.capture_allowed = lambda team: True
        drive(gw, [8])
        settle(gw, 1)
        with admin(gw) as a:
            assert a.get("/admin/shadow/pairs/req-8").json()["capture"] is None
