"""Comparators: what a pair's two outputs are worth against each other.

Each comparator gives the candidate a value in 0..1 (or None when the pair does not apply to it):
- ``pass`` comparators give 0 or 1 and are reported as a pass rate with a Wilson interval;
- ``score`` comparators give a number in 0..1, reported as a mean with a t (or bootstrap) interval;
- ``judge`` gives 1 (win), 0.5 (tie, or the orders disagreed) or 0 (loss); the pair's detail records what the
  judge said in each order, from which ``judging`` measures the judge's reliability.
Single-sided comparators (``json_valid``, ``json_schema``) also score the primary as a ``baseline``.

CPU-heavy comparators (ROUGE-L on long outputs, schema validation) run in a worker thread so the event loop
that serves requests never waits on them. Model-backed comparators (``embedding_cosine``, ``llm_judge``) call
through a ``ModelCaller`` the hub provides: routed by the gateway itself and accounted as shadow spend.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
import re
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal, Protocol

import orjson

from routing.shadow import judging
from routing.shadow.config import (
    ComparatorConfig,
    CustomCompare,
    EmbeddingCosineCompare,
    ExactCompare,
    JsonEqualCompare,
    JsonSchemaCompare,
    JsonValidCompare,
    LabelCompare,
    LlmJudgeCompare,
    NormalizedCompare,
    RougeLCompare,
    TokenF1Compare,
    ToolCallsCompare,
)
from routing.shadow.extract import Output
from routing.shadow.text_metrics import cosine, normalize_text, rouge_l, token_f1
from wire.endpoints import CHAT, EMBEDDINGS, MESSAGES, RESPONSES

Kind = Literal["pass", "score", "judge"]


class ModelCaller(Protocol):
    async def __call__(self, endpoint: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Call a model through the gateway's routing; the parsed response, or raise."""


