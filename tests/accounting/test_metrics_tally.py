"""The request path's observations, added up in the ``Tally`` and handed over at a scrape, read exactly as the same
observations made directly on prometheus_client's metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from accounting.metrics import Tally

VALUES = [0.0, 0.0001, 0.00025, 0.0003, 0.1, 0.1000001, 5.0, 1e9, -1.0]


def metrics() -> tuple[CollectorRegistry, Counter, Gauge, Histogram]:
    r = CollectorRegistry()
    c = Counter("c", "c", ["a"], registry=r)
    g = Gauge("g", "g", ["a"], registry=r)
    h = Histogram("h", "h", ["a"], buckets=(0.0001, 0.00025, 0.1, 5.0), registry=r)
    return r, c, g, h


def without_created(text: bytes) -> bytes:
    return b"\n".join(line for line in text.splitlines() if b"_created" not in line)


def test_a_tally_flushed_reads_as_direct_observations() -> None:
    direct, c1, g1, h1 = metrics()
    tallied, c2, g2, h2 = metrics()
    tally = Tally()
    for i, v in enumerate(VALUES):
        label = "x" if i % 2 else "y"
        c1.labels(label).inc(abs(v))
        tally.inc(c2.labels(label), abs(v))
        g1.labels(label).inc(1 if i % 3 else -1)
        tally.inc(g2.labels(label), 1 if i % 3 else -1)
        h1.labels(label).observe(v)
        tally.observe(h2.labels(label), v)
    assert without_created(generate_latest(tallied)) != without_created(generate_latest(direct))  # not yet
    tally.flush()
    assert without_created(generate_latest(tallied)) == without_created(generate_latest(direct))


def test_a_tally_that_writes_through_needs_no_flush() -> None:
    direct, c1, _, h1 = metrics()
    through, c2, _, h2 = metrics()
    tally = Tally(through=True)
    for v in VALUES[:-1]:
        c1.labels("x").inc(v)
        tally.inc(c2.labels("x"), v)
        h1.labels("x").observe(v)
        tally.observe(h2.labels("x"), v)
    assert without_created(generate_latest(through)) == without_created(generate_latest(direct))


def test_a_gauge_set_through_the_tally_shows_its_last_value_after_a_flush() -> None:
    direct, _, g1, _ = metrics()
    tallied, _, g2, _ = metrics()
    tally = Tally()
    for i, v in enumerate(VALUES):
        label = "x" if i % 2 else "y"
        g1.labels(label).set(v)
        tally.set(g2.labels(label), v)
    tally.flush()
    assert without_created(generate_latest(tallied)) == without_created(generate_latest(direct))
