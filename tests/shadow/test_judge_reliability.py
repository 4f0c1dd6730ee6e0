"""Judge reliability through a running gateway, with fake judges of known behaviour: always "1", always "2",
always "tie", random, and honest with noise. Each route pairs the same two models (the primary ``sloppy`` answers
every third item with broken JSON, the candidate ``cand`` every tenth) and judges them with one fake judge; the
report's judge figures must be what the fake actually answered, and only the honest judge may lead to ``ready``."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli import main as cli_main
from tests.conftest import ADMIN_KEY
from tests.gateway_runner import RunningGateway
from tests.shadow.conftest import ask, config, route_of, sdk, settle, shadow_route, zoo_models
from tests.shadow.fakes import JudgeCall, ModelSpec, ModelZoo

N = 60
JUDGES = {
    "first": ModelSpec(judge=True, judge_mode="first"),
    "second": ModelSpec(judge=True, judge_mode="second"),
    "tie": ModelSpec(judge=True, judge_mode="tie"),
    "random": ModelSpec(judge=True, judge_mode="random"),
    "noisy": ModelSpec(judge=True, judge_mode="honest", judge_noise=0.15),
}
CRITERIA = {"min_pairs": 30, "judge_margin": 0.1, "max_candidate_error_rate": None}
ROUTES = [
    shadow_route(
        f"j-{name}",
        {"model": "cand", "compare": [{"type": "llm_judge", "model": f"judge-{name}"}]},
        targets=("sloppy",),
        promote_when=CRITERIA,
    )
    for name in JUDGES
]
ROUTES.append(
    shadow_route(
        "j-people",
        {
            "model": "cand",
            "compare": [{"type": "llm_judge", "model": "judge-noisy", "human_metric": "preference"}],
        },
        targets=("sloppy",),
        promote_when=CRITERIA,
    )
)
PEOPLE = range(30_001, 30_001 + N)
_ITEM = re.compile(r'"item":(\d+)')


def answer(item: int, invalid_every: int) -> str:
    text = orjson.dumps({"item": item, "label": "positive"}).decode()
    return text[: len(text) // 2] if item % invalid_every == 0 else text


def orders(calls: list[JudgeCall], item: int) -> tuple[str, str]:
    """What the judge said with the primary first and with the candidate first, from the fake's log."""
    mine = [c for c in calls if _ITEM.search(c.first) and int(_ITEM.search(c.first).group(1)) == item]  # type: ignore[union-attr]
    assert len(mine) == 2, (item, mine)
    primary = answer(item, 3)
    if primary == answer(item, 10):  # identical answers: both orders are the same prompt
        assert mine[0].winner == mine[1].winner
        return mine[0].winner, mine[0].winner
    a = next(c.winner for c in mine if c.first == primary)
    b = next(c.winner for c in mine if c.first != primary)
    return a, b


def expected(calls: list[JudgeCall], items: range) -> dict[str, Any]:
    outcome = {("2", "1"): "win", ("1", "2"): "loss", ("tie", "tie"): "tie"}
    said = [orders(calls, i) for i in items]
    outcomes = Counter(outcome.get(ab, "inconsistent") for ab in said)
    answers = Counter(x for ab in said for x in ab)
    n = len(said)
    return {
        "outcomes": {k: outcomes[k] for k in ("win", "loss", "tie", "inconsistent")},
        "order_consistency": (n - outcomes["inconsistent"]) / n,
        "first_rate": answers["1"] / (2 * n),
        "second_rate": answers["2"] / (2 * n),
        "tie_rate": answers["tie"] / (2 * n),
        "position_bias": (answers["1"] - answers["2"]) / (2 * n),
    }


