"""Which targets may serve one request: the per-request constraint routing applies when it builds a decision.

Two things constrain a request, through this one mechanism:

- a client key scoped to some models (``models: ["gpt-*"]``) may be served only by those models;
- a team (or key) that has not approved third-party processing (docs/consent.md) may be served only by in-house
  backends: none of its request data may reach a backend with ``third_party: true``.

Whatever a rule would pick, ``Policy.decide`` drops every ineligible model from its targets (and so canary and
promotion shares, which are target weights), its fallbacks and the retries that cycle through them, re-normalises
the remaining targets' weights and keeps the rule's order. When nothing eligible is left it raises the refusal:
``ConsentRequired`` (403 ``third_party_processing_not_approved``, saying what to approve and where) when consent
took a model out, else ``OutOfScope`` (403 ``model_not_in_key_scope``) naming the key's scope. The shadow hub
applies the same constraint to shadow candidates and to the judge and embedding calls comparators make.

An unscoped key of an approved team has no ``Eligibility`` at all (``None``): the hot path allocates nothing.
``ClientKey.scope`` is built once per key; ``ThirdPartyConsent`` (one per runtime) picks, per request, the key's
scope or its in-house variant (built once per key and subject, then cached).
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Final, Protocol
from urllib.parse import quote

from accounting.approvals.store import KEY, TEAM, THIRD_PARTY
from routing.errors import RoutingError
from routing.models import ResolvedModel

KEY_SCOPE = "key_scope"
"""Why a model was removed: outside the key's ``models``."""
NOT_APPROVED = "third_party_not_approved"
"""Why a model was removed: its backend is a third party and the team (or key) has not approved that."""


class OutOfScope(RoutingError):
    """Every model the matching rule could use lies outside what this request may use."""

    status = 403
    type = "permission_error"
    code = "model_not_in_key_scope"


class ConsentRequired(RoutingError):
    """Only third-party backends could serve this request, and its team (or key) has not approved that."""

    status = 403
    type = "permission_error"
    code = "third_party_processing_not_approved"


def approve_where(scope: str, name: str) -> str:
    """Where an admin approves third-party processing for a team or key (for messages)."""
    if scope == TEAM:
        return (
            f"PUT /admin/teams/{quote(name, safe='')}/consent, `pointsman consent approve {name} --by WHO`, "
            "or the console's Consent page"
        )
    return (
        f"PUT /admin/keys/{quote(name, safe='')}/consent, `pointsman consent approve --key {name} --by WHO`, "
        "or the console's Consent page"
    )


class Eligibility:
    """Which targets may serve one request: the key's model scope and, without consent, the in-house rule."""

    __slots__ = ("key", "models", "third_party", "subject")

    key: Final[str]
    """The key's name (for messages)."""
    models: Final[tuple[str, ...] | None]
    """The key's model globs: a model may serve only when its name matches one (None: any model)."""
    third_party: Final[frozenset[str] | None]
    """Backends that may not serve: the third-party ones, when the team or key has not approved third-party
    processing (None: no such constraint)."""
    subject: Final[tuple[str, str]]
    """With ``third_party``: whose approval is missing, ``("team", name)`` or ``("key", name)``."""

    def __init__(
        self,
        key: str,
        models: tuple[str, ...] | None = None,
        third_party: frozenset[str] | None = None,
        subject: tuple[str, str] = ("", ""),
    ) -> None:
        self.key = key
        self.models = models
        self.third_party = third_party
        self.subject = subject

    def _key(self) -> tuple[str, tuple[str, ...] | None, frozenset[str] | None, tuple[str, str]]:
        """What it is compared and hashed by."""
        return (self.key, self.models, self.third_party, self.subject)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Eligibility):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def excluded(self, m: ResolvedModel) -> str | None:
        """Why ``m`` may not serve this request (``KEY_SCOPE``, ``NOT_APPROVED``), or None when it may."""
        models = self.models
        if models is not None:
            name = m.name
            if not any(fnmatchcase(name, pat) for pat in models):
                return KEY_SCOPE
        third = self.third_party
        if third is not None and m.backend in third:
            return NOT_APPROVED
        return None

    def reaches_third_party(self, m: ResolvedModel) -> bool:
        """Whether calling ``m`` would send this request's data to a third party it may not reach (shadow
        candidates: the key scope does not apply to them, consent does)."""
        return self.third_party is not None and m.backend in self.third_party

    def in_house(self) -> Eligibility | None:
        """The consent part alone (for judge and embedding calls made about this request), or None."""
        if self.third_party is None:
            return None
        if self.models is None:
            return self
        return Eligibility(self.key, None, self.third_party, self.subject)

    def describe(self) -> dict[str, object]:
        """What ``explain`` shows."""
        out: dict[str, object] = {"key": self.key}
        if self.models is not None:
            out["models"] = list(self.models)
        if self.third_party is not None:
            scope, name = self.subject
            out["third_party"] = {
                "approved": False,
                scope: name,
                "excluded_backends": sorted(self.third_party),
                "approve_at": approve_where(scope, name),
            }
        return out

    def refusal(self, route: str, removed: Sequence[tuple[str, str]]) -> RoutingError:
        """The error when nothing eligible is left: consent's when consent removed any model, else the scope's."""
        would = ", ".join(dict.fromkeys(name for name, _ in removed)) or "no model"
        if any(why == NOT_APPROVED for _, why in removed):
            scope, name = self.subject
            who = f"team {name}" if scope == TEAM else f"API key {name}"
            return ConsentRequired(
                f"The {who} has not approved processing of its request data by third parties, and route "
                f"`{route}` has no in-house model for this request (it would go to {would}). Please accept "
                f"AI-based data processing by third parties: an admin approves it for {who} with "
                f"{approve_where(scope, name)}."
            )
        scope_text = ", ".join(self.models or ()) or "(none)"
        return OutOfScope(
            f"This API key ({self.key}) may use only the models {scope_text}; route `{route}` would send this "
            f"request to {would}, outside that scope."
        )