class PairInput:
    """One pair to compare: the request and both sides' outputs."""

    __slots__ = ("endpoint", "request", "primary", "candidate", "caller")

    endpoint: str
    request: dict[str, Any]
    primary: Output
    candidate: Output
    caller: ModelCaller | None
    """Model calls for ``embedding_cosine`` / ``llm_judge`` (attributed to the pair's route and key)."""

    def __init__(
        self,
        endpoint: str,
        request: dict[str, Any],
        primary: Output,
        candidate: Output,
        caller: ModelCaller | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.request = request
        self.primary = primary
        self.candidate = candidate
        self.caller = caller

    def call(self) -> ModelCaller:
        if self.caller is None:
            raise RuntimeError("this comparator needs model calls, and none are available here")
        return self.caller


class Scored:
    """A comparator's result for one pair."""

    __slots__ = ("value", "baseline", "detail")

    value: float | None
    """The candidate's score; None: not applicable to this pair."""
    baseline: float | None
    """Single-sided comparators: the primary's own score on the same check."""
    detail: str | None

    def __init__(self, value: float | None, baseline: float | None = None, detail: str | None = None) -> None:
        self.value = value
        self.baseline = baseline
        self.detail = detail


class Comparator:
    name: str
    kind: Kind = "score"
    heavy: bool = False
    """Run in a worker thread."""

    def __init__(self, name: str) -> None:
        self.name = name

    def compute(self, pair: PairInput) -> Scored:
        raise NotImplementedError

    async def score(self, pair: PairInput) -> Scored:
        if self.heavy:
            return await asyncio.to_thread(self.compute, pair)
        return self.compute(pair)


_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


_NO_JSON = object()


def parse_json(text: str) -> Any:
    """The JSON document in ``text`` (a surrounding ```json fence tolerated), or ``_NO_JSON``."""
    s = text.strip()
    m = _FENCE.match(s)
    if m:
        s = m.group(1).strip()
    if not s:
        return _NO_JSON
    try:
        return orjson.loads(s)
    except orjson.JSONDecodeError:
        return _NO_JSON


def json_equal(a: Any, b: Any) -> bool:
    """Semantic JSON equality: dict key order ignored, 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or (math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


_MISSING = object()


def dotted(doc: Any, path: str) -> Any:
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


def canonical_calls(out: Output) -> list[tuple[str, str]]:
    calls = []
    for tc in out.tool_calls:
        args = parse_json(tc.arguments) if tc.arguments.strip() else {}
        canon = tc.arguments if args is _NO_JSON else orjson.dumps(args, option=orjson.OPT_SORT_KEYS).decode()
        calls.append((tc.name, canon))
    return calls


def request_schema(request: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request asked for (Chat ``response_format``, Responses ``text.format``)."""
    rf = request.get("response_format")
    if isinstance(rf, dict) and rf.get("type") == "json_schema":
        js = rf.get("json_schema")
        if isinstance(js, dict) and isinstance(js.get("schema"), dict):
            schema: dict[str, Any] = js["schema"]
            return schema
    text = request.get("text")
    if isinstance(text, dict):
        fmt = text.get("format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
            fs: dict[str, Any] = fmt["schema"]
            return fs
    return None


def prompt_text(endpoint: str, request: dict[str, Any]) -> str:
    """The user-visible prompt of a request, flattened for a judge (a Messages API request: its system prompt,
    then its messages, like a chat's)."""
    if endpoint == CHAT or endpoint == MESSAGES:
        lines = []
        system = request.get("system") if endpoint == MESSAGES else None
        if system:
            text = (
                system
                if isinstance(system, str)
                else " ".join(p.get("text", "") for p in system if isinstance(p, dict))
            )
            lines.append(f"system: {text}")
        for m in request.get("messages") or []:
            if isinstance(m, dict):
                content = m.get("content")
                if isinstance(content, list):
                    content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
                lines.append(f"{m.get('role', 'user')}: {content if isinstance(content, str) else ''}")
        return "\n".join(lines)
    if endpoint == RESPONSES:
        inp = request.get("input")
        if isinstance(inp, str):
            return inp
        return orjson.dumps(inp).decode() if inp is not None else ""
    p = request.get("prompt")
    return p if isinstance(p, str) else orjson.dumps(p).decode()


def answer_text(out: Output) -> str:
    if out.tool_calls:
        calls = "\n".join(f"call {t.name}({t.arguments})" for t in out.tool_calls)
        return f"{out.text}\n{calls}".strip()
    return out.text


# -- comparators --------------------------------------------------------------------------------------------
class Exact(Comparator):
    kind: Kind = "pass"

    def compute(self, pair: PairInput) -> Scored:
        p, c = pair.primary, pair.candidate
        same = p.text == c.text and canonical_calls(p) == canonical_calls(c)
        return Scored(1.0 if same else 0.0)


class Normalized(Comparator):
    kind: Kind = "pass"

    def __init__(self, name: str, cfg: NormalizedCompare) -> None:
        super().__init__(name)
        self.lower = cfg.lowercase
        self.punct = cfg.strip_punctuation

    def compute(self, pair: PairInput) -> Scored:
        a = normalize_text(pair.primary.text, self.lower, self.punct)
        b = normalize_text(pair.candidate.text, self.lower, self.punct)
        return Scored(
            1.0 if a == b and canonical_calls(pair.primary) == canonical_calls(pair.candidate) else 0.0
        )


class JsonValid(Comparator):
    kind: Kind = "pass"

    def compute(self, pair: PairInput) -> Scored:
        c = parse_json(pair.candidate.text) is not _NO_JSON
        p = parse_json(pair.primary.text) is not _NO_JSON
        return Scored(float(c), float(p))


@lru_cache(maxsize=256)
def _validator_for(schema_json: bytes) -> Any:
    import jsonschema  # type: ignore[import-untyped]

    schema = orjson.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


class JsonSchema(Comparator):
    kind: Kind = "pass"
    heavy = True

    def __init__(self, name: str, cfg: JsonSchemaCompare) -> None:
        super().__init__(name)
        self.schema = cfg.schema_
        self._fixed = (
            orjson.dumps(cfg.schema_, option=orjson.OPT_SORT_KEYS) if cfg.schema_ is not None else None
        )

    def compute(self, pair: PairInput) -> Scored:
        key = self._fixed
        if key is None:
            schema = request_schema(pair.request)
            if schema is None:
                return Scored(None, detail="no schema")
            key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        validator = _validator_for(key)

        def ok(out: Output) -> float:
            doc = parse_json(out.text)
            return float(doc is not _NO_JSON and validator.is_valid(doc))

        return Scored(ok(pair.candidate), ok(pair.primary))


class JsonEqual(Comparator):
    kind: Kind = "pass"

    def __init__(self, name: str, cfg: JsonEqualCompare) -> None:
        super().__init__(name)
        self.fields = cfg.fields

    def compute(self, pair: PairInput) -> Scored:
        a = parse_json(pair.primary.text)
        if a is _NO_JSON:
            return Scored(None, detail="primary is not JSON")
        b = parse_json(pair.candidate.text)
        if b is _NO_JSON:
            return Scored(0.0, detail="candidate is not JSON")
        if self.fields is None:
            return Scored(float(json_equal(a, b)))
        for f in self.fields:
            x, y = dotted(a, f), dotted(b, f)
            if x is _MISSING and y is _MISSING:
                continue
            if x is _MISSING or y is _MISSING or not json_equal(x, y):
                return Scored(0.0, detail=f"field {f} differs")
        return Scored(1.0)


class Label(Comparator):
    kind: Kind = "pass"

    def __init__(self, name: str, cfg: LabelCompare) -> None:
        super().__init__(name)
        self.ignore_case = cfg.ignore_case
        self.rx = re.compile(cfg.pattern, re.IGNORECASE if cfg.ignore_case else 0)

    def label(self, text: str) -> str | None:
        m = self.rx.search(text)
        if m is None:
            return None
        v = m.group(1) if self.rx.groups else m.group(0)
        v = (v or "").strip()
        return v.casefold() if self.ignore_case else v

    def compute(self, pair: PairInput) -> Scored:
        a = self.label(pair.primary.text)
        if a is None:
            return Scored(None, detail="no label in primary")
        b = self.label(pair.candidate.text)
        return Scored(float(a == b), detail=f"{a} vs {b}")


class ToolCalls(Comparator):
    kind: Kind = "pass"

    def __init__(self, name: str, cfg: ToolCallsCompare) -> None:
        super().__init__(name)
        self.ordered = cfg.order_matters

    def compute(self, pair: PairInput) -> Scored:
        a, b = canonical_calls(pair.primary), canonical_calls(pair.candidate)
        if not a and not b:
            return Scored(None, detail="no tool calls")
        same = a == b if self.ordered else Counter(a) == Counter(b)
        return Scored(float(same))


class TokenF1(Comparator):
    def compute(self, pair: PairInput) -> Scored:
        return Scored(token_f1(answer_text(pair.primary), answer_text(pair.candidate)))


class RougeL(Comparator):
    heavy = True

    def __init__(self, name: str, cfg: RougeLCompare) -> None:
        super().__init__(name)
        self.max_tokens = cfg.max_tokens

    def compute(self, pair: PairInput) -> Scored:
        return Scored(rouge_l(answer_text(pair.primary), answer_text(pair.candidate), self.max_tokens))


class EmbeddingCosine(Comparator):
    def __init__(self, name: str, cfg: EmbeddingCosineCompare, timeout_s: float) -> None:
        super().__init__(name)
        self.model = cfg.model
        self.timeout_s = timeout_s

    async def score(self, pair: PairInput) -> Scored:
        if pair.endpoint == EMBEDDINGS:
            a, b = pair.primary.vector, pair.candidate.vector
            if a is None or b is None:
                return Scored(None, detail="no vectors")
            return Scored(cosine(a, b))
        ta, tb = answer_text(pair.primary), answer_text(pair.candidate)
        if not ta and not tb:
            return Scored(None, detail="both empty")
        if ta == tb:
            return Scored(1.0)
        if not ta or not tb:
            return Scored(0.0)
        doc = await pair.call()(EMBEDDINGS, {"model": self.model, "input": [ta, tb]}, self.timeout_s)
        data = sorted(doc.get("data") or [], key=lambda d: d.get("index", 0) if isinstance(d, dict) else 0)
        if len(data) < 2:
            raise ValueError("embeddings model returned fewer than two vectors")
        return Scored(cosine(data[0].get("embedding") or [], data[1].get("embedding") or []))


_JUDGE_SYSTEM = (
    "You are an impartial judge comparing two answers to the same request. Follow the rubric. Do not let the "
    "order of the answers or their length influence you. Reply with only a JSON object: "
    '{"winner": "1" | "2" | "tie", "reason": "<one sentence>"}.'
)
_WINNER = re.compile(r'winner"?\s*[:=]\s*"?\s*(1|2|tie)', re.IGNORECASE)


class JudgeUnparsed(ValueError):
    """A judge reply without a verdict (the pair's error then starts with ``judging.UNPARSED``)."""


def parse_verdict(text: str) -> str:
    """``1``, ``2`` or ``tie`` from a judge's reply; ``JudgeUnparsed`` when it gave none."""
    doc = parse_json(text)
    if isinstance(doc, dict):
        w = str(doc.get("winner", "")).strip().lower()
        if w in ("1", "2", "tie"):
            return w
    m = _WINNER.search(text)
    if m:
        return m.group(1).lower()
    raise JudgeUnparsed(f"judge gave no verdict: {text[:200]!r}")


class LlmJudge(Comparator):
    kind: Kind = "judge"

    def __init__(self, name: str, cfg: LlmJudgeCompare, timeout_s: float) -> None:
        super().__init__(name)
        self.cfg = cfg
        self.timeout_s = timeout_s

    def _messages(self, request: str, first: str, second: str) -> list[dict[str, str]]:
        cut = self.cfg.max_chars
        user = (
            f"[Rubric]\n{self.cfg.rubric}\n\n[Request]\n{request[:cut]}\n\n"
            f"[Answer 1]\n{first[:cut]}\n\n[Answer 2]\n{second[:cut]}\n\nWhich answer is better?"
        )
        return [{"role": "system", "content": _JUDGE_SYSTEM}, {"role": "user", "content": user}]

    async def _ask(self, caller: ModelCaller, request: str, first: str, second: str) -> str:
        body = {
            "model": self.cfg.model,
            "messages": self._messages(request, first, second),
            "temperature": 0,
            "max_tokens": self.cfg.max_tokens,
        }
        doc = await caller(CHAT, body, self.timeout_s)
        choices = doc.get("choices") or []
        msg = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
        content = msg.get("content") if isinstance(msg, dict) else None
        return parse_verdict(content if isinstance(content, str) else "")

    async def score(self, pair: PairInput) -> Scored:
        req = prompt_text(pair.endpoint, pair.request)
        p, c = answer_text(pair.primary), answer_text(pair.candidate)
        # Order A: primary first; order B: candidate first. The candidate wins only if preferred in both.
        caller = pair.call()
        a, b = await asyncio.gather(self._ask(caller, req, p, c), self._ask(caller, req, c, p))
        cand_a = {"2": 1, "1": -1, "tie": 0}[a]
        cand_b = {"1": 1, "2": -1, "tie": 0}[b]
        if cand_a > 0 and cand_b > 0:
            v = 1.0
        elif cand_a < 0 and cand_b < 0:
            v = 0.0
        else:
            v = 0.5
        return Scored(v, detail=judging.detail(a, b))


class Custom(Comparator):
    def __init__(self, name: str, cfg: CustomCompare) -> None:
        super().__init__(name)
        self.kind = cfg.kind
        self.options = dict(cfg.options)
        mod, _, attr = cfg.path.partition(":")
        fn = getattr(importlib.import_module(mod), attr)
        if not callable(fn):
            raise TypeError(f"{cfg.path} is not callable")
        self.fn: Callable[..., Any] = fn

    async def score(self, pair: PairInput) -> Scored:
        if inspect.iscoroutinefunction(self.fn):
            v = await self.fn(pair.primary, pair.candidate, pair.request, **self.options)
        else:
            v = await asyncio.to_thread(self.fn, pair.primary, pair.candidate, pair.request, **self.options)
        if v is None:
            return Scored(None)
        if isinstance(v, bool):
            return Scored(float(v))
        if isinstance(v, int | float) and math.isfinite(v):
            return Scored(min(1.0, max(0.0, float(v))))
        raise TypeError(f"custom scorer returned {type(v).__name__}, expected float, bool or None")


class BrokenComparator(Comparator):
    """Stands in for a comparator that could not be built (e.g. a custom import failed); every pair records
    the error instead of a score."""

    def __init__(self, name: str, kind: Kind, error: str) -> None:
        super().__init__(name)
        self.kind = kind
        self.error = error

    async def score(self, pair: PairInput) -> Scored:
        raise RuntimeError(self.error)


def build(cfg: ComparatorConfig, timeout_s: float) -> Comparator:
    name = cfg.key
    if isinstance(cfg, ExactCompare):
        return Exact(name)
    if isinstance(cfg, NormalizedCompare):
        return Normalized(name, cfg)
    if isinstance(cfg, JsonValidCompare):
        return JsonValid(name)
    if isinstance(cfg, JsonSchemaCompare):
        return JsonSchema(name, cfg)
    if isinstance(cfg, JsonEqualCompare):
        return JsonEqual(name, cfg)
    if isinstance(cfg, LabelCompare):
        return Label(name, cfg)
    if isinstance(cfg, ToolCallsCompare):
        return ToolCalls(name, cfg)
    if isinstance(cfg, TokenF1Compare):
        return TokenF1(name)
    if isinstance(cfg, RougeLCompare):
        return RougeL(name, cfg)
    if isinstance(cfg, EmbeddingCosineCompare):
        return EmbeddingCosine(name, cfg, timeout_s)
    if isinstance(cfg, LlmJudgeCompare):
        return LlmJudge(name, cfg, timeout_s)
    try:
        return Custom(name, cfg)
    except Exception as exc:  # import errors, attribute errors: reported per pair, never crash the gateway
        return BrokenComparator(name, cfg.kind, f"cannot load {cfg.path}: {exc}")


def kind_of(cfg: ComparatorConfig) -> Kind:
    if isinstance(cfg, LlmJudgeCompare):
        return "judge"
    if isinstance(cfg, CustomCompare):
        return cfg.kind
    if isinstance(cfg, TokenF1Compare | RougeLCompare | EmbeddingCosineCompare):
        return "score"
    return "pass"