class Env:
    def __init__(self, gw: RunningGateway, zoo: ModelZoo) -> None:
        self.gw, self.zoo = gw, zoo
        self.routes: dict[str, dict[str, Any]] = {}

    def items(self, judge: str) -> range:
        base = 3000 * (list(JUDGES).index(judge) + 1)  # a multiple of 30: every route sees the same pattern
        return range(base + 1, base + N + 1)

    def calls(self, judge: str) -> list[JudgeCall]:
        return [c for c in self.zoo.judge_calls if c.model == f"judge-{judge}"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    models = zoo_models(
        sloppy=ModelSpec(delay_s=0.01, invalid_every=3),
        **{f"judge-{name}": spec for name, spec in JUDGES.items()},
    )
    zoo = ModelZoo(models).start()
    with RunningGateway(
        config(zoo, tmp_path_factory.mktemp("judges"), {"model": "cand"}, extra_routes=ROUTES)
    ) as gw:
        e = Env(gw, zoo)
        with sdk(gw) as client, ThreadPoolExecutor(max_workers=8) as pool:
            jobs = [
                (name, i)
                for name in [*JUDGES, "people"]
                for i in (PEOPLE if name == "people" else e.items(name))
            ]
            list(pool.map(lambda j: ask(client, j[1], model=f"f-j-{j[0]}"), jobs))
        for name in JUDGES:
            e.routes[name] = route_of(settle(gw, N, route=f"j-{name}"), f"j-{name}")
        yield e
    zoo.stop()


@pytest.mark.parametrize("judge", list(JUDGES))
def test_judge_figures_are_what_the_judge_answered(env: Env, judge: str) -> None:
    got = env.routes[judge]["comparators"]["llm_judge"]["judge"]
    want = expected(env.calls(judge), env.items(judge))
    assert got["judged"] == N
    assert got["outcomes"] == want.pop("outcomes")
    assert {k: got[k] for k in want} == pytest.approx(want)


def test_an_always_first_judge_is_unreliable_never_ready(env: Env) -> None:
    r = env.routes["first"]
    j = r["comparators"]["llm_judge"]["judge"]
    assert (j["order_consistency"], j["position_bias"], j["constant"]) == (0.0, 1.0, "1")
    assert j["outcomes"]["inconsistent"] == N and j["outcomes"]["tie"] == 0  # not folded into ties
    v = r["verdict"]
    assert v["verdict"] == "judge_unreliable"
    assert (
        v["judges"]["llm_judge"]["reasons"][0]
        == f'constant judge: always answers "1" (the first answer) over {N} pairs'
    )
    assert "order consistency 0.0% below the floor 60%" in v["reason"]


def test_an_always_second_judge_is_unreliable(env: Env) -> None:
    j = env.routes["second"]["comparators"]["llm_judge"]["judge"]
    assert (j["order_consistency"], j["position_bias"], j["constant"]) == (0.0, -1.0, "2")
    assert env.routes["second"]["verdict"]["verdict"] == "judge_unreliable"


def test_an_always_tie_judge_is_consistent_but_constant_so_unreliable(env: Env) -> None:
    r = env.routes["tie"]
    j = r["comparators"]["llm_judge"]["judge"]
    assert (j["order_consistency"], j["tie_rate"], j["outcomes"]["tie"]) == (1.0, 1.0, N)
    assert r["verdict"]["verdict"] == "judge_unreliable"
    assert r["verdict"]["judges"]["llm_judge"]["reasons"] == [
        f'constant judge: always answers "tie" over {N} pairs'
    ]


def test_a_random_judge_falls_below_the_consistency_floor(env: Env) -> None:
    r = env.routes["random"]
    assert r["comparators"]["llm_judge"]["judge"]["order_consistency"] < 0.6
    assert r["verdict"]["verdict"] == "judge_unreliable"
    assert "order consistency" in r["verdict"]["reason"]


def test_an_honest_judge_with_noise_is_reliable_and_shows_the_better_candidate_non_inferior(env: Env) -> None:
    r = env.routes["noisy"]
    v = r["verdict"]
    assert v["judges"] == {"llm_judge": {"reliable": True, "reasons": []}}
    assert v["verdict"] == "ready", v
    crit = next(c for c in v["criteria"] if c["name"] == "judge_non_inferior:llm_judge")
    assert crit["anytime"]["lower"] > 0.4 and crit["anytime"]["e_value"] >= 20
    consistent = r["comparators"]["llm_judge"]["judge"]["consistent_score"]
    w = expected(env.calls("noisy"), env.items("noisy"))["outcomes"]
    assert consistent["estimate"] == pytest.approx(
        (w["win"] + 0.5 * w["tie"]) / (w["win"] + w["tie"] + w["loss"])
    )


def truth(item: int) -> float:
    """A person's preference: the candidate's answer is better where only the primary broke its JSON."""
    primary_ok, candidate_ok = item % 3 != 0, item % 10 != 0
    return 0.5 if primary_ok == candidate_ok else (1.0 if candidate_ok else 0.0)


def kappa(pairs: list[tuple[str, str]]) -> float:
    n = len(pairs)
    po = sum(a == b for a, b in pairs) / n
    cats = {x for ab in pairs for x in ab}
    pe = sum(sum(a == c for a, _ in pairs) * sum(b == c for _, b in pairs) for c in cats) / (n * n)
    return (po - pe) / (1 - pe)


def test_judge_agreement_with_people_is_cohens_kappa_on_the_same_requests(env: Env) -> None:
    rated = list(PEOPLE)[::2]  # people rated half the requests
    with sdk(env.gw) as client:
        for item in rated:
            r = client.post(
                "/feedback",
                cast_to=httpx.Response,
                body={"request_id": f"req-{item}", "metric": "preference", "value": truth(item)},
            )
            assert r.status_code == 200, r.text
    report = route_of(settle(env.gw, N, route="j-people"), "j-people")
    human = report["comparators"]["llm_judge"]["judge"]["human"]
    calls = [c for c in env.zoo.judge_calls if c.model == "judge-noisy"]
    judged = {("2", "1"): "win", ("1", "2"): "loss"}
    label = {1.0: "win", 0.0: "loss", 0.5: "tie"}
    pairs = [(judged.get(orders(calls, i), "tie"), label[truth(i)]) for i in rated]
    assert (human["metric"], human["n"]) == ("preference", len(rated))
    assert human["kappa"] == pytest.approx(kappa(pairs))
    assert human["kappa"] > 0.5  # the noisy judge mostly agrees with people


def test_the_cli_report_names_the_unreliable_judge_and_its_figures(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli_main(["shadow", "report", "--url", env.gw.url, "--admin-key", ADMIN_KEY, "--route", "j-first"])
    out = capsys.readouterr().out
    assert rc == 0
    assert 'verdict: JUDGE_UNRELIABLE - llm_judge: constant judge: always answers "1"' in out
    line = next(x for x in out.splitlines() if x.strip().startswith("llm_judge") and "0/0/0/60" in x)
    assert line.split()[3:5] == ["0.0%", "100.0%"]  # consistency, position bias


def test_the_cli_report_shows_the_anytime_bound_and_the_snapshot_interval(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_main(["shadow", "report", "--url", env.gw.url, "--admin-key", ADMIN_KEY, "--route", "j-noisy"])
    line = next(x for x in capsys.readouterr().out.splitlines() if "judge_non_inferior:llm_judge" in x)
    assert "[     pass]" in line and "lower bound 0.4" in line and "of 20" in line and "snapshot [" in line


def test_the_html_report_has_the_judges_table(env: Env) -> None:
    page = httpx.get(
        env.gw.url + "/admin/shadow/report.html",
        params={"route": "j-tie"},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    ).text
    assert '<p class="verdict v-judge_unreliable">Verdict: <b>judge_unreliable</b>' in page
    assert (
        "<h3>Judges</h3>" in page and "<td>0/0/60/0</td><td>100.0%</td><td>0.0%</td><td>100.0%</td>" in page
    )


def test_prometheus_shows_judge_reliability_evidence_and_the_verdict(env: Env) -> None:
    httpx.get(
        env.gw.url + "/admin/shadow/report", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ).raise_for_status()  # an unfiltered report publishes the gauges
    text = httpx.get(env.gw.url + "/metrics", timeout=10).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    first = (("comparator", "llm_judge"), ("route", "j-first"))
    assert samples["pointsman_shadow_judge_consistency", first] == 0.0
    assert samples["pointsman_shadow_judge_position_bias", first] == 1.0
    assert samples["pointsman_shadow_verdict", (("route", "j-first"), ("verdict", "judge_unreliable"))] == 1.0
    noisy = (("criterion", "judge_non_inferior:llm_judge"), ("route", "j-noisy"))
    assert samples["pointsman_shadow_evidence", noisy] >= 1.0
    assert samples["pointsman_shadow_pairs_needed", (("route", "j-noisy"),)] == 0.0
