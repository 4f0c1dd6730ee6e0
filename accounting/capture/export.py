"""Dataset export: captured traces (and feedback, and judged shadow pairs) as OpenAI fine-tuning files.

Files written into the output directory:

* ``train.jsonl`` / ``test.jsonl`` — supervised examples in the chat format OpenAI fine-tuning takes:
  ``{"messages": [...], "tools": [...], "parallel_tool_calls": ...}``, ending with the assistant answer. The answer
  is the latest demonstration (corrected answer) given as feedback when there is one, else what the model said.
  With ``from_shadow_wins`` the examples come from shadow pairs an ``llm_judge`` decided, with the winner's
  answer.
* ``preferences_train.jsonl`` / ``preferences_test.jsonl`` — preference pairs in OpenAI's preference (DPO)
  format, ``{"input": {"messages", "tools"}, "preferred_output": [...], "non_preferred_output": [...]}``, wherever
  two answers to one prompt exist: a demonstration over the original answer, and the judged winner of a shadow
  pair over the loser.
* ``manifest.json`` — counts, filters, redaction statistics (at capture and at export), time range, the split
  method, and each file's line count and SHA-256.

Every example is redacted again at export with every built-in detector and configured pattern (defence in
depth: a pattern added after capture still applies), deduplicated (an identical example is written once), and
assigned to the held-out split by a stable hash of its prompt (``sha256(salt + prompt)``), so the split does not
change from run to run and the same prompt never lands on both sides.
"""

from __future__ import annotations

import hashlib
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from accounting.capture.chat_format import answer_message, clean_message, to_chat, validate_messages
from accounting.capture.redact import Redactor, merge_counts
from accounting.capture.store import CaptureStore, Feedback
from accounting.capture.trace import Trace
from accounting.spend_report import in_range, parse_time
from wire.endpoints import CHAT

