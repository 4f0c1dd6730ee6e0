"""A shadow test set up live through the routes admin API: validated like the config file, in force on the
next request, no restart."""

from __future__ import annotations

from pathlib import Path

from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import admin, config, drive, route_of, settle
from tests.shadow.fakes import ModelZoo

ROUTE = {"name": "extract", "match": {"model": "frontier"}, "targets": [{"model": "frontier"}]}


def test_a_shadow_added_through_the_admin_api_pairs_the_next_requests(zoo: ModelZoo, tmp_path: Path) -> None:
    cfg = config(zoo, tmp_path, {"model": "cand"})
    del cfg["routes"][0]["shadow"]
    with RunningGateway(cfg) as gw:
        drive(gw, [1])
        with admin(gw) as a:
            r = a.put(
                "/admin/routes/extract",
                json={**ROUTE, "shadow": {"model": "cand", "sample_rate": 1.0, "compare": ["json_valid"]}},
            )
            assert r.status_code == 200, r.text
        drive(gw, [2, 3])
        rep = route_of(settle(gw, 2))
        with admin(gw) as a:
            ids = {p["id"] for p in a.get("/admin/shadow/pairs").json()["data"]}
    assert ids == {"req-2", "req-3"}
    assert rep["comparators"]["json_valid"]["n"] == 2


def test_an_invalid_shadow_is_refused_with_the_failing_path(zoo: ModelZoo, tmp_path: Path) -> None:
    with RunningGateway(config(zoo, tmp_path, {"model": "cand"})) as gw, admin(gw) as a:
        r = a.put("/admin/routes/extract", json={**ROUTE, "shadow": {"model": "cand", "sample_rate": 1.5}})
        assert r.status_code == 400
        assert r.json()["error"]["param"].endswith("shadow.sample_rate")
        r = a.put(
            "/admin/routes/extract",
            json={
                **ROUTE,
                "shadow": {"model": "cand"},
                "promote_when": {"scores": {"rouge_l": {"min": 0.5}}},
            },
        )
        assert r.status_code == 400 and "unknown comparators ['rouge_l']" in r.json()["error"]["message"]
