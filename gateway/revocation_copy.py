"""The local copy of the revoked client key secrets: ``<server.data_dir>/revoked_keys.json``.

The policy store is where revocations live (``routing.store``, ``Revocation``); this copy is what keeps them in
force while the store cannot be read. The gateway writes it whenever it learns the store's revocations (when it
opens the store, when a sync finds a newer head, after its own admin change revokes a secret) and reads it only
at startup when the store cannot be read: the config file's policy is then loaded without the keys that hold a
revoked secret (``gateway.revocations``). It holds each revoked secret's SHA-256 digest with the key name and the
policy version that revoked it (what the warnings say), never a secret.

Written atomically: a temporary file in the same directory, flushed to disk, renamed over the copy, so a reader
(another worker sharing the data_dir) sees the old copy or the new one, never half of one. No copy means no
revocation is known here yet (a first start); a copy that cannot be read is named in a warning and ignored.
Nothing here runs on the request path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import orjson

from accounting.atomic_file import write_atomically
from routing.store import Revocation

log = logging.getLogger("pointsman.policy")

FILE_NAME = "revoked_keys.json"
FORMAT = 1
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class UnreadableCopy(Exception):
    """The copy exists but is not one this gateway wrote (cut short, edited, another format)."""


def encode(revoked: Mapping[str, Revocation]) -> bytes:
    """The copy's bytes: ``{"format": 1, "revoked": {digest: {name, version, revoked_at}}}``, keys sorted."""
    rows = {d: {"name": r.name, "version": r.version, "revoked_at": r.revoked_at} for d, r in revoked.items()}
    return orjson.dumps(
        {"format": FORMAT, "revoked": rows}, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    )


def decode(raw: bytes) -> dict[str, Revocation]:
    """The revocations in a copy's bytes; raises ``UnreadableCopy`` saying what is wrong."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UnreadableCopy(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("revoked"), dict):
        raise UnreadableCopy(f'not a format {FORMAT} copy (an object with "format" and "revoked")')
    return {d: _revocation(d, row) for d, row in doc["revoked"].items()}


def _revocation(digest: str, row: Any) -> Revocation:
    if not _DIGEST.match(digest):
        raise UnreadableCopy(f"{digest[:80]!r} is not a SHA-256 hex digest")
    if not isinstance(row, dict):
        raise UnreadableCopy(f"the entry of {digest} is not an object")
    name, version, at = row.get("name"), row.get("version"), row.get("revoked_at")
    if not isinstance(name, str) or type(version) is not int or not isinstance(at, int | float):
        raise UnreadableCopy(
            f"the entry of {digest} needs a string name, an integer version and a revoked_at"
        )
    return Revocation(digest, name, version, float(at))


def write(path: str, revoked: Mapping[str, Revocation]) -> None:
    """Replace the copy at ``path`` with ``revoked`` atomically (raises ``OSError``)."""
    write_atomically(path, encode(revoked))


class RevocationCopy:
    """The copy of one gateway's data_dir; remembers what it last wrote so an unchanged set is not rewritten."""

    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, FILE_NAME)
        self._written: dict[str, Revocation] | None = None

    async def keep(self, revoked: Mapping[str, Revocation]) -> None:
        """Make the copy hold ``revoked`` (written off the event loop). A failed write is logged, not raised: the
        store has the revocations; only a later startup without the store would miss them."""
        if self._written == revoked:
            return
        snapshot = dict(revoked)
        try:
            await asyncio.to_thread(write, self.path, snapshot)
        except OSError as exc:
            log.warning(
                "cannot write the local copy of the revoked client key secrets %s (%s): a restart while the"
                " policy store is unreachable would load the config file's keys without it",
                self.path,
                exc.strerror or exc,
            )
            return
        self._written = snapshot

    def load(self) -> dict[str, Revocation] | None:
        """The revocations the copy holds; None when there is none or it cannot be read (each logged)."""
        found = self._read()
        if found is None:
            log.warning(
                "no local copy of the revoked client key secrets at %s (it is written once the policy store has"
                " been read): the config file's client keys are loaded as they are",
                self.path,
            )
        elif isinstance(found, str):
            self._unreadable(found)
            return None
        return found

    def held(self) -> dict[str, Revocation]:
        """The copy's revocations, to join with the store's when it is opened: nothing when there is no copy (a
        first start) or it cannot be read (named in a warning; it is written again from the store)."""
        found = self._read()
        if isinstance(found, str):
            log.warning(
                "cannot read the local copy of the revoked client key secrets %s (%s): it is written again from"
                " the policy store",
                self.path,
                found,
            )
            return {}
        return found or {}

    def _read(self) -> dict[str, Revocation] | str | None:
        """The copy's revocations; None when there is no copy; why it cannot be read otherwise."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return exc.strerror or str(exc)
        try:
            return decode(raw)
        except UnreadableCopy as exc:
            return str(exc)

    def _unreadable(self, why: str) -> None:
        log.warning(
            "cannot read the local copy of the revoked client key secrets %s (%s): the config file's client keys"
            " are loaded as they are; the copy is written again once the policy store has been read",
            self.path,
            why,
        )