FORMAT = "openai-chat-finetune"
VERSION = 1
FILES = ("train.jsonl", "test.jsonl", "preferences_train.jsonl", "preferences_test.jsonl")
_COND = re.compile(
    r"^\s*([A-Za-z][A-Za-z0-9_.:-]{0,63})\s*(>=|<=|==|!=|>|<)\s*(true|false|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$"
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class FeedbackCondition:
    """``metric>=x``: the request's latest boolean/number feedback on ``metric`` must satisfy the comparison."""

    metric: str
    op: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> FeedbackCondition:
        m = _COND.match(text)
        if m is None:
            raise ValueError(
                f"invalid feedback condition {text!r}; expected e.g. 'helpful>=1' or 'score>0.8'"
            )
        raw = m.group(3)
        value = 1.0 if raw == "true" else 0.0 if raw == "false" else float(raw)
        return cls(m.group(1), m.group(2), value)

    def holds(self, feedback: Iterable[Feedback]) -> bool:
        latest = None
        for fb in feedback:
            if fb.metric == self.metric and fb.value is not None:
                latest = fb.value
        return latest is not None and _OPS[self.op](latest, self.threshold)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"


@dataclass(frozen=True, slots=True)
class JudgedPair:
    """A shadow pair with both answers and an ``llm_judge`` verdict (from the shadow-testing store)."""

    request_id: str
    ts: float
    winner: str
    """``primary``, ``candidate`` or ``tie``."""
    primary_answer: dict[str, Any] | None
    """The primary's answer as one assistant message, or None when it was not stored."""
    candidate_answer: dict[str, Any] | None
    request: dict[str, Any] | None = None
    """The request body, when the pair stored it (else the captured trace's is used); redacted at export."""
    endpoint: str = CHAT
    """The endpoint ``request`` was sent to."""
    route: str | None = None
    task: str | None = None
    team: str | None = None
    primary_model: str | None = None
    candidate_model: str | None = None
    key: str | None = None
    """The client key of the request (third-party consent may be decided per key)."""


class PairSource(Protocol):
    """Judged shadow pairs in a time window ``[since, until)`` (implemented over the shadow store by the
    gateway, which reads them a page at a time: an export never holds its window's pairs at once)."""

    def judged_pairs(
        self, since: float | None, until: float | None, task: str | None, route: str | None
    ) -> Iterable[JudgedPair]:
        """The window's judged pairs, oldest first."""
        ...

    def judged_pairs_of(
        self,
        request_ids: Sequence[str],
        since: float | None,
        until: float | None,
        task: str | None,
        route: str | None,
    ) -> dict[str, JudgedPair]:
        """The judged pairs of these requests that ``judged_pairs`` would give, by request id."""
        ...


def in_window(
    p: JudgedPair, since: float | None, until: float | None, task: str | None, route: str | None
) -> bool:
    """Whether ``p`` is one of the pairs ``PairSource.judged_pairs(since, until, task, route)`` gives."""
    if since is not None and p.ts < since or until is not None and p.ts >= until:
        return False
    return (task is None or p.task == task) and (route is None or p.route == route)


class StaticPairs:
    """A ``PairSource`` over pairs fetched beforehand."""

    def __init__(self, pairs: Iterable[JudgedPair]) -> None:
        self.pairs = list(pairs)

    def judged_pairs(
        self, since: float | None, until: float | None, task: str | None, route: str | None
    ) -> Iterable[JudgedPair]:
        return (p for p in self.pairs if in_window(p, since, until, task, route))

    def judged_pairs_of(
        self,
        request_ids: Sequence[str],
        since: float | None,
        until: float | None,
        task: str | None,
        route: str | None,
    ) -> dict[str, JudgedPair]:
        wanted = set(request_ids)
        return {
            p.request_id: p
            for p in self.pairs
            if p.request_id in wanted and in_window(p, since, until, task, route)
        }


@dataclass(frozen=True, slots=True)
class ExportFilters:
    task: str | None = None
    since: float | None = None
    until: float | None = None
    team: str | None = None
    route: str | None = None
    min_feedback: tuple[FeedbackCondition, ...] = ()
    from_shadow_wins: bool = False
    shadow_winner: str = "any"
    """With ``from_shadow_wins``: ``any`` judged winner, only ``candidate`` wins, or only ``primary`` wins."""
    holdout: float = 0.1
    """Fraction of prompts in the held-out split (``test.jsonl``)."""
    split_salt: str = "pointsman"
    preferences: bool = True
    limit: int | None = None
    """At most this many supervised examples (train + test)."""
    in_house: bool = False
    """The dataset stays in-house (your own post-training): include teams without third-party processing consent.
    Otherwise (the files are made for a provider's fine-tuning) their requests are left out."""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["min_feedback"] = [str(c) for c in self.min_feedback]
        for k in ("since", "until"):
            d[k] = _iso(d[k])
        return d


@dataclass
class ExportResult:
    directory: Path
    manifest: dict[str, Any]


@dataclass
class _Stats:
    scanned: int = 0
    shadow_pairs_scanned: int = 0
    examples: dict[str, int] = field(default_factory=lambda: {"train": 0, "test": 0})
    preferences: dict[str, int] = field(default_factory=lambda: {"train": 0, "test": 0})
    demonstrations: int = 0
    from_shadow: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    at_capture: dict[str, int] = field(default_factory=dict)
    at_export: dict[str, int] = field(default_factory=dict)
    first_ts: float | None = None
    last_ts: float | None = None

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def saw(self, ts: float) -> None:
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)


