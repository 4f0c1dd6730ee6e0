"""Redaction of secrets and personal data, applied before any captured text is written anywhere.

Built-in detectors, each replaced by a typed placeholder:

| detector | placeholder | what |
|---|---|---|
| ``email`` | ``[EMAIL]`` | ``local@domain.tld`` |
| ``phone`` | ``[PHONE]`` | international ``+CC ...`` numbers and ``(NNN) NNN-NNNN`` / ``NNN-NNN-NNNN`` forms |
| ``credit_card`` | ``[CREDIT_CARD]`` | 13-19 digits (spaces/dashes allowed) that pass the Luhn check |
| ``api_key`` | ``[API_KEY]`` | provider key formats (OpenAI, Anthropic, AWS, GitHub, Slack, Google, Stripe, Hugging Face), JWTs, PEM private keys, and the value of ``api_key=``/``secret:``/``password=``-style assignments |
| ``bearer_token`` | ``[BEARER_TOKEN]`` | the credential after ``Bearer`` / ``Basic`` (the scheme word is kept) |
| ``ip`` | ``[IP_ADDRESS]`` | IPv4 and IPv6 addresses (validated with ``ipaddress``) |

plus configured regexes (``[NAME]``). Each detector is one regex pass, run only when a cheap substring test says
it could match; candidates that fail validation (a Luhn failure, an invalid address) are left as they are. ``Redactor.redact_json`` walks a JSON
document and redacts every string value (keys and structural fields such as ``role`` are kept), so tool-call
arguments (JSON inside a string) stay valid JSON with placeholders in them.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from accounting.capture.config import ALWAYS_ON, BUILTIN_DETECTORS, RedactPattern

# Patterns start with a literal or a character class so ``re`` can skip ahead quickly; boundaries that a
# lookbehind would check are checked on the (rare) matches instead. Each pass runs only when a cheap substring
# test says it could match.
_PEM = r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
_KEY_FORMATS = (
    _PEM,
    r"sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",  # OpenAI, Anthropic
    r"(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Za-z])",  # AWS access key id
    r"gh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
    r"github_pat_[A-Za-z0-9_]{40,}",
    r"xox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack
    r"AIza[0-9A-Za-z_\-]{35}",  # Google API key
    r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe
    r"hf_[A-Za-z0-9]{30,}",  # Hugging Face
    r"glpat-[A-Za-z0-9_\-]{20,}",  # GitLab
    r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWT
)
_KEY_RX = re.compile("|".join(_KEY_FORMATS))
# ``name: value`` / ``name=value`` credentials: keywords are found with ``str.find`` on a lower-cased copy, the
# separator is matched right after the keyword, and the value is taken from the original text.
_KV_SEP_RX = re.compile(r"[\"']?[ \t]*[:=][ \t]*[\"']?")
_KV_PASS_RX = re.compile(r"(?:word|wd)?[\"']?[ \t]*[:=][ \t]*[\"']?")
_KV_KEY_PREFIX_RX = re.compile(r"(?:api|secret|private|access|client)[_\- ]?$")
_KV_VALUE_RX = re.compile(r"[^\s\"',;\[\]{}]{6,}")
_BEARER_RX = re.compile(r"((?:[Bb]earer|BEARER|[Bb]asic|BASIC)\s+)([A-Za-z0-9._~+/\-]{8,}=*)")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}$")
_EMAIL_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b")
_NUMBER_RX = re.compile(r"\d[\d .\-()]{5,}\d")
"""Runs of digits with separators: the only places cards, IPv4 addresses and phone numbers can be."""
_CARD_RX = re.compile(r"\d(?:[ \-]?\d){12,18}(?![\w\-])")
_IPV4_RX = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w.]|\.\d)")
_IPV6_RX = re.compile(r"[0-9A-Fa-f:]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?:%\w+)?")
_PHONE_RX = re.compile(
    r"\+\d{1,3}[\s.\-]?(?:\(\d{1,4}\)[\s.\-]?)?\d{1,4}(?:[\s.\-]?\d{2,4}){1,4}(?![\w\-])"
    r"|\(\d{3}\)\s?\d{3}[\s.\-]\d{4}(?![\w\-])"
    r"|\d{3}[.\-]\d{3}[.\-]\d{4}(?![\w\-])"
)
_SKIP_KEYS = frozenset({"role", "type", "model", "finish_reason", "object", "tool_choice"})
_CONTAINERS = (str, dict, list)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


class Redactor:
    """A compiled set of detectors. Thread-safe; ``redact`` returns the new text and counts by placeholder."""

    def __init__(
        self, builtins: Iterable[str] = BUILTIN_DETECTORS, patterns: Iterable[RedactPattern] = ()
    ) -> None:
        chosen = set(builtins) | set(ALWAYS_ON)
        unknown = chosen - set(BUILTIN_DETECTORS)
        if unknown:
            raise ValueError(f"unknown built-in detectors {sorted(unknown)}")
        self.builtins = tuple(d for d in BUILTIN_DETECTORS if d in chosen)
        self._email = "email" in chosen
        self._card = "credit_card" in chosen
        self._ip = "ip" in chosen
        self._phone = "phone" in chosen
        self.patterns = tuple(patterns)
        self._custom = [
            (re.compile(p.pattern, re.IGNORECASE if p.ignore_case else 0), f"[{p.label}]", p.label)
            for p in self.patterns
        ]

    @property
    def names(self) -> tuple[str, ...]:
        return self.builtins + tuple(p.name for p in self.patterns)

    def redact(self, text: str, counts: dict[str, int] | None = None) -> str:
        """``text`` with every detected item replaced; adds what it replaced to ``counts``."""
        tally = counts if counts is not None else {}
        out = text
        # Secrets first (always on): Authorization credentials, provider key formats, key=value assignments.
        if ("earer" in out or "EARER" in out or "asic" in out or "ASIC" in out) and _BEARER_RX.search(out):
            out = _BEARER_RX.sub(lambda m: _bearer(m, tally), out)
        if _maybe_key(out):
            out = _sub(_KEY_RX, out, tally, "API_KEY")
        if ":" in out or "=" in out:
            low = out.lower()
            if "key" in low or "secret" in low or "token" in low or "pass" in low or "pwd" in low:
                out = _assignments(out, low, tally)
        if self._email and "@" in out:
            out = _emails(out, tally)
        if self._ip and out.count(":") >= 2:
            out = _sub(_IPV6_RX, out, tally, "IP_ADDRESS", _ipv6_ok)
        if (self._card or self._ip or self._phone) and _has_digit(out):
            out = self._numbers(out, tally)
        for rx, repl, label in self._custom:
            out, n = rx.subn(repl, out)
            if n:
                tally[label] = tally.get(label, 0) + n
        return out

    def _numbers(self, text: str, tally: dict[str, int]) -> str:
        out: list[str] = []
        pos = 0
        for m in _NUMBER_RX.finditer(text):
            start = m.start()
            if start > pos and text[start - 1] in "+(":
                start -= 1
            cand = text[start : m.end()]
            new = cand
            if self._card:
                new = _sub(_CARD_RX, new, tally, "CREDIT_CARD", _card_ok)
            if self._ip and "." in new:
                new = _sub(_IPV4_RX, new, tally, "IP_ADDRESS", _ipv4_ok)
            if self._phone:
                new = _sub(_PHONE_RX, new, tally, "PHONE", _phone_ok)
            if new != cand:
                out.append(text[pos:start])
                out.append(new)
                pos = m.end()
        if not out:
            return text
        out.append(text[pos:])
        return "".join(out)

    def redact_json(self, doc: Any, counts: dict[str, int] | None = None) -> Any:
        """A copy of a JSON value with every string value redacted (dict keys and structural fields kept)."""
        tally = counts if counts is not None else {}
        return self._walk(doc, tally)

    def _walk(self, v: Any, tally: dict[str, int]) -> Any:
        t = type(v)
        if t is str:
            return self.redact(v, tally) if len(v) > 4 else v
        if t is dict:
            out: dict[Any, Any] = {}
            for k, x in v.items():
                tx = type(x)
                if tx is str:
                    out[k] = x if (len(x) <= 4 or k in _SKIP_KEYS) else self.redact(x, tally)
                elif tx is dict or tx is list:
                    out[k] = self._walk(x, tally)
                else:
                    out[k] = x
            return out
        if t is list:
            return [self._walk(x, tally) if type(x) in _CONTAINERS else x for x in v]
        return v

    def find(self, text: str) -> dict[str, int]:
        """Counts of what ``redact`` would replace in ``text`` (for checks on exports)."""
        counts: dict[str, int] = {}
        self.redact(text, counts)
        return counts


def _count(tally: dict[str, int], label: str, repl: str) -> str:
    tally[label] = tally.get(label, 0) + 1
    return repl


def _sub(
    rx: re.Pattern[str],
    text: str,
    tally: dict[str, int],
    label: str,
    valid: Callable[[re.Match[str]], bool] | None = None,
) -> str:
    repl = f"[{label}]"

    def one(m: re.Match[str]) -> str:
        if valid is not None and not valid(m):
            return m.group(0)
        tally[label] = tally.get(label, 0) + 1
        return repl

    return rx.sub(one, text)


def _bearer(m: re.Match[str], tally: dict[str, int]) -> str:
    """``Bearer <token>`` (a token has a digit or punctuation, unlike "bearer instruments") or ``Basic <b64>``
    (the credential must decode to ``user:password``, unlike "basic understanding")."""
    scheme, value = m.group(1), m.group(2)
    if scheme[0] in "Bb" and scheme[1] in "eE":
        ok = _has_digit(value) or any(c in value for c in "._~+/=-")
    else:
        try:
            ok = ":" in base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            ok = False
    if not ok:
        return m.group(0)
    return _count(tally, "BEARER_TOKEN", scheme + "[BEARER_TOKEN]")


def _has_digit(s: str) -> bool:
    return (
        "0" in s
        or "1" in s
        or "2" in s
        or "3" in s
        or "4" in s
        or "5" in s
        or "6" in s
        or "7" in s
        or "8" in s
        or "9" in s
    )


def _maybe_key(s: str) -> bool:
    """Whether ``s`` could hold a provider key (single-character tests first: they are the cheapest)."""
    if "_" in s and ("gh" in s or "sk_" in s or "rk_" in s or "pk_" in s or "hf_" in s):
        return True
    if "-" in s and ("sk-" in s or "xox" in s or "glpat-" in s or "-----BEGIN" in s):
        return True
    return "AKIA" in s or "ASIA" in s or "AIza" in s or "eyJ" in s


def _assignments(text: str, low: str, tally: dict[str, int]) -> str:
    if len(low) != len(text):  # lower() changed the length (rare Unicode): a copy that keeps offsets
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    spans: list[tuple[int, int]] = []
    for kw in ("key", "secret", "token", "pass", "pwd"):
        i = low.find(kw)
        while i >= 0:
            end = i + len(kw)
            ok = True
            if kw == "key":
                ok = _KV_KEY_PREFIX_RX.search(low, max(0, i - 8), i) is not None
            elif kw in ("pass", "pwd"):
                ok = i == 0 or not low[i - 1].isalpha()
            sep = (_KV_PASS_RX if kw == "pass" else _KV_SEP_RX).match(low, end) if ok else None
            if sep is not None:
                v = _KV_VALUE_RX.match(text, sep.end())
                if v is not None:
                    spans.append((v.start(), v.end()))
            i = low.find(kw, end)
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    pos = 0
    for s, e in spans:
        if s < pos:
            continue
        out.append(text[pos:s])
        out.append("[API_KEY]")
        tally["API_KEY"] = tally.get("API_KEY", 0) + 1
        pos = e
    out.append(text[pos:])
    return "".join(out)


def _emails(text: str, tally: dict[str, int]) -> str:
    """Replace ``local@domain.tld`` around each ``@`` (found with ``str.find``: much cheaper than a regex scan)."""
    out: list[str] = []
    pos = 0
    i = text.find("@")
    while i >= 0:
        left = _EMAIL_LOCAL.search(text, max(pos, i - 64), i)
        right = _EMAIL_DOMAIN.match(text, i + 1)
        if left is not None and right is not None:
            start = left.start()
            c = text[start - 1] if start > 0 else " "
            if not (c.isalnum() or c in "._%+-"):
                out.append(text[pos:start])
                out.append("[EMAIL]")
                tally["EMAIL"] = tally.get("EMAIL", 0) + 1
                pos = right.end()
                i = text.find("@", pos)
                continue
        i = text.find("@", i + 1)
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _before(m: re.Match[str]) -> str:
    i = m.start()
    return m.string[i - 1] if i > 0 else " "


def _card_ok(m: re.Match[str]) -> bool:
    if _before(m).isdigit():
        return False
    return luhn_ok(m.group(0).replace(" ", "").replace("-", ""))


def _ipv4_ok(m: re.Match[str]) -> bool:
    c = _before(m)
    return not (c.isalnum() or c in "._") and _valid_ip(m.group(0))


def _ipv6_ok(m: re.Match[str]) -> bool:
    c = _before(m)
    s = m.group(0)
    if c.isalnum() or c == "_" or not _has_digit(s):
        return False
    return "." not in s.split("%", 1)[0].rsplit(":", 1)[0] and _valid_ip(s)


def _phone_ok(m: re.Match[str]) -> bool:
    c = _before(m)
    if c.isalnum() or c in "+_":
        return False
    return sum(ch.isdigit() for ch in m.group(0)) >= 7


def build_redactor(redact: Iterable[str | RedactPattern], named: Mapping[str, RedactPattern]) -> Redactor:
    """The redactor a policy's ``redact`` list asks for (``builtin`` = all built-ins; names from ``named``)."""
    builtins: set[str] = set()
    patterns: list[RedactPattern] = []
    for item in redact:
        if isinstance(item, RedactPattern):
            patterns.append(item)
        elif item == "builtin":
            builtins.update(BUILTIN_DETECTORS)
        elif item in BUILTIN_DETECTORS:
            builtins.add(item)
        elif item in named:
            patterns.append(named[item])
        else:
            raise ValueError(f"unknown redaction detector {item!r}")
    return Redactor(builtins, patterns)


def merge_counts(into: dict[str, int], more: Mapping[str, int]) -> dict[str, int]:
    for k, n in more.items():
        into[k] = into.get(k, 0) + n
    return into
