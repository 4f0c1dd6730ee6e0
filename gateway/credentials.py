"""A backend's credentials as the gateway shows them: the one place that decides what is masked.

A backend carries credentials in two places: ``api_key`` and ``headers`` (an Azure-style ``api-key``, a
tenant token...). The gateway cannot tell a credential header from a harmless one, so every header value counts
as a credential: shown as ``***``, with the header names kept. Everything that shows a backend or a policy
snapshot (admin responses, the policy history, the console's pages built on them) goes through ``shown_backend``
or ``shown_policy``; a change that sends ``***`` back keeps the stored credential (``kept``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

REDACTED = "***"
"""Shown in place of credentials; sending it back in an update keeps the stored credential."""


def shown_backend(backend: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a backend (as JSON) safe to show: ``api_key`` and every header value as ``***``."""
    out = dict(backend)
    if out.get("api_key"):
        out["api_key"] = REDACTED
    headers = out.get("headers")
    if isinstance(headers, Mapping):
        out["headers"] = dict.fromkeys(headers, REDACTED)
    return out


def shown_config(cfg: BaseModel) -> dict[str, Any]:
    """A backend's config as the admin API shows it: set fields only, credentials as ``***``."""
    return shown_backend(cfg.model_dump(mode="json", exclude_defaults=True))


def shown_policy(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a policy document safe to show: backends as ``shown_backend``, no client key digests."""
    out = copy.deepcopy(dict(doc))
    backends = out.get("backends")
    if isinstance(backends, dict):
        out["backends"] = {n: shown_backend(b) if isinstance(b, Mapping) else b for n, b in backends.items()}
    for k in out.get("keys", []):
        if isinstance(k, dict):
            k.pop("key_sha256", None)
            k.pop("key", None)
    return out


def kept(new: Mapping[str, Any], old: Any) -> dict[str, Any]:
    """``new`` (a backend sent to the admin API) with every ``***`` replaced by the stored credential it stands
    for in ``old`` (header names compared case-insensitively); a ``***`` with nothing stored behind it is
    dropped, so the marker itself is never sent upstream."""
    before = old if isinstance(old, Mapping) else {}
    out = dict(new)
    if out.get("api_key") == REDACTED:
        if before.get("api_key"):
            out["api_key"] = before["api_key"]
        else:
            del out["api_key"]
    headers = out.get("headers")
    if isinstance(headers, Mapping) and REDACTED in headers.values():
        old_headers = before.get("headers")
        stored = (
            {str(n).lower(): v for n, v in old_headers.items()} if isinstance(old_headers, Mapping) else {}
        )
        out["headers"] = {
            n: stored[str(n).lower()] if v == REDACTED else v
            for n, v in headers.items()
            if v != REDACTED or str(n).lower() in stored
        }
    return out