class DatasetExporter:
    """Builds a dataset from the capture store (see the module docstring). Synchronous: run it in a thread."""

    def __init__(
        self,
        store: CaptureStore,
        redactor: Redactor,
        pairs: PairSource | None = None,
        may_leave: Callable[[str | None, str | None], bool] | None = None,
    ) -> None:
        self.store = store
        self.redactor = redactor
        self.pairs = pairs
        self.may_leave = may_leave
        """(team, key) -> whether their request data may go to a third party; None: everyone's may."""

    def _kept_in_house(self, f: ExportFilters, team: str | None, key: str | None, st: _Stats) -> bool:
        """Whether a request must stay out of an export meant for a third party (counted when it does)."""
        if f.in_house or self.may_leave is None or self.may_leave(team, key):
            return False
        st.skip("third_party_not_approved")
        return True

    def export(self, f: ExportFilters, out_dir: str | Path) -> ExportResult:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        st = _Stats()
        seen: set[bytes] = set()
        handles = {name: open(out / name, "wb") for name in FILES}  # closed below
        lines = dict.fromkeys(FILES, 0)
        digests = {name: hashlib.sha256() for name in FILES}

        def emit(name: str, doc: dict[str, Any]) -> None:
            line = orjson.dumps(doc) + b"\n"
            handles[name].write(line)
            digests[name].update(line)
            lines[name] += 1

        try:
            for ex in self._examples(f, st):
                if f.limit is not None and st.examples["train"] + st.examples["test"] >= f.limit:
                    break
                self._write(ex, f, st, seen, emit)
        finally:
            for h in handles.values():
                h.close()
        manifest = self._manifest(f, st, lines, digests)
        (out / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
        return ExportResult(out, manifest)

    # -- sources ------------------------------------------------------------------------------------------------
    def _filters(self, f: ExportFilters) -> dict[str, Any]:
        return {"task": f.task, "team": f.team, "route": f.route}

    def _examples(self, f: ExportFilters, st: _Stats) -> Iterator[_Example]:
        if f.from_shadow_wins:
            yield from self._from_pairs(f, st)
            return
        batch: list[Trace] = []
        for t in self.store.iter_traces(self._filters(f), f.since, f.until):
            batch.append(t)
            if len(batch) >= 500:
                yield from self._from_traces(batch, f, st)
                batch = []
        if batch:
            yield from self._from_traces(batch, f, st)

    def _pairs_of(self, traces: list[Trace], f: ExportFilters) -> dict[str, JudgedPair]:
        """The decided judged pairs of a batch of traces (looked up per batch: the window's pairs are never all
        held at once)."""
        if self.pairs is None or not f.preferences:
            return {}
        found = self.pairs.judged_pairs_of([t.request_id for t in traces], f.since, f.until, f.task, f.route)
        return {i: p for i, p in found.items() if p.winner in ("primary", "candidate")}

    def _from_traces(self, traces: list[Trace], f: ExportFilters, st: _Stats) -> Iterator[_Example]:
        pairs = self._pairs_of(traces, f)
        feedback = self.store.feedback_for([t.request_id for t in traces])
        for t in traces:
            st.scanned += 1
            if self._kept_in_house(f, t.team, t.key, st):
                continue
            fbs = feedback.get(t.request_id, [])
            if not all(c.holds(fbs) for c in f.min_feedback):
                st.skip("feedback_filter")
                continue
            prompt = to_chat(t.endpoint, t.request)
            if prompt is None:
                st.skip("unsupported_request")
                continue
            original = answer_message(t.endpoint, t.output)
            demo = _latest_demonstration(fbs)
            ex = _Example(t.request_id, t.ts, prompt, original, t.redactions)
            if demo is not None:
                st.demonstrations += 1
                if any(m["role"] not in ("assistant", "tool") for m in demo):
                    ex.full = [clean_message(m) for m in demo]
                else:
                    ex.answer = [clean_message(m) for m in demo]
                    if original is not None and len(ex.answer) == 1 and _differs(ex.answer[0], original):
                        ex.rejected = original
            pair = pairs.get(t.request_id)
            if pair is not None and ex.rejected is None:
                win, lose = _winner_loser(pair)
                if win is not None and lose is not None and _differs(win, lose):
                    ex.pref = (win, lose)
            yield ex

    def _from_pairs(self, f: ExportFilters, st: _Stats) -> Iterator[_Example]:
        if self.pairs is None:
            return
        wanted = ("primary", "candidate") if f.shadow_winner == "any" else (f.shadow_winner,)
        for p in self.pairs.judged_pairs(f.since, f.until, f.task, f.route):
            st.shadow_pairs_scanned += 1
            if p.winner not in wanted:
                st.skip("shadow_tie" if p.winner == "tie" else "shadow_other_winner")
                continue
            if f.team is not None and p.team is not None and p.team != f.team:
                continue
            if self._kept_in_house(f, p.team, p.key, st):
                continue
            trace = self.store.get_trace(p.request_id)
            request = p.request if p.request is not None else (trace.request if trace is not None else None)
            endpoint = p.endpoint if p.request is not None or trace is None else trace.endpoint
            if request is None:
                st.skip("shadow_without_request")
                continue
            fbs = self.store.feedback_for([p.request_id]).get(p.request_id, [])
            if not all(c.holds(fbs) for c in f.min_feedback):
                st.skip("feedback_filter")
                continue
            prompt = to_chat(endpoint, request)
            win, lose = _winner_loser(p)
            if prompt is None or win is None:
                st.skip("shadow_without_answer" if prompt is not None else "unsupported_request")
                continue
            st.scanned += 1
            ex = _Example(p.request_id, p.ts, prompt, win, trace.redactions if trace is not None else {})
            ex.from_shadow = True
            if lose is not None and _differs(win, lose):
                ex.pref = (win, lose)
            yield ex

    # -- output -------------------------------------------------------------------------------------------------
    def _write(
        self,
        ex: _Example,
        f: ExportFilters,
        st: _Stats,
        seen: set[bytes],
        emit: Callable[[str, dict[str, Any]], None],
    ) -> None:
        messages, tools, parallel = ex.prompt
        convo = (
            ex.full
            if ex.full is not None
            else [*messages, *(ex.answer or ([ex.original] if ex.original else []))]
        )
        if not convo or convo[-1]["role"] != "assistant":
            st.skip("no_answer")
            return
        counts: dict[str, int] = {}
        convo = self.redactor.redact_json(convo, counts)
        tools = self.redactor.redact_json(tools, counts) if tools else tools
        problem = validate_messages(convo)
        if problem is not None:
            st.skip("invalid")
            return
        doc: dict[str, Any] = {"messages": convo}
        if tools:
            doc["tools"] = tools
            if parallel is not None:
                doc["parallel_tool_calls"] = parallel
        digest = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).digest()
        if digest in seen:
            st.skip("duplicate")
            return
        seen.add(digest)
        n_answer = len(ex.answer) if ex.answer else 1
        prompt_part = convo[: len(convo) - n_answer] if ex.full is None else _prompt_of(convo)
        split = "test" if in_holdout(prompt_part, tools, f.split_salt, f.holdout) else "train"
        emit("train.jsonl" if split == "train" else "test.jsonl", doc)
        st.examples[split] += 1
        st.saw(ex.ts)
        merge_counts(st.at_capture, ex.redactions)
        if ex.from_shadow:
            st.from_shadow += 1
        pref = (
            ex.pref
            if ex.pref is not None
            else ((ex.answer[0], ex.rejected) if ex.answer and ex.rejected else None)
        )
        if f.preferences and pref is not None and ex.full is None:
            chosen, rejected = self.redactor.redact_json(list(pref), counts)
            inp: dict[str, Any] = {"messages": prompt_part}
            if tools:
                inp["tools"] = tools
            emit(
                f"preferences_{split}.jsonl",
                {"input": inp, "preferred_output": [chosen], "non_preferred_output": [rejected]},
            )
            st.preferences[split] += 1
        merge_counts(st.at_export, counts)

    def _manifest(
        self, f: ExportFilters, st: _Stats, lines: dict[str, int], digests: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "created_at": _iso(time.time()),
            "filters": f.as_dict(),
            "time_range": {
                "requested": {"since": _iso(f.since), "until": _iso(f.until)},
                "data": {"first": _iso(st.first_ts), "last": _iso(st.last_ts)},
            },
            "counts": {
                "traces_scanned": st.scanned,
                "shadow_pairs_scanned": st.shadow_pairs_scanned,
                "examples": {**st.examples, "total": st.examples["train"] + st.examples["test"]},
                "preference_pairs": {
                    **st.preferences,
                    "total": st.preferences["train"] + st.preferences["test"],
                },
                "demonstrations": st.demonstrations,
                "from_shadow_wins": st.from_shadow,
                "skipped": dict(sorted(st.skipped.items())),
            },
            "redaction": {
                "detectors": list(self.redactor.names),
                "at_capture": dict(sorted(st.at_capture.items())),
                "at_export": dict(sorted(st.at_export.items())),
            },
            "split": {
                "method": "sha256(salt + prompt) < holdout",
                "holdout": f.holdout,
                "salt": f.split_salt,
            },
            "files": {name: {"lines": lines[name], "sha256": digests[name].hexdigest()} for name in FILES},
        }


