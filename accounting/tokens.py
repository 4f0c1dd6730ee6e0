"""Counting tokens when an upstream reports no usage (or a stream was cut off before its usage chunk).

* OpenAI model families: tiktoken with the model's encoding (``o200k_base`` / ``cl100k_base`` / ...). The
  encoding files are read from a local directory (``accounting.estimation.tiktoken_dir``,
  ``TIKTOKEN_CACHE_DIR``, or the copies bundled inside the installed litellm package, found without importing
  it), checked against tiktoken's published SHA-256, so no network is ever needed.
* Self-hosted models: the vLLM server's own ``/tokenize`` (an injected async counter, see ``catalog``).
* Anything else: ``len(text) / chars_per_token`` (a documented heuristic).

Every such record is flagged ``estimated``. All of it runs in the background, never on the request path.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from accounting.catalog import TokenCounter
from accounting.config import EstimationConfig
from wire.answer import assemble
from wire.anthropic.to_chat import to_chat_request
from wire.anthropic.untranslatable import Untranslatable
from wire.endpoints import CHAT, COMPLETIONS, COUNT_TOKENS, EMBEDDINGS, MESSAGES, RESPONSES

log = logging.getLogger("pointsman.accounting")

_BASE_URL = "https://openaipublic.blob.core.windows.net/encodings/"

# name -> (sha256 of the file, pattern, special tokens): tiktoken_ext.openai_public's definitions.
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_R50K_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
ENCODINGS: dict[str, tuple[str, str, dict[str, int]]] = {
    "o200k_base": (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PAT,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PAT,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "p50k_base": (
        "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
        _R50K_PAT,
        {"<|endoftext|>": 50256},
    ),
}


def _cache_name(encoding: str) -> str:
    return hashlib.sha1(f"{_BASE_URL}{encoding}.tiktoken".encode()).hexdigest()


def encoding_dirs(configured: str | None) -> list[Path]:
    dirs: list[Path] = []
    if configured:
        dirs.append(Path(configured))
    env = os.environ.get("TIKTOKEN_CACHE_DIR")
    if env:
        dirs.append(Path(env))
    spec = importlib.util.find_spec("litellm")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            dirs.append(Path(loc) / "litellm_core_utils" / "tokenizers")
    return dirs


def _find_file(encoding: str, dirs: Sequence[Path]) -> Path | None:
    for d in dirs:
        for name in (_cache_name(encoding), f"{encoding}.tiktoken"):
            p = d / name
            if p.is_file():
                return p
    return None


class Encodings:
    """Lazily loaded tiktoken encodings (thread-safe; loading takes ~0.5 s, done off the event loop)."""

    def __init__(self, configured_dir: str | None = None) -> None:
        self.dirs = encoding_dirs(configured_dir)
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    def available(self, encoding: str) -> bool:
        return encoding in ENCODINGS and _find_file(encoding, self.dirs) is not None

    def get(self, encoding: str) -> Any | None:
        """The ``tiktoken.Encoding``, or None when its file is not available locally."""
        enc = self._loaded.get(encoding)
        if enc is not None or encoding in self._loaded:
            return enc
        with self._lock:
            if encoding in self._loaded:
                return self._loaded[encoding]
            self._loaded[encoding] = enc = self._load(encoding)
            return enc

    def _load(self, encoding: str) -> Any | None:
        spec = ENCODINGS.get(encoding)
        path = _find_file(encoding, self.dirs)
        if spec is None or path is None:
            log.warning(
                "tiktoken encoding %s not found locally (looked in %s); using the heuristic",
                encoding,
                ", ".join(str(d) for d in self.dirs),
            )
            return None
        sha, pat, special = spec
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            log.warning(
                "tiktoken encoding file %s does not match its published hash; using the heuristic", path
            )
            return None
        ranks: dict[bytes, int] = {}
        for line in data.splitlines():
            if line:
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
        import tiktoken  # heavy; only ever imported here, in a background thread

        return tiktoken.Encoding(encoding, pat_str=pat, mergeable_ranks=ranks, special_tokens=special)


def openai_encoding(model: str) -> str | None:
    """tiktoken's encoding name for an OpenAI model id (``gpt-4o-mini`` -> ``o200k_base``), or None."""
    m = model.rsplit("/", 1)[-1]
    if m.startswith("ft:"):
        m = m.split(":")[1]
    try:
        from tiktoken.model import encoding_name_for_model
    except ImportError:  # pragma: no cover - tiktoken is a dependency
        return None
    try:
        name: str = encoding_name_for_model(m)
    except KeyError:
        return None
    return name if name in ENCODINGS else None


