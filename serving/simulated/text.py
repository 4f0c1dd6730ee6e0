"""What a simulated model says: deterministic answers built from the request's own words, a quality profile
that drops part of them, and a judge that prefers the answer covering more of the request.

Everything here is a pure function of the request and the backend's seed, so a run replays exactly.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

_WORD = re.compile(r"[A-Za-z0-9']+")
_FILLER = (
    "the", "answer", "is", "that", "this", "request", "asks", "about", "and", "so", "we", "note", "a",
    "clear", "short", "summary", "of", "it", "with", "care", "in", "plain", "terms", "overall",
)  # fmt: skip
_JUDGE = re.compile(
    r"\[Request\]\n(?P<request>.*?)\n\n\[Answer 1\]\n(?P<one>.*?)\n\n\[Answer 2\]\n(?P<two>.*)", re.S
)
_ENDING = "\n\nWhich answer is better?"


def unit(*parts: object) -> float:
    """A number in [0, 1) fixed by ``parts`` (a stable hash: the same parts always give the same number)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def content_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def prompt_of(endpoint: str, body: dict[str, Any]) -> str:
    """The request's prompt as plain text, whatever the endpoint spells it as."""
    if "messages" in body:
        msgs = body.get("messages") or []
        return "\n".join(content_text(m.get("content")) for m in msgs if isinstance(m, dict))
    value = body.get("prompt", body.get("input", ""))
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict):
                out.append(content_text(item.get("content")))
        return "\n".join(out)
    return ""


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def count_tokens(text: str) -> int:
    """Simulated tokens: one per word (at least one)."""
    return max(1, len(_WORD.findall(text)))


def key_words(prompt: str) -> list[str]:
    """The request's words worth repeating in an answer (longer than three letters), in order, once each."""
    seen: dict[str, None] = {}
    for w in words(prompt):
        if len(w) > 3:
            seen.setdefault(w, None)
    return list(seen)


def complete_answer(prompt: str, length: int) -> list[str]:
    """The full answer to ``prompt``: its key words, interleaved with filler picked by the prompt itself."""
    keys = key_words(prompt) or ["nothing"]
    out: list[str] = []
    i = 0
    while len(out) < length:
        if i % 2 == 0:
            out.append(keys[(i // 2) % len(keys)])
        else:
            out.append(_FILLER[int(unit("filler", prompt, i) * len(_FILLER))])
        i += 1
    return out


def answer(prompt: str, length: int, quality: float, seed: int) -> list[str]:
    """The answer a model of this ``quality`` gives: the complete one, or (with probability ``1 - quality``,
    decided per prompt and seed) one with about half of its key words replaced by filler."""
    full = complete_answer(prompt, length)
    if unit("quality", seed, prompt) < quality:
        return full
    return [
        _FILLER[int(unit("swap", seed, prompt, i) * len(_FILLER))]
        if i % 2 == 0 and unit("drop", seed, prompt, i) < 0.5
        else w
        for i, w in enumerate(full)
    ]


def coverage(request: str, text: str) -> int:
    """How many of the request's key words ``text`` mentions."""
    said = set(words(text))
    return sum(1 for w in key_words(request) if w in said)


def judge_verdict(prompt: str) -> str | None:
    """A judge's JSON reply to a prompt that compares two answers, or None when ``prompt`` is not one."""
    m = _JUDGE.search(prompt)
    if m is None:
        return None
    request, one, two = m["request"], m["one"], m["two"].removesuffix(_ENDING)
    a, b = coverage(request, one), coverage(request, two)
    winner = "1" if a > b else "2" if b > a else "tie"
    reason = f"answer 1 covers {a} of the request's key words, answer 2 covers {b}"
    return json.dumps({"winner": winner, "reason": reason})


def vector(text: str, dims: int, seed: int) -> list[float]:
    """A unit-length embedding fixed by the text (and seed): texts sharing words point in similar directions."""
    v = [0.0] * dims
    for w in words(text) or [""]:
        for d in range(dims):
            v[d] += unit("vec", seed, w, d) - 0.5
    norm = sum(x * x for x in v) ** 0.5 or 1.0
    return [round(x / norm, 6) for x in v]
