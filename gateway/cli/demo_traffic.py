"""The demo's traffic: an application using the official OpenAI SDK against the gateway, as a team would.

Requests are tagged with their task (``X-Pointsman-Task``) and mix chat (some streamed), the Responses API and
embeddings, at a steady rate from worker threads. A request is sent only when a worker is free to send it at
once: when the gateway answers slower than the rate needs, ticks are skipped (and counted) instead of queued, so
nothing is left to send after the demo stops. The SDK is the ``demo`` extra (``pip install 'pointsman[demo]'``).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

SUBJECTS = (
    "a customer who was charged twice for the annual plan",
    "a login loop on the mobile app after the last update",
    "an export to CSV that drops the last column",
    "a delivery that arrived late and damaged",
    "a request to move a team to the enterprise tier",
    "slow search results since the weekend migration",
    "a password reset email that never arrives",
    "a refund for an unused seat on the workspace",
    "an invoice that shows the wrong billing address",
    "a webhook that fires twice for every order",
    "a dashboard chart that shows yesterday's numbers",
    "an API key that stopped working after rotation",
)
"""What the demo's requests are about (the simulated models answer from these words)."""


@dataclass
class TrafficCounts:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    """Ticks with every worker still busy: not sent."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, ok: bool) -> None:
        with self.lock:
            self.sent += 1
            if ok:
                self.ok += 1
            else:
                self.failed += 1


class Traffic:
    """Sends ``rps`` requests a second through ``client`` until ``stop`` is set.

    ``workers`` defaults to enough threads for the rate at ``LATENCY_S`` per answer (at least 4).
    """

    LATENCY_S = 2.0
    """The slowest answer the default worker count keeps up with (the simulated models take about 1 s)."""

    def __init__(self, base_url: str, api_key: str, rps: float, workers: int | None = None) -> None:
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30.0)
        self.rps = rps
        self.workers = workers or max(4, min(64, math.ceil(rps * self.LATENCY_S)))
        self.counts = TrafficCounts()

    def one(self, i: int) -> None:
        """Request number ``i``: its kind and task follow from ``i`` (the run is the same every time)."""
        from openai import OpenAIError

        subject = SUBJECTS[i % len(SUBJECTS)]
        kind = i % 10
        try:
            if kind < 6:
                self._chat("support", f"Reply to {subject} and say what happens next.", stream=kind == 5)
            elif kind < 8:
                self._chat("summarize", f"Summarize this ticket in two sentences: {subject}.", stream=False)
            elif kind == 8:
                self.client.responses.create(
                    model="gpt-4o-mini",
                    input=f"Draft a status update about {subject}.",
                    extra_headers={"X-Pointsman-Task": "draft"},
                )
            else:
                self.client.embeddings.create(
                    model="text-embedding-3-small",
                    input=[subject],
                    extra_headers={"X-Pointsman-Task": "search"},
                )
        except OpenAIError:
            self.counts.add(False)
        else:
            self.counts.add(True)

    def _chat(self, task: str, prompt: str, stream: bool) -> None:
        messages: Any = [{"role": "user", "content": prompt}]
        headers = {"X-Pointsman-Task": task}
        if stream:
            chunks = self.client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=headers,
            )
            for _ in chunks:
                pass
        else:
            self.client.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers=headers)

    def run(self, stop: threading.Event) -> None:
        """Send until ``stop`` is set; returns when the requests in flight have ended."""
        gap = 1.0 / self.rps
        next_at = time.monotonic()
        free = threading.BoundedSemaphore(self.workers)

        def send(i: int) -> None:
            try:
                self.one(i)
            finally:
                free.release()

        with ThreadPoolExecutor(self.workers, thread_name_prefix="demo-traffic") as pool:
            for i in itertools.count():
                if stop.wait(max(0.0, next_at - time.monotonic())):
                    break
                next_at += gap
                if not free.acquire(blocking=False):
                    with self.counts.lock:
                        self.counts.skipped += 1
                    continue
                pool.submit(send, i)
        self.client.close()