# -- what to count -------------------------------------------------------------------------------------------
def _content_text(content: Any, out: list[str]) -> None:
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                t = part.get("text")
                if isinstance(t, str):
                    out.append(t)
                elif part.get("type") in ("input_text", "output_text") and isinstance(
                    part.get("content"), str
                ):
                    out.append(part["content"])
            elif isinstance(part, str):
                out.append(part)


def prompt_parts(endpoint: str, body: dict[str, Any]) -> tuple[list[str], int, list[dict[str, Any]] | None]:
    """Texts of a request's input, the per-message framing overhead in tokens, and chat messages (for
    ``/tokenize``). Framing follows OpenAI's published counting recipe: 3 tokens per message, 1 for a name,
    3 to prime the reply."""
    texts: list[str] = []
    overhead = 0
    messages: list[dict[str, Any]] | None = None
    if endpoint == CHAT:
        msgs = body.get("messages")
        if isinstance(msgs, list):
            messages = [m for m in msgs if isinstance(m, dict)]
            for m in messages:
                overhead += 3
                role = m.get("role")
                if isinstance(role, str):
                    texts.append(role)
                if isinstance(m.get("name"), str):
                    texts.append(m["name"])
                    overhead += 1
                _content_text(m.get("content"), texts)
                tc = m.get("tool_calls")
                if isinstance(tc, list):
                    texts.append(orjson.dumps(tc).decode())
            overhead += 3
        tools = body.get("tools")
        if isinstance(tools, list) and tools:
            texts.append(orjson.dumps(tools).decode())
    elif endpoint in (COMPLETIONS, EMBEDDINGS):
        v = body.get("prompt" if endpoint == COMPLETIONS else "input")
        if isinstance(v, str):
            texts.append(v)
        elif isinstance(v, list):
            for item in v:
                if isinstance(item, str):
                    texts.append(item)
                elif isinstance(item, int):
                    overhead += 1  # a token id
                elif isinstance(item, list):
                    overhead += sum(1 for t in item if isinstance(t, int))
    elif endpoint in (MESSAGES, COUNT_TOKENS):
        return _messages_prompt(body)
    elif endpoint == RESPONSES:
        instr = body.get("instructions")
        if isinstance(instr, str):
            texts.append(instr)
        v = body.get("input")
        if isinstance(v, str):
            texts.append(v)
        elif isinstance(v, list):
            for item in v:
                if isinstance(item, dict):
                    overhead += 3
                    _content_text(item.get("content"), texts)
                    for k in ("arguments", "output"):
                        if isinstance(item.get(k), str):
                            texts.append(item[k])
        tools = body.get("tools")
        if isinstance(tools, list) and tools:  # counted as their JSON, as for chat
            texts.append(orjson.dumps(tools).decode())
    return texts, overhead, messages


def _messages_prompt(body: dict[str, Any]) -> tuple[list[str], int, list[dict[str, Any]] | None]:
    """A Messages API request: the system prompt, every message's text, tool calls' inputs and tool results,
    the tools; its Chat Completions translation's messages for ``/tokenize`` (None when it has none)."""
    texts: list[str] = []
    overhead = 3
    system = body.get("system")
    if isinstance(system, str):
        texts.append(system)
    else:
        _content_text(system, texts)
    for m in body.get("messages") or ():
        if not isinstance(m, dict):
            continue
        overhead += 3
        content = m.get("content")
        _content_text(content, texts)
        for block in content if isinstance(content, list) else ():
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                texts.append(str(block.get("name") or ""))
                texts.append(orjson.dumps(block.get("input")).decode())
            elif block.get("type") == "tool_result":
                _content_text(block.get("content"), texts)
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        texts.append(orjson.dumps(tools).decode())
    try:
        messages: list[dict[str, Any]] | None = to_chat_request(body)["messages"]
    except (Untranslatable, TypeError, AttributeError):
        messages = None
    return texts, overhead, messages


