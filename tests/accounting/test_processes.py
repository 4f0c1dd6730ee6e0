"""``pointsman serve`` as real processes: one consistent /metrics across ``--workers 2`` and ``4`` (the merge of the
workers' files equal to prometheus_client's own), and no ledger record lost when SIGTERM arrives under load."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.accounting.observe import ledger_rows, metric_sum, scrape
from tests.conftest import CLIENT_KEY, basic_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess

MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture
def slow_upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(
        name="slow", prompt_tokens=100, completion_tokens=50, chunks=6, chunk_delay=0.05
    ).start()
    yield fake
    fake.stop()


def post(url: str, rid: str, model: str = "gpt-4o-mini", stream: bool = False) -> int:
    with httpx.Client(timeout=30) as c:  # a new connection per request: spread over the workers
        if stream:
            with c.stream(
                "POST",
                url + "/v1/chat/completions",
                headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": rid},
                json={"model": model, "messages": MSG, "stream": True},
            ) as r:
                body = b"".join(r.iter_bytes())
                return r.status_code if b"[DONE]" in body else -1
        r = c.post(
            url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": rid},
            json={"model": model, "messages": MSG},
        )
        return r.status_code


Exposition = dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]]


def exposition(text: str) -> Exposition:
    """Family name -> (type, help, {(sample, sorted labels): value})."""
    return {
        fam.name: (
            fam.type,
            fam.documentation,
            {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples},
        )
        for fam in text_string_to_metric_families(text)
    }


def reference(directory: Path) -> Exposition:
    """What prometheus_client's own ``MultiProcessCollector`` makes of the workers' files."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return exposition(generate_latest(registry).decode())


def same(ours: Exposition, theirs: Exposition) -> bool:
    """Equal families and samples, values equal up to the order floats were summed in."""
    if ours.keys() != theirs.keys():
        return False
    for name, (typ, doc, samples) in ours.items():
        other_typ, other_doc, other = theirs[name]
        if (typ, doc) != (other_typ, other_doc) or samples.keys() != other.keys():
            return False
        if not all(math.isclose(v, other[k], rel_tol=1e-9, abs_tol=1e-12) for k, v in samples.items()):
            return False
    return True


def serve_until_every_worker_served(
    gw: GatewayProcess, mp: Path, workers: int, models: list[str], prefix: str = "w"
) -> int:
    """Rounds of concurrent requests (streamed and not, over ``models``; ids ``{prefix}-{i}``) until each worker
    wrote its files; the number of requests sent."""
    n = 0
    for _round in range(30):
        results: list[int] = []
        threads = [
            threading.Thread(
                target=lambda i=i, out=results: out.append(
                    post(gw.url, f"{prefix}-{i}", models[i % len(models)], stream=i % 2 == 0)
                )
            )
            for i in range(n, n + 16)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(200) == 16
        n += 16
        if len({p.name.rsplit("_", 1)[-1] for p in mp.glob("counter_*.db")}) >= workers:
            return n
        time.sleep(0.3)
    raise AssertionError(f"not every one of {workers} workers served: {sorted(mp.iterdir())}")


def matches_reference(url: str, mp: Path) -> bool:
    """A scrape equals prometheus_client's merge of the files (tried again if a background write fell between)."""
    for _ in range(5):
        ours = exposition(httpx.get(url + "/metrics", timeout=10).text)
        if same(ours, reference(mp)):
            return True
        time.sleep(0.2)
    return False


def test_metrics_from_two_workers_count_each_request_once(upstream: FakeOpenAI, tmp_path: Path) -> None:
    mp = tmp_path / "prom"
    mp.mkdir()
    cfg = basic_config(upstream.url, server={"data_dir": str(tmp_path)})
    gw = GatewayProcess(cfg, tmp_path, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(mp)}).start()
    try:
        # Rounds of concurrent requests until both workers have served some: the second worker may still be
        # importing when the first answers /healthz, and accept() spreads connections only once both listen.
        n = serve_until_every_worker_served(gw, mp, 2, ["gpt-4o-mini"])
        # both workers served (each writes its own value files) ...
        # ... and every scrape, whichever worker answers it, shows the whole server, each request once
        for _ in range(6):
            samples = scrape(gw.url)
            assert metric_sum(samples, "pointsman_requests_total") == n
            assert metric_sum(samples, "pointsman_requests_total", outcome="ok", team="search") == n
            assert (
                metric_sum(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="input")
                == upstream.prompt_tokens * n
            )
            assert metric_sum(samples, "gen_ai_client_operation_duration_seconds_count") == n
            assert metric_sum(samples, "gen_ai_server_time_to_first_token_seconds_count") == n / 2
            assert metric_sum(samples, "pointsman_in_flight_requests") == 0
            assert not [s for s in samples if "pid" in s[1]]  # gauges are combined, not split per process
    finally:
        gw.stop()
    rows = ledger_rows(tmp_path)
    assert sorted(r["request_id"] for r in rows) == sorted(f"w-{i}" for i in range(n))


