"""Strict configuration models for capture: the per-route/team/key policy and the ``capture:`` section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from wire.config_model import StrictModel

BUILTIN_DETECTORS = ("email", "phone", "credit_card", "api_key", "bearer_token", "ip")
"""Built-in detector names; ``builtin`` in a ``redact`` list stands for all of them."""
ALWAYS_ON = ("api_key", "bearer_token")
"""Secret detectors that run whatever a policy lists: credentials are never stored."""
_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"


class RedactPattern(StrictModel):
    """A configurable detector: every match of ``pattern`` is replaced by ``[PLACEHOLDER]``."""

    name: str = Field(pattern=_NAME)
    """Detector name; the placeholder defaults to its upper-case form (``employee_id`` -> ``[EMPLOYEE_ID]``)."""
    pattern: str = Field(min_length=1, max_length=2000)
    """A Python regular expression."""
    placeholder: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]{0,63}$")
    """Placeholder name without brackets (default: ``name`` upper-cased)."""
    ignore_case: bool = False
    """Match case-insensitively."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            rx = re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        if rx.match(""):
            raise ValueError("the pattern matches the empty string")
        return v

    @property
    def label(self) -> str:
        return self.placeholder or self.name.upper()


def _all_builtins() -> list[str | RedactPattern]:
    return ["builtin"]


class CapturePolicy(StrictModel):
    """Capture policy of a route, a team or a key (off unless given; only for teams approved for capture)."""

    sample_rate: float = Field(default=1.0, ge=0, le=1)
    """Fraction of matching requests captured (0 turns capture off, e.g. for one key on a capturing route)."""
    redact: list[str | RedactPattern] = Field(default_factory=_all_builtins, min_length=1)
    """Detectors applied before anything is written: built-in names (``email``, ``phone``, ``credit_card``,
    ``api_key``, ``bearer_token``, ``ip``), ``builtin`` for all of them, names of ``capture.patterns``, or inline
    patterns ``{name, pattern}``. ``api_key`` and ``bearer_token`` always run."""
    retain_days: float = Field(default=30.0, gt=0, le=3650)
    """Captured traces (and their feedback) are deleted this many days after the request."""

    @field_validator("redact")
    @classmethod
    def _names(cls, v: list[str | RedactPattern]) -> list[str | RedactPattern]:
        for item in v:
            if isinstance(item, str) and not re.match(_NAME, item):
                raise ValueError(f"invalid detector name {item!r}")
        return v


class CaptureSettings(StrictModel):
    """The ``capture:`` section: where captured data goes and how, plus team-wide policies."""

    patterns: dict[str, RedactPattern | str] = Field(default_factory=dict)
    """Named detectors that policies can list in ``redact`` by name (a regex, or ``{pattern, placeholder}``).
    Exports also re-apply every one of them."""
    teams: dict[str, CapturePolicy] = Field(default_factory=dict)
    """Policies by team, for every route (a key's own ``capture`` comes first, then its team's, then the
    route's). A team still has to be approved through the admin API."""
    path: str | None = None
    """SQLite file for traces, feedback and approvals (capture and third-party processing); defaults to ``<server.data_dir>/capture.sqlite3``."""
    queue_size: int = Field(default=10_000, ge=1, le=10_000_000)
    """Exchanges waiting for the background writer at most; beyond it they are dropped and counted, so capture
    never holds a request up."""
    batch_size: int = Field(default=500, ge=1, le=100_000)
    """Traces per write transaction at most."""
    flush_interval_s: float = Field(default=0.5, gt=0, le=60)
    """The writer wakes at least this often."""
    max_trace_bytes: int = Field(default=1024 * 1024, ge=1024)
    """A redacted trace larger than this (serialized) is not stored (counted as ``too_large``)."""
    queue: Literal["local", "redis"] = "local"
    """``local``: this process writes its SQLite file. ``redis`` (needs ``redis.url``): redacted traces go onto a
    Redis stream shared by every replica; replicas with ``sink: true`` drain it into their file."""
    sink: bool = True
    """With ``queue: redis``: drain the shared stream into this replica's SQLite file."""
    stream_maxlen: int = Field(default=1_000_000, ge=1000)
    """With ``queue: redis``: approximate cap on the stream's length (oldest entries are trimmed)."""
    sink_group: str = Field(default="sink", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    """With ``queue: redis``: the consumer group this sink reads with. Sinks sharing a group split the stream;
    a sink with a group of its own gets every trace."""
    claim_idle_s: float = Field(default=60.0, gt=0, le=86_400)
    """With ``queue: redis``: entries another sink read but did not acknowledge for this long are taken over."""
    retention_interval_s: float = Field(default=3600.0, gt=0, le=86_400 * 7)
    """How often expired traces and feedback are deleted (also on demand: ``POST /admin/capture/purge``)."""
    approval_refresh_s: float = Field(default=1.0, gt=0, le=3600)
    """How often a worker re-reads team approvals made elsewhere (other workers, other replicas)."""
    default_retain_days: float = Field(default=30.0, gt=0, le=3650)
    """Retention of feedback on requests that were not captured."""
    feedback_metrics: list[str] | None = None
    """Feedback metric names accepted; None accepts any (metric labels beyond 32 names become ``other``)."""
    feedback_wait_s: float = Field(default=2.0, ge=0, le=30)
    """How long ``POST /v1/feedback`` waits for the request's ledger record to be written."""

    @field_validator("patterns")
    @classmethod
    def _pattern_names(cls, v: dict[str, RedactPattern | str]) -> dict[str, RedactPattern | str]:
        for name in v:
            if not re.match(_NAME, name):
                raise ValueError(f"invalid pattern name {name!r}")
            if name in BUILTIN_DETECTORS or name == "builtin":
                raise ValueError(f"pattern name {name!r} is a built-in detector")
        return v

    @field_validator("feedback_metrics")
    @classmethod
    def _metric_names(cls, v: list[str] | None) -> list[str] | None:
        for name in v or ():
            if not METRIC_NAME.match(name):
                raise ValueError(f"invalid metric name {name!r}")
        return v

    @model_validator(mode="after")
    def _known_detectors(self) -> CaptureSettings:
        for team, pol in self.teams.items():
            unknown = unknown_detectors(pol, self)
            if unknown:
                raise ValueError(f"teams.{team}.redact: unknown detectors {unknown}")
        return self

    def store_path(self, data_dir: str) -> str:
        """The capture store's SQLite file (``path``, else ``<data_dir>/capture.sqlite3``); embedded approvals of
        every purpose live in it too."""
        return self.path or str(Path(data_dir) / "capture.sqlite3")

    def named_patterns(self) -> dict[str, RedactPattern]:
        out: dict[str, RedactPattern] = {}
        for name, p in self.patterns.items():
            out[name] = p if isinstance(p, RedactPattern) else RedactPattern(name=name, pattern=p)
        return out


METRIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")


def unknown_detectors(policy: CapturePolicy, settings: CaptureSettings) -> list[str]:
    """Names in ``policy.redact`` that are neither built-in nor in ``settings.patterns``."""
    known = {*BUILTIN_DETECTORS, "builtin", *settings.patterns}
    return sorted(n for n in policy.redact if isinstance(n, str) and n not in known)
