"""Task tags of a request, by precedence: X-Pointsman-Task, X-Pointsman-Tags, body metadata, key defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_TAGS = 32
MAX_TAG_LEN = 128


def parse_tags_header(value: str) -> dict[str, str]:
    """``k=v, k2=v2`` -> dict; malformed pieces are ignored."""
    out: dict[str, str] = {}
    for part in value.split(","):
        k, sep, v = part.partition("=")
        k = k.strip()
        if sep and k and len(out) < MAX_TAGS:
            out[k[:MAX_TAG_LEN]] = v.strip()[:MAX_TAG_LEN]
    return out


def collect_tags(
    task_header: str | None,
    tags_header: str | None,
    metadata: Any,
    key_tags: Mapping[str, str],
) -> dict[str, str]:
    tags: dict[str, str] = dict(key_tags)
    if isinstance(metadata, dict):
        for k, v in metadata.items():
            if isinstance(k, str) and isinstance(v, str | int | float | bool) and len(tags) < MAX_TAGS:
                tags[k[:MAX_TAG_LEN]] = str(v)[:MAX_TAG_LEN]
    if tags_header:
        tags.update(parse_tags_header(tags_header))
    if task_header:
        tags["task"] = task_header.strip()[:MAX_TAG_LEN]
    return tags