class ConsentView(Protocol):
    """Recorded approvals (``accounting.approvals.book.ApprovalBook``)."""

    @property
    def known(self) -> bool:
        """Whether the approvals have been read at all (unknown: nobody is approved)."""

    def decided(self, purpose: str, scope: str, name: str | None) -> bool | None: ...


class ThirdPartyConsent:
    """Whether a key's requests may reach third-party backends, and its in-house constraint when they may not.

    The decision, per request: the key's own recorded decision, else its team's, else the default
    (``consent.third_party``: approved unless ``required``). Before approvals could ever be read (a shared store
    unreachable since start) nobody is approved, unless ``unknown_approves`` and consent is not required (the
    default then applies). One per runtime (the backends' ``third_party`` flags are its config)."""

    __slots__ = ("backends", "required", "unknown_approves", "view", "_in_house")

    def __init__(
        self,
        backends: frozenset[str],
        required: bool,
        view: ConsentView | None,
        unknown_approves: bool = False,
    ) -> None:
        self.backends = backends
        """Backends with ``third_party: true``."""
        self.required = required
        self.unknown_approves = unknown_approves and not required
        self.view = view
        self._in_house: dict[tuple[str, str, str], Eligibility] = {}

    def decision(self, key: str, team: str | None) -> tuple[bool, str]:
        """(approved, where the decision comes from: ``key``, ``team``, ``default`` or ``unknown``)."""
        view = self.view
        if view is None:
            return True, "default"
        if not view.known:
            return self.unknown_approves, "unknown"
        d = view.decided(THIRD_PARTY, KEY, key)
        if d is not None:
            return d, KEY
        d = view.decided(THIRD_PARTY, TEAM, team)
        if d is not None:
            return d, TEAM
        return not self.required, "default"

    def approves(self, team: str | None, key: str | None) -> bool:
        """Whether a team's (or key's) request data may go to a third party (dataset exports ask per request)."""
        return self.decision(key or "", team)[0]

    def eligibility(self, key: str, team: str | None, scope: Eligibility | None) -> Eligibility | None:
        """The request's constraint: the key's ``scope`` when it may reach third parties (or none exist), else
        that scope plus the in-house rule."""
        if not self.backends:
            return scope
        approved, source = self.decision(key, team)
        if approved:
            return scope
        subject = (KEY, key) if source == KEY or team is None else (TEAM, team)
        cache_key = (key, *subject)
        e = self._in_house.get(cache_key)
        if e is None:
            e = Eligibility(key, scope.models if scope is not None else None, self.backends, subject)
            if len(self._in_house) < 100_000:  # bounded by the keys a runtime has; a guard all the same
                self._in_house[cache_key] = e
        return e
