"""Strict configuration models for a route's ``shadow:`` (with its ``promotion:``) and ``promote_when:``.

Comparators are a list under ``shadow.compare``; each entry is a mapping with a ``type`` (or just the type name
as a string: ``compare: [exact, json_valid]``). Names default to the type and must be unique per route; the
report, ``promote_when.scores`` and promotion guards refer to comparators by name.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from wire.config_model import StrictModel as _Strict


class StrictModel(_Strict):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


REPORT_MAX_PAIRS = 20_000
"""The default ``shadow.report_max_pairs`` (also the cap for a route without a shadow section)."""
_NAME = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class _Comparator(StrictModel):
    name: str | None = _NAME
    """Name in the report and in ``promote_when.scores`` (default: the type)."""

    @property
    def key(self) -> str:
        return self.name or str(getattr(self, "type"))  # noqa: B009 - every subclass declares ``type``


class ExactCompare(_Comparator):
    """Pass when the two outputs are identical strings (tool calls compared as JSON)."""

    type: Literal["exact"]
    """Comparator kind."""


class NormalizedCompare(_Comparator):
    """Pass when the outputs are equal after normalisation (Unicode NFKC, case, whitespace, punctuation)."""

    type: Literal["normalized"]
    """Comparator kind."""
    lowercase: bool = True
    """Compare case-insensitively."""
    strip_punctuation: bool = True
    """Drop punctuation characters before comparing."""


class JsonValidCompare(_Comparator):
    """Pass when the candidate's output parses as JSON (```json fences tolerated). The primary's rate is
    reported alongside as the baseline."""

    type: Literal["json_valid"]
    """Comparator kind."""


class JsonSchemaCompare(_Comparator):
    """Pass when the candidate's output is JSON valid against a schema: the configured one, else the request's
    ``response_format.json_schema.schema`` (Responses API: ``text.format.schema``). Requests with neither are
    not scored."""

    type: Literal["json_schema"]
    """Comparator kind."""
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    """A JSON Schema (draft 2020-12); None uses the request's ``response_format`` schema."""


class JsonEqualCompare(_Comparator):
    """Pass when both outputs parse as JSON and are semantically equal (key order and number spelling ignored),
    optionally only on chosen fields (dotted paths, e.g. ``invoice.total``)."""

    type: Literal["json_equal"]
    """Comparator kind."""
    fields: list[str] | None = None
    """Dotted paths to compare; None compares whole documents. A path missing on both sides counts as equal."""


