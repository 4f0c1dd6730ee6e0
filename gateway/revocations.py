"""Revoked client key secrets: what a policy change revokes, and what a stored version may not load.

A secret is revoked when a change through the admin API removes it from the policy (its key deleted, or its
secret rotated away); the policy store records its SHA-256 digest with that version (``routing.store``,
``Revocation``) and never forgets it. A policy document that still holds a revoked secret (a config file
imported after the revocation, with the key's old secret in it) is loaded without that key, and the gateway
says so, naming the key (never the secret) and what to do: give it a new secret where its secret comes from
(the config file, or ``POINTSMAN_API_KEY`` for the key ``env``). The same applies to the config file's policy
when the store cannot be read at startup, with the revocations of the local copy (``gateway.revocation_copy``).
Nothing here runs on the request path: a refused key is simply not in the runtime's ``KeyRing``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from gateway.config import ENV_KEY_VARIABLE
from gateway.keys import hash_key
from routing.store import PolicyVersion, Revocation


def entry_digest(entry: Any) -> str | None:
    """The digest of a stored key entry's secret (``key_sha256``, or ``key`` hashed)."""
    if not isinstance(entry, dict):
        return None
    digest = entry.get("key_sha256")
    if isinstance(digest, str):
        return digest
    secret = entry.get("key")
    return hash_key(secret) if isinstance(secret, str) else None


def _entries(keys: Any) -> list[tuple[str, str]]:
    """``(name, digest)`` of each key entry with a secret."""
    if not isinstance(keys, list):
        return []
    return [(str(k.get("name")), d) for k in keys if (d := entry_digest(k)) is not None]


def removed_secrets(before: Any, after: Any) -> dict[str, str]:
    """The secrets held by the key entries ``before`` that ``after`` no longer holds: digest -> key name."""
    kept = {d for _, d in _entries(after)}
    return {d: name for name, d in _entries(before) if d not in kept}


def without_revoked(doc: dict[str, Any], revoked: Mapping[str, Revocation]) -> dict[str, Any]:
    """``doc`` without the keys whose secret is revoked (``doc`` itself when it holds none)."""
    keys = doc.get("keys")
    if not revoked or not isinstance(keys, list):
        return doc
    kept = [k for k in keys if entry_digest(k) not in revoked]
    return doc if len(kept) == len(keys) else {**doc, "keys": kept}


def refused(
    doc: dict[str, Any], revoked: Mapping[str, Revocation], env_keys: Collection[str] = ()
) -> list[str]:
    """A warning for each key of ``doc`` that is not loaded because its secret was revoked. ``env_keys``: the
    names of keys whose secret comes from the environment (``GatewayConfig.env_keys``), not the config file."""
    out = []
    for name, digest in _entries(doc.get("keys")):
        r = revoked.get(digest)
        if r is not None:
            fix = (
                f"Set {ENV_KEY_VARIABLE} to a new secret (or unset it)."
                if name in env_keys
                else "Give the key a new secret in the config file (or remove the key from it)."
            )
            out.append(
                f"client key {name!r} is not loaded: its secret was revoked through the admin API in policy"
                f" version {r.version} (key {r.name!r} deleted or its secret rotated away), and a revoked"
                f" secret never authenticates again. {fix}"
            )
    return out


def dropped_by_import(
    before: PolicyVersion,
    imported: PolicyVersion,
    revoked: Mapping[str, Revocation],
    env_keys: Collection[str] = (),
) -> list[str]:
    """A warning for each key in force before an edited config file was imported whose secret the imported
    version no longer holds (an edited file wins: keys created through the admin API and not in the file are
    dropped, secrets rotated through the admin API give way to the file's, or to ``POINTSMAN_API_KEY`` for the
    keys named in ``env_keys``)."""
    now = dict(_entries(imported.doc.get("keys")))
    out = []
    for name, digest in _entries(before.doc.get("keys")):
        if digest in revoked or now.get(name) == digest:
            continue
        if name not in now:
            what = (
                f"the edited config file, imported as policy version {imported.version}, does not list it (an"
                " edited file wins over the stored policy). If it was created through the admin API, create it"
                " again (POST /admin/keys) or add it to the config file."
            )
        elif name in env_keys:
            what = (
                f"{ENV_KEY_VARIABLE} gives it another secret, imported with the config file's policy as policy"
                f" version {imported.version} (it wins over secrets rotated through the admin API, as an edited"
                " file does)."
            )
        else:
            what = (
                f"the edited config file, imported as policy version {imported.version}, gives it another secret"
                " (an edited file wins over secrets rotated through the admin API)."
            )
        out.append(
            f"client key {name!r}: its secret from policy version {before.version} no longer authenticates: {what}"
        )
    return out
