"""Console logins: signed session tokens (a cookie) and their CSRF tokens. Pure: no I/O, the clock is passed in.

A token is ``payload.signature``: the payload names the role (``admin`` or ``read_only``), the expiry and a
random nonce; the signature is an HMAC-SHA256 under a secret derived from the admin key and the read-only key,
so every worker agrees without shared state and changing either key ends every session. The CSRF token of a
session is an HMAC of its nonce: forms carry it, and a change without it is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "read_only"]
COOKIE = "pointsman_console"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    role: Role
    expires: float
    nonce: str

    @property
    def can_change(self) -> bool:
        return self.role == "admin"


class Sessions:
    def __init__(self, admin_key: str, read_only_key: str | None, ttl_s: float) -> None:
        material = f"pointsman-console-v1\x1f{read_only_key or ''}".encode()
        self._secret = hmac.new(admin_key.encode(), material, hashlib.sha256).digest()
        self.ttl_s = ttl_s

    def _sign(self, data: bytes) -> str:
        return _b64(hmac.new(self._secret, data, hashlib.sha256).digest())

    def issue(self, role: Role, now: float) -> str:
        payload = json.dumps({"r": role, "e": now + self.ttl_s, "n": secrets.token_urlsafe(16)}).encode()
        return f"{_b64(payload)}.{self._sign(payload)}"

    def read(self, token: str | None, now: float) -> Session | None:
        """The session a token stands for, or None (missing, forged, malformed or expired)."""
        if not token or token.count(".") != 1:
            return None
        body, sig = token.split(".")
        try:
            payload = _unb64(body)
        except ValueError:
            return None
        if not hmac.compare_digest(sig, self._sign(payload)):
            return None
        try:
            doc = json.loads(payload)
            role, expires, nonce = doc["r"], float(doc["e"]), str(doc["n"])
        except (ValueError, KeyError, TypeError):
            return None
        if role not in ("admin", "read_only") or expires <= now:
            return None
        return Session(role, expires, nonce)

    def csrf(self, session: Session) -> str:
        return self._sign(b"csrf\x1f" + session.nonce.encode())

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf(session))


def login_role(admin_key: str | None, read_only_key: str | None, presented: str) -> Role | None:
    """Which role a key presented at login gets (compared in constant time), or None."""
    if admin_key and hmac.compare_digest(presented.encode(), admin_key.encode()):
        return "admin"
    if read_only_key and hmac.compare_digest(presented.encode(), read_only_key.encode()):
        return "read_only"
    return None