class LabelCompare(_Comparator):
    """Extract a class label from each output with a regex (group 1 if present, else the whole match) and pass
    when the labels agree. A candidate with no label fails; a primary with no label leaves the pair unscored."""

    type: Literal["label"]
    """Comparator kind."""
    pattern: str = Field(min_length=1, max_length=1000)
    """Regular expression (Python syntax), searched in the output."""
    ignore_case: bool = True
    """Compare labels case-insensitively (the regex itself too)."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from None
        return v


class ToolCallsCompare(_Comparator):
    """Pass when both sides call the same functions with equal arguments (compared as parsed JSON)."""

    type: Literal["tool_calls"]
    """Comparator kind."""
    order_matters: bool = False
    """Require the calls in the same order (default: compared as a multiset)."""


class TokenF1Compare(_Comparator):
    """Token-overlap F1 (SQuAD-style: lowercased words, punctuation and articles dropped), 0..1."""

    type: Literal["token_f1"]
    """Comparator kind."""


class RougeLCompare(_Comparator):
    """ROUGE-L F-measure (longest common subsequence of lowercased word tokens), 0..1."""

    type: Literal["rouge_l"]
    """Comparator kind."""
    max_tokens: int = Field(default=2000, ge=10, le=20_000)
    """Outputs are cut to this many tokens before the O(n*m) LCS (bounds the CPU a pair costs)."""


class EmbeddingCosineCompare(_Comparator):
    """Cosine similarity of the two outputs' embeddings, 0..1 (negative clipped to 0). The embeddings model is
    called through the gateway's own routing, accounted as shadow spend. For ``/v1/embeddings`` requests the
    returned vectors are compared directly."""

    type: Literal["embedding_cosine"]
    """Comparator kind."""
    model: str = Field(min_length=1)
    """Embeddings model name (routed like any request)."""


_DEFAULT_RUBRIC = (
    "Judge which answer better fulfils the user's request: correctness first, then completeness, then "
    "following the requested format. Ignore length unless it hurts the answer."
)


class LlmJudgeCompare(_Comparator):
    """A judge model compares the two answers with a rubric, twice with the answers swapped (cancelling
    position bias): candidate preferred both times = win, primary both times = loss, otherwise tie."""

    type: Literal["llm_judge"]
    """Comparator kind."""
    model: str = Field(min_length=1)
    """Judge model name (routed like any request)."""
    rubric: str = Field(default=_DEFAULT_RUBRIC, min_length=1, max_length=20_000)
    """What the judge should value."""
    max_tokens: int = Field(default=256, ge=1, le=8192)
    """Completion budget per judge call."""
    max_chars: int = Field(default=20_000, ge=100, le=1_000_000)
    """Prompt and answers are cut to this many characters each in the judge prompt."""
    human_metric: str | None = Field(default=None, min_length=1, max_length=64)
    """A ``/v1/feedback`` metric carrying people's preference on the same requests: a number above 0.5 (or
    true) means the candidate's answer is better, below 0.5 (or false) the primary's, 0.5 a tie. The report then
    gives the judge's agreement with people (Cohen's kappa)."""


class CustomCompare(_Comparator):
    """A scorer by Python import path: ``package.module:function``, called as
    ``function(primary: Output, candidate: Output, request: dict, **options)`` (sync or async) returning a float
    in 0..1, a bool, or None (not applicable)."""

    type: Literal["custom"]
    """Comparator kind."""
    path: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")
    """Import path ``module:attribute``."""
    kind: Literal["pass", "score"] = "score"
    """``pass`` (a rate with a Wilson interval) or ``score`` (a mean)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments passed to the function."""


ComparatorConfig = Annotated[
    ExactCompare
    | NormalizedCompare
    | JsonValidCompare
    | JsonSchemaCompare
    | JsonEqualCompare
    | LabelCompare
    | ToolCallsCompare
    | TokenF1Compare
    | RougeLCompare
    | EmbeddingCosineCompare
    | LlmJudgeCompare
    | CustomCompare,
    Field(discriminator="type"),
]


class GuardConfig(StrictModel):
    """When a promotion rolls back. Judged per step over requests the candidate served at that step (and, for
    scores, reverse-shadow pairs of that step)."""

    max_error_rate: float | None = Field(default=0.05, ge=0, le=1)
    """Candidate-served requests that failed (5xx, timeouts, broken responses) over all it served."""
    max_p95_latency_s: float | None = Field(default=None, gt=0)
    """Absolute cap on the candidate's p95 total latency."""
    max_p95_latency_ratio: float | None = Field(default=None, gt=0)
    """Cap on candidate p95 / baseline p95 latency, both measured on live traffic during the step."""
    min_scores: dict[str, float] = Field(default_factory=dict)
    """Comparator name -> lowest acceptable mean (pass rate for pass/fail comparators) on the step's reverse-shadow
    pairs; a step does not advance before ``min_pairs`` of them were judged."""
    min_requests: int = Field(default=20, ge=1)
    """Candidate-served requests needed at a step before guards judge it and before it may advance."""
    min_pairs: int = Field(default=5, ge=1)
    """Reverse-shadow pairs needed before ``min_scores`` judges."""


class PromotionConfig(StrictModel):
    """How ``POST /admin/routes/{name}/promote`` moves traffic to the candidate."""

    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0], min_length=1, max_length=20)
    """Candidate's share of the route's traffic at each step, in percent, increasing, ending at 100."""
    dwell_s: float | None = Field(default=600.0, gt=0)
    """A step may advance after this long (or after ``dwell_requests``, whichever comes first), once the
    candidate served ``guards.min_requests`` at it."""
    dwell_requests: int | None = Field(default=None, ge=1)
    """Candidate-served requests after which a step may advance (besides ``dwell_s``)."""
    reverse_sample_rate: float = Field(default=0.05, ge=0, le=1)
    """Fraction of candidate-served requests also sent to the baseline (reverse shadow) to keep measuring."""
    guards: GuardConfig = Field(default_factory=GuardConfig)
    """Automatic rollback conditions."""
    require_ready: bool = True
    """Refuse to start unless the shadow verdict is ``ready`` (``force`` overrides)."""
    check_interval_s: float = Field(default=1.0, gt=0, le=300)
    """How often guards and dwell are evaluated."""

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[float]) -> list[float]:
        if any(s <= 0 or s > 100 for s in v):
            raise ValueError("steps are percentages in (0, 100]")
        if any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("steps must increase")
        if v[-1] != 100:
            raise ValueError("the last step must be 100")
        return v

    @model_validator(mode="after")
    def _dwell(self) -> PromotionConfig:
        if self.dwell_s is None and self.dwell_requests is None:
            raise ValueError("give dwell_s, dwell_requests or both")
        if self.guards.min_scores and self.reverse_sample_rate == 0:
            raise ValueError(
                "guards.min_scores are judged on reverse-shadow pairs: reverse_sample_rate must be > 0"
            )
        return self


