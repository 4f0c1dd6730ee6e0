"""Text and vector similarity for comparators: normalisation, SQuAD token F1, ROUGE-L (longest common
subsequence), cosine. Pure functions of their inputs."""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

_WS = re.compile(r"\s+")


_PUNCT = str.maketrans("", "", string.punctuation)


_ARTICLES = re.compile(r"\b(a|an|the)\b")


_WORD = re.compile(r"\w+", re.UNICODE)


def normalize_text(s: str, lowercase: bool = True, strip_punctuation: bool = True) -> str:
    s = unicodedata.normalize("NFKC", s)
    if lowercase:
        s = s.casefold()
    if strip_punctuation:
        s = "".join(ch for ch in s if not unicodedata.category(ch).startswith("P"))
    return _WS.sub(" ", s).strip()


def squad_tokens(s: str) -> list[str]:
    s = s.lower().translate(_PUNCT)
    s = _ARTICLES.sub(" ", s)
    return s.split()


def token_f1(a: str, b: str) -> float:
    ta, tb = squad_tokens(a), squad_tokens(b)
    if not ta and not tb:
        return 1.0
    if not ta or not tb:
        return 0.0
    common = sum((Counter(ta) & Counter(tb)).values())
    if common == 0:
        return 0.0
    p, r = common / len(tb), common / len(ta)
    return 2 * p * r / (p + r)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(reference: str, hypothesis: str, max_tokens: int = 2000) -> float:
    ref = _WORD.findall(reference.lower())[:max_tokens]
    hyp = _WORD.findall(hypothesis.lower())[:max_tokens]
    if not ref and not hyp:
        return 1.0
    if not ref or not hyp:
        return 0.0
    lcs = lcs_length(ref, hyp)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(hyp), lcs / len(ref)
    return 2 * p * r / (p + r)


def cosine(a: Sequence[float], b: Sequence[float]) -> float | None:
    if not a or len(a) != len(b):
        return None
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(math.fsum(x * x for x in a))
    nb = math.sqrt(math.fsum(y * y for y in b))
    if na == 0 or nb == 0:
        return None
    return max(0.0, min(1.0, dot / (na * nb)))
