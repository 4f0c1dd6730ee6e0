"""Which targets may serve one request: the per-request constraint routing applies when it builds a decision.

A client key scoped to some models (``models: ["gpt-*"]``) may be served only by those models, whatever a rule
would pick: its targets (and so canary and promotion shares, which are target weights), its fallbacks and the
retries that cycle through them. ``Policy.decide`` drops every ineligible model, re-normalises the remaining
targets' weights and keeps the rule's order; when nothing eligible is left it raises ``OutOfScope`` (403) naming
the key's scope. An unscoped key has no ``Eligibility`` at all (``None``): the hot path allocates nothing.

The object is immutable and built once per key (``gateway.keys.ClientKey.scope``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from routing.errors import RoutingError
from routing.models import ResolvedModel

KEY_SCOPE = "key_scope"
"""Why a model was removed: outside the key's ``models``."""


class OutOfScope(RoutingError):
    """Every model the matching rule could use lies outside what this request may use."""

    status = 403
    type = "permission_error"
    code = "model_not_in_key_scope"


@dataclass(frozen=True, slots=True)
class Eligibility:
    key: str
    """The key's name (for messages)."""
    models: tuple[str, ...]
    """The key's model globs: a model may serve only when its name matches one."""

    def excluded(self, m: ResolvedModel) -> str | None:
        """Why ``m`` may not serve this request (``KEY_SCOPE``), or None when it may."""
        name = m.name
        for pat in self.models:
            if fnmatchcase(name, pat):
                return None
        return KEY_SCOPE

    def describe(self) -> dict[str, object]:
        """What ``explain`` shows."""
        return {"key": self.key, "models": list(self.models)}

    def refusal(self, route: str, removed: list[str]) -> OutOfScope:
        scope = ", ".join(self.models) or "(none)"
        would = ", ".join(dict.fromkeys(removed)) or "no model"
        return OutOfScope(
            f"This API key ({self.key}) may use only the models {scope}; route `{route}` would send this "
            f"request to {would}, outside that scope."
        )