class ShadowConfig(StrictModel):
    """A shadow test: sampled requests of this route are also sent to a candidate model, off the request path."""

    model: str = Field(min_length=1)
    """Candidate model name (from ``models``)."""
    sample_rate: float = Field(default=0.1, ge=0, le=1)
    """Fraction of the route's requests shadowed (decided by a hash of the request id)."""
    max_concurrency: int = Field(default=8, ge=1, le=10_000)
    """Shadow calls in flight at once for this route."""
    queue_size: int = Field(default=32, ge=0, le=100_000)
    """Sampled shadows waiting for a free slot; beyond it they are dropped (and counted)."""
    max_queue_wait_s: float = Field(default=5.0, gt=0, le=3600)
    """A queued shadow older than this is dropped instead of started (its pair would no longer be live)."""
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    """Total time for a shadow call (default: the route's ``timeout_s``, else ``server.request_timeout_s``)."""
    budget_usd_per_day: Decimal | None = Field(default=None, ge=0)
    """Shadow spend (candidate, judge and embedding calls) per UTC day; when reached, shadows are dropped
    (reason ``budget``) until the next day. None: unlimited."""
    compare: list[ComparatorConfig] = Field(default_factory=list)
    """Comparators run on every completed pair."""
    comparator_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    """Time allowed to each comparator per pair (judge and embedding calls included)."""
    capture: bool = False
    """Store raw prompts and outputs with the pair, where the key's team also allows data capture."""
    ci_method: Literal["t", "bootstrap"] = "t"
    """Confidence intervals for means: Student's t, or a percentile bootstrap (2,000 resamples, seeded)."""
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    """The guarded ramp used by ``promote``."""
    report_max_pairs: int = Field(default=REPORT_MAX_PAIRS, ge=10, le=10_000_000)
    """The most pairs the report (page, JSON, ``pointsman_shadow_*`` gauges, the check before a promotion)
    reads for this route. When more fall in the report's window, it covers the latest ``report_max_pairs`` of
    them (the window then starts at the oldest of those, and says so), so that a report costs the same after a
    week of traffic as after an hour: each pair read takes ~3 KB of memory and ~40 us of CPU while the report is
    built (every ``gauge_interval`` on the leader replica). A larger value lets the verdict see more pairs at that
    cost; see docs/shadow.md for what a window that moves means for the ``anytime`` guarantee."""

    @field_validator("compare", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"type": c} if isinstance(c, str) else c for c in v]
        return v

    @field_validator("compare")
    @classmethod
    def _unique(cls, v: list[Any]) -> list[Any]:
        names = [c.key for c in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate comparator names {dup}: give each a distinct name")
        return v

    @model_validator(mode="after")
    def _guards_known(self) -> ShadowConfig:
        names = {c.key for c in self.compare}
        unknown = sorted(set(self.promotion.guards.min_scores) - names)
        if unknown:
            raise ValueError(f"promotion.guards.min_scores names unknown comparators {unknown}")
        return self

    def comparator_names(self) -> list[str]:
        return [c.key for c in self.compare]


class ScoreThreshold(StrictModel):
    """A bound on one comparator's result (mean, pass rate, or judge score over order-consistent pairs where
    win=1, tie=0.5, loss=0), and/or a non-inferiority margin against the primary on the same requests."""

    min: float | None = None
    """Lowest acceptable value."""
    max: float | None = None
    """Highest acceptable value."""
    margin: float | None = Field(default=None, ge=0, le=1)
    """Paired non-inferiority against the primary (comparators that score both sides: ``json_valid``,
    ``json_schema``): the candidate's pass rate minus the primary's, on the same requests, must be shown above
    ``-margin``."""

    @model_validator(mode="after")
    def _some(self) -> ScoreThreshold:
        if self.min is None and self.max is None and self.margin is None:
            raise ValueError("give min, max, margin or a combination")
        return self


class PromoteWhen(StrictModel):
    """Criteria for the shadow verdict: ``ready``, ``not_ready`` (naming failing criteria) or
    ``insufficient_data`` (with how many more pairs are needed)."""

    min_pairs: int = Field(default=100, ge=1)
    """Quality pairs (both sides answered, primary not a fallback) needed before any verdict but
    ``insufficient_data``."""
    decide_on: Literal["anytime", "ci", "estimate"] = "anytime"
    """``anytime``: a criterion passes only when an anytime-valid test shows it (a betting test for means and
    rates, a confidence sequence for p95 latencies), so however often the verdict is looked at, the chance it ever
    says ``ready`` wrongly is at most ``alpha``; it fails when the estimate misses the bound and is undecided in
    between. ``ci``: the same with a fixed-horizon 95% interval per criterion (valid for one look at a planned
    sample size only; repeated looks inflate the error); ``estimate``: the point estimate decides."""
    alpha: float = Field(default=0.05, gt=0, le=0.5)
    """With ``decide_on: anytime``: the largest chance that the verdict is ever ``ready`` for a candidate that
    misses a criterion, over all looks. Every criterion is tested at ``alpha``: ``ready`` needs all of them, so a
    wrong ``ready`` needs the test of a missed criterion to be wrong (an intersection-union test; no split)."""
    scores: dict[str, ScoreThreshold] = Field(default_factory=dict)
    """Comparator name -> bound on its mean / pass rate."""
    judge_margin: float | None = Field(default=0.05, ge=0, le=0.5)
    """Non-inferiority margin for ``llm_judge`` comparators: the candidate's judge score over the pairs the judge
    judged the same way in both orders (win=1, tie=0.5, loss=0; order-inconsistent pairs carry no preference and
    are left out) must be shown above 0.5 - margin. None: judges are not criteria."""
    judge_min_consistency: float = Field(default=0.6, ge=0, le=1)
    """Judge reliability floor: the share of pairs on which the order-swapped judge agrees with itself. A judge
    criterion's judge below it (or one that always gives the same answer) makes the verdict
    ``judge_unreliable``."""
    judge_max_parse_failure_rate: float | None = Field(default=0.2, ge=0, le=1)
    """Judge reliability: the largest share of pairs whose judge reply held no verdict. None: not checked."""
    max_candidate_error_rate: float | None = Field(default=0.05, ge=0, le=1)
    """Shadow calls that failed over all sent."""
    max_latency_p95_ratio: float | None = Field(default=None, gt=0)
    """Candidate p95 total latency / primary p95."""
    max_ttft_p95_ratio: float | None = Field(default=None, gt=0)
    """Candidate p95 time to first token / primary p95 (streamed pairs)."""
    max_cost_ratio: float | None = Field(default=None, ge=0)
    """Candidate cost per request / primary cost per request."""
    window_s: float | None = Field(default=None, gt=0)
    """Only pairs from the last ``window_s`` seconds count (default: the report's window)."""


def check_route_shadow(shadow: ShadowConfig | None, promote_when: PromoteWhen | None) -> None:
    """Cross-checks between a route's ``shadow`` and ``promote_when`` (raises ValueError)."""
    if promote_when is None:
        return
    if shadow is None:
        raise ValueError("promote_when needs a shadow section")
    if promote_when.min_pairs > shadow.report_max_pairs:
        raise ValueError(
            f"promote_when.min_pairs ({promote_when.min_pairs}) is more than shadow.report_max_pairs "
            f"({shadow.report_max_pairs}) lets the report read: the verdict could never be reached"
        )
    unknown = sorted(set(promote_when.scores) - set(shadow.comparator_names()))
    if unknown:
        raise ValueError(f"promote_when.scores names unknown comparators {unknown}")
    two_sided = {c.key for c in shadow.compare if isinstance(c, JsonValidCompare | JsonSchemaCompare)}
    one_sided = sorted(
        n for n, th in promote_when.scores.items() if th.margin is not None and n not in two_sided
    )
    if one_sided:
        raise ValueError(
            f"promote_when.scores {one_sided}: a margin needs a comparator that scores the primary "
            "too (json_valid, json_schema)"
        )
