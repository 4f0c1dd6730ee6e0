"""What an upstream error body that is not JSON says, in one short line for the client's error message: the page
a proxy in front of the provider answers with (a WAF's 403, nginx's 413, a load balancer's 502) or a plain-text
error, which is the only clue to who refused the request.

- Markup (a content type naming ``html`` or ``xml``, or a body that starts with ``<``): the page's ``<title>``,
  then its text — tags, comments, ``<script>`` and ``<style>`` left out, entities decoded; the body text alone
  when it starts with the title (nginx repeats its title in an ``<h1>``).
- Anything else: the body as UTF-8 text (bytes that are not UTF-8 left out).

Then control characters (C0, C1, line and paragraph separators) become spaces, invisible format characters (bidi
controls, zero-width characters, BOM) are left out, every run of whitespace becomes one space, and the excerpt is
cut to ``LIMIT`` characters (ending with ``…`` when cut). The body is the upstream's, up to 64 KiB, with the
backend's own credentials already masked in it (``serving.http_backend``); a page is read in one pass, no further
than the text the excerpt needs.
"""

from __future__ import annotations

import html
import re

LIMIT = 300
"""Characters of an excerpt at most."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_INVISIBLE = re.compile(r"[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
"""Format characters: bidi controls (which can make a message read otherwise than it is), zero-width ones, BOM."""
_TAG_NAME = re.compile(r"/?([a-z][a-z0-9]*)")
_SKIPPED = ("script", "style", "title")
"""Elements whose content is not page text (a title is said apart)."""


def excerpt(body: bytes, content_type: str) -> str | None:
    """What ``body`` says, as one line of at most ``LIMIT`` characters; None when it says nothing."""
    text = body.decode("utf-8", "ignore")
    if "html" in content_type or "xml" in content_type or text.lstrip().startswith("<"):
        text = _page_text(text)
    return _one_line(text)


def _one_line(text: str) -> str | None:
    line = " ".join(_CONTROL.sub(" ", _INVISIBLE.sub("", text)).split())
    if not line:
        return None
    return line if len(line) <= LIMIT else line[: LIMIT - 1].rstrip() + "…"


def _page_text(page: str) -> str:
    """A page's title and text (see the module's docstring), enough of it for an excerpt."""
    low = page.lower()
    title = ""
    at = low.find("<title")
    if at >= 0:
        start = low.find(">", at) + 1
        end = low.find("</title", start)
        if start and end >= 0:
            title = _one_line(html.unescape(page[start:end])) or ""
    pieces: list[str] = []
    size = 0
    pos = 0
    n = len(page)
    while pos < n and size < 4 * LIMIT:  # (entities and whitespace runs shrink it)
        lt = page.find("<", pos)
        if lt < 0:
            lt = n
        pieces.append(page[pos:lt])
        size += lt - pos
        if lt == n:
            break
        pieces.append(" ")
        if low.startswith("<!--", lt):
            close = low.find("-->", lt + 4)
            pos = n if close < 0 else close + 3
            continue
        gt = low.find(">", lt)
        if gt < 0:
            break
        pos = gt + 1
        tag = _TAG_NAME.match(low, lt + 1)
        if tag is not None and tag.group(0) in _SKIPPED:  # an opening tag: its content is skipped
            close = low.find("</" + tag.group(0), pos)
            pos = n if close < 0 else close
    text = _one_line(html.unescape("".join(pieces))) or ""
    if not title or text.startswith(title):
        return text
    return f"{title} — {text}" if text else title