@dataclass
class _Example:
    request_id: str
    ts: float
    prompt: tuple[list[dict[str, Any]], list[dict[str, Any]] | None, bool | None]
    original: dict[str, Any] | None
    redactions: dict[str, int]
    answer: list[dict[str, Any]] | None = None
    full: list[dict[str, Any]] | None = None
    rejected: dict[str, Any] | None = None
    pref: tuple[dict[str, Any], dict[str, Any]] | None = None
    from_shadow: bool = False


def in_holdout(prompt: list[dict[str, Any]], tools: Any, salt: str, holdout: float) -> bool:
    """Stable split: ``sha256(salt + prompt)`` mapped to [0, 1) falls below ``holdout``."""
    basis = (
        salt.encode()
        + b"\x00"
        + orjson.dumps({"messages": prompt, "tools": tools}, option=orjson.OPT_SORT_KEYS)
    )
    u = int.from_bytes(hashlib.sha256(basis).digest()[:8], "big") / 2**64
    return u < holdout


def _prompt_of(convo: list[dict[str, Any]]) -> list[dict[str, Any]]:
    i = len(convo)
    while i > 0 and convo[i - 1]["role"] in ("assistant", "tool"):
        i -= 1
    return convo[:i]


def _latest_demonstration(fbs: list[Feedback]) -> list[dict[str, Any]] | None:
    demo = None
    for fb in fbs:
        if fb.kind == "demonstration" and fb.demonstration:
            demo = fb.demonstration
    return demo


def _winner_loser(p: JudgedPair) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    prim = clean_message(p.primary_answer) if p.primary_answer else None
    cand = clean_message(p.candidate_answer) if p.candidate_answer else None
    if p.winner == "primary":
        return prim, cand
    if p.winner == "candidate":
        return cand, prim
    return None, None


def _differs(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) != orjson.dumps(b, option=orjson.OPT_SORT_KEYS)


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(v: str | float | None, end: bool = False, now: float | None = None) -> float | None:
    """Unix seconds from unix seconds, an ISO date (``end``: the end of that UTC day) or datetime, or an age
    such as ``7d``, ``24h``, ``30m`` (before ``now``). ValueError otherwise."""
    if v is None or v == "":
        return None
    t: float | None
    if isinstance(v, int | float):
        t = float(v)
    elif m := _RELATIVE.match(v.strip()):
        t = (time.time() if now is None else now) - float(m.group(1)) * _UNITS[m.group(2)]
    else:
        t = parse_time(v, end=end)
    if t is None:
        raise ValueError(f"no time: {v!r}")
    return in_range(t)  # the manifest writes it as a date


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