def answer_texts(endpoint: str, doc: Any, out: list[str]) -> None:
    """Generated text in a complete response body: content, refusals, reasoning and tool-call names and
    arguments of every choice, or the Responses API output items."""
    if not isinstance(doc, dict):
        return
    if endpoint == MESSAGES:
        for block in doc.get("content") or ():
            if not isinstance(block, dict):
                continue
            for f in ("text", "thinking", "name"):
                if isinstance(block.get(f), str):
                    out.append(block[f])
            if block.get("type") == "tool_use":
                inp = block.get("input")
                out.append(inp if isinstance(inp, str) else orjson.dumps(inp).decode())
        return
    if endpoint == RESPONSES:
        items = doc.get("output")
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            _content_text(item.get("content"), out)
            for part in item.get("content") or ():
                if isinstance(part, dict) and isinstance(part.get("refusal"), str):
                    out.append(part["refusal"])
            _content_text(item.get("summary"), out)
            if isinstance(item.get("arguments"), str):
                out.append(item["arguments"])
        return
    choices = doc.get("choices")
    for ch in choices if isinstance(choices, list) else ():
        if not isinstance(ch, dict):
            continue
        if isinstance(ch.get("text"), str):  # completions
            out.append(ch["text"])
        msg = ch.get("message")
        if not isinstance(msg, dict):
            continue
        for f in ("content", "reasoning_content", "reasoning", "refusal"):
            if isinstance(msg.get(f), str):
                out.append(msg[f])
        tcs = msg.get("tool_calls")
        for tc in tcs if isinstance(tcs, list) else ():
            fn = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(fn, dict):
                for f in ("name", "arguments"):
                    if isinstance(fn.get(f), str):
                        out.append(fn[f])


def output_texts(endpoint: str, events: Iterable[bytes]) -> list[str]:
    """Generated text in relayed SSE event blocks (reassembled), or in a complete JSON response body."""
    out: list[str] = []
    stream: list[bytes] = []
    for block in events:
        stripped = block.lstrip()
        if not stripped.startswith(b"{"):
            stream.append(block)
            continue
        try:
            answer_texts(endpoint, orjson.loads(stripped), out)
        except orjson.JSONDecodeError:
            pass
    if stream:
        answer_texts(endpoint, assemble(endpoint, stream).body, out)
    return out


def heuristic_count(texts: Iterable[str], chars_per_token: float) -> int:
    n = sum(len(t) for t in texts)
    return max(1, round(n / chars_per_token)) if n else 0


class Estimator:
    """Counts a request's tokens with the best tokenizer available for its model family."""

    def __init__(self, cfg: EstimationConfig, counter: TokenCounter | None = None) -> None:
        self.cfg = cfg
        self.counter = counter if cfg.vllm_tokenize else None
        self.encodings = Encodings(cfg.tiktoken_dir)

    async def estimate(
        self,
        endpoint: str,
        backend: str,
        model: str,
        self_hosted: bool,
        body: dict[str, Any] | None,
        events: Sequence[bytes] | None,
    ) -> tuple[int, int, str]:
        """(input tokens, output tokens, method) where method is ``vllm``, ``tiktoken`` or ``heuristic``."""
        texts, overhead, messages = prompt_parts(endpoint, body) if body else ([], 0, None)
        outs = output_texts(endpoint, events) if events else []
        if self_hosted and self.counter is not None:
            got = await self._vllm(backend, model, endpoint, texts, overhead, messages, outs)
            if got is not None:
                return got[0], got[1], "vllm"
        enc_name = openai_encoding(model)
        if enc_name is not None and self.encodings.available(enc_name):
            counted = await asyncio.to_thread(self._tiktoken, enc_name, texts, overhead, outs)
            if counted is not None:
                return counted[0], counted[1], "tiktoken"
        cpt = self.cfg.chars_per_token
        inp = heuristic_count(texts, cpt) + overhead if (texts or overhead) else 0
        return inp, heuristic_count(outs, cpt), "heuristic"

    def _tiktoken(
        self, enc_name: str, texts: list[str], overhead: int, outs: list[str]
    ) -> tuple[int, int] | None:
        enc = self.encodings.get(enc_name)
        if enc is None:
            return None
        inp = sum(len(enc.encode_ordinary(t)) for t in texts) + overhead if (texts or overhead) else 0
        out = len(enc.encode_ordinary("".join(outs))) if outs else 0
        return inp, out

    async def _vllm(
        self,
        backend: str,
        model: str,
        endpoint: str,
        texts: list[str],
        overhead: int,
        messages: list[dict[str, Any]] | None,
        outs: list[str],
    ) -> tuple[int, int] | None:
        assert self.counter is not None
        inp: int | None = 0
        if messages is not None:
            inp = await self.counter(backend, model, {"messages": messages})
        elif texts or overhead:
            n = await self.counter(backend, model, {"prompt": "\n".join(texts), "add_special_tokens": False})
            inp = None if n is None else n + overhead
        if inp is None:
            return None
        out = 0
        if outs:
            n = await self.counter(backend, model, {"prompt": "".join(outs), "add_special_tokens": False})
            if n is None:
                return None
            out = n
        return inp, out
