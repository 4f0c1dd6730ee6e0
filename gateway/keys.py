"""Client API keys: stored as SHA-256 digests, looked up by digest, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Final

from gateway.config import KeyConfig
from routing.eligibility import Eligibility


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    return "sk-pm-" + secrets.token_urlsafe(32)


class ClientKey:
    """A client key as the request path checks it: its hash, team, default tags and what it may use."""

    __slots__ = ("name", "key_sha256", "team", "tags", "models", "allowed_tags", "scope")

    name: Final[str]
    key_sha256: Final[str]
    team: Final[str | None]
    tags: Final[dict[str, str]]
    models: Final[tuple[str, ...] | None]
    allowed_tags: Final[dict[str, tuple[str, ...]] | None]
    scope: Final[Eligibility | None]
    """What may serve this key's requests (routing applies it to targets, fallbacks and retries); None for an
    unscoped key. Built once here, so the request path allocates nothing for it."""

    def __init__(
        self,
        name: str,
        key_sha256: str,
        team: str | None = None,
        tags: dict[str, str] | None = None,
        models: tuple[str, ...] | None = None,
        allowed_tags: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.name = name
        self.key_sha256 = key_sha256
        self.team = team
        self.tags = {} if tags is None else tags
        self.models = models
        self.allowed_tags = allowed_tags
        self.scope = None if models is None else Eligibility(name, models)

    def may_use(self, model: str) -> bool:
        if self.models is None:
            return True
        return any(fnmatchcase(model, pat) for pat in self.models)

    def tags_allowed(self, tags: dict[str, str]) -> str | None:
        """None when allowed, else the offending tag name."""
        if self.allowed_tags is None:
            return None
        for k, allowed in self.allowed_tags.items():
            v = tags.get(k)
            if v is not None and not any(fnmatchcase(v, a) for a in allowed):
                return k
        return None

    @classmethod
    def from_config(cls, k: KeyConfig) -> ClientKey:
        digest = k.key_sha256 or hash_key(k.key or "")
        return cls(
            name=k.name,
            key_sha256=digest,
            team=k.team,
            tags=dict(k.tags),
            models=tuple(k.models) if k.models is not None else None,
            allowed_tags={t: tuple(v) for t, v in k.allowed_tags.items()} if k.allowed_tags else None,
        )


_MAX_REMEMBERED = 4096
"""Secrets a ``KeyRing`` remembers before it starts over."""


class KeyRing:
    """The client keys in force (a new ring with each runtime: a revoked key is gone with the old ring)."""

    def __init__(self, keys: Iterable[ClientKey]) -> None:
        self.by_hash = {k.key_sha256: k for k in keys}
        self._by_secret: dict[str, ClientKey] = {}

    def __len__(self) -> int:
        return len(self.by_hash)

    def lookup(self, secret: str) -> ClientKey | None:
        """The key whose secret this is. A secret that named a key is remembered (a client presents the same one
        with every request, and hashing it costs more than the rest of authentication); wrong secrets are not,
        so a flood of them cannot grow or evict anything. At most ``_MAX_REMEMBERED``."""
        key = self._by_secret.get(secret)
        if key is not None:
            return key
        digest = hash_key(secret)
        key = self.by_hash.get(digest)
        if key is None or not hmac.compare_digest(key.key_sha256, digest):
            return None
        if len(self._by_secret) >= _MAX_REMEMBERED:
            self._by_secret.clear()
        self._by_secret[secret] = key
        return key


def presented_key(authorization: str | None, api_key: str | None, x_api_key: str | None = None) -> str | None:
    """The secret a caller presented: ``Authorization: Bearer <key>``, else the ``api-key`` header, else
    Anthropic's ``x-api-key`` (Messages API clients). The one parser for every path (inference, the public and
    admin APIs, route explanations)."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if token and scheme.lower() == "bearer":
            return token
    if api_key:
        return api_key.strip() or None
    if x_api_key:
        return x_api_key.strip() or None
    return None


def admin_ok(expected: str | None, presented: str | None) -> bool:
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())