def test_a_scrape_of_four_workers_equals_prometheus_clients_merge_of_their_files(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    mp = tmp_path / "prom"
    mp.mkdir()
    budget = {"scope": "team", "name": "search", "daily_usd": "100"}  # a mostrecent gauge besides livesum/max
    cfg = basic_config(upstream.url, accounting={"budgets": [budget]})
    gw = GatewayProcess(cfg, tmp_path, workers=4, env={"PROMETHEUS_MULTIPROC_DIR": str(mp)}).start(timeout=90)
    try:
        served = serve_until_every_worker_served(gw, mp, 4, ["gpt-4o-mini", "alias"])
        samples = scrape(gw.url)
        assert metric_sum(samples, "pointsman_requests_total") == served
        assert matches_reference(gw.url, mp)
    finally:
        gw.stop()


def test_series_that_appear_after_a_scrape_are_in_the_next_scrape_of_every_worker(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    mp = tmp_path / "prom"
    mp.mkdir()
    gw = GatewayProcess(
        basic_config(upstream.url), tmp_path, workers=4, env={"PROMETHEUS_MULTIPROC_DIR": str(mp)}
    )
    gw.start(timeout=90)
    try:
        first = serve_until_every_worker_served(gw, mp, 4, ["gpt-4o-mini"])
        for _ in range(8):  # fresh connections: the workers answering these scrapes parse every file once
            assert metric_sum(scrape(gw.url), "pointsman_requests_total") == first
        later = serve_until_every_worker_served(gw, mp, 4, ["fake-late", "alias"], prefix="late")
        for _ in range(8):
            samples = scrape(gw.url)
            assert metric_sum(samples, "pointsman_requests_total") == first + later
            assert metric_sum(samples, "pointsman_requests_total", requested_model="alias") > 0  # new series
            assert metric_sum(samples, "pointsman_requests_total", requested_model="other") > 0  # fake-late
        assert matches_reference(gw.url, mp)
    finally:
        gw.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_loses_no_ledger_record(
    slow_upstream: FakeOpenAI, tmp_path: Path, workers: int
) -> None:
    cfg = basic_config(slow_upstream.url, server={"data_dir": str(tmp_path), "graceful_timeout_s": 20})
    cfg["models"]["gpt-4o-mini-no_usage"] = {"backend": "up"}  # type: ignore[index]
    gw = GatewayProcess(cfg, tmp_path, workers=workers).start()
    done: dict[str, int] = {}
    models: dict[str, str] = {}
    stop = threading.Event()

    def client(worker: int) -> None:
        i = 0
        while not stop.is_set():
            rid = f"t{worker}-{i}"
            i += 1
            models[rid] = "gpt-4o-mini-no_usage" if i % 3 == 0 else "gpt-4o-mini"
            try:
                done[rid] = post(gw.url, rid, models[rid], stream=i % 2 == 0)
            except httpx.HTTPError:
                return  # the server stopped accepting

    threads = [threading.Thread(target=client, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while sum(1 for v in list(done.values()) if v == 200) < 40 and time.time() < deadline:
        time.sleep(0.05)
    gw.signal(signal.SIGTERM)  # with requests in flight (16 clients keep sending)
    time.sleep(0.3)
    stop.set()
    assert gw.wait(40) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a graceful shutdown
    for t in threads:
        t.join(30)
    gw.stop()
    answered = {rid for rid, status in done.items() if status == 200}
    assert len(answered) >= 40, len(answered)
    rows = ledger_rows(tmp_path)
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids)), "one record per request"
    missing = answered - set(ids)
    assert not missing, f"{len(missing)} answered requests missing from the ledger: {sorted(missing)[:5]}"
    est = [
        r for r in rows if r["request_id"] in answered and models[r["request_id"]] == "gpt-4o-mini-no_usage"
    ]
    assert est and all(
        r["estimated"] == 1 and r["input_tokens"] > 0 for r in est
    )  # counted in the background


def children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.update(int(c) for c in text)
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def test_workers_exit_when_their_supervisor_is_killed_and_the_port_is_free_again(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    cfg = basic_config(upstream.url, server={"data_dir": str(tmp_path)})
    gw = GatewayProcess(cfg, tmp_path, workers=2).start()
    assert gw.proc is not None
    deadline = time.time() + 60
    workers: set[int] = set()
    while time.time() < deadline:  # the supervisor may also run a resource-tracker child: keep the workers
        workers = {
            c for c in children(gw.proc.pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()
        }
        if len(workers) >= 2:
            break
        time.sleep(0.2)
    assert len(workers) >= 2, workers
    gw.signal(signal.SIGKILL)
    gw.wait(10)
    gw.stop()  # closes its log
    deadline = time.time() + 60
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.2)
    assert not [w for w in workers if alive(w)], "workers outlived their supervisor"
    again = GatewayProcess(cfg, tmp_path, workers=2, port=gw.port).start()
    try:
        assert httpx.get(again.url + "/readyz", timeout=10).status_code == 200
    finally:
        again.stop()
