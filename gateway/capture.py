"""Capture on the request path: which policy applies (key, then team, then route) and the hand-off.

The domain logic (redaction, storage, feedback, export) is ``accounting.capture``; this module only knows where
policies live in the gateway's config and asks the ``CaptureService`` to take an exchange. ``offer`` is called
once a response is complete and costs a few dict lookups when nothing is captured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from accounting.accountant import Accountant
from accounting.approvals.book import ApprovalBook
from accounting.capture.config import CapturePolicy, CaptureSettings
from accounting.capture.content import CONTENT_ENDPOINTS, ExchangeContent, exchange_content
from accounting.capture.feedback import FeedbackDesk
from accounting.capture.pipeline import CaptureService
from accounting.record import ContentSource, RequestRecord
from gateway.config import GatewayConfig
from routing.eligibility import ThirdPartyConsent
from routing.policy import Decision


def not_approved_message(team: str | None, key: str | None = None) -> str:
    if team is None:
        who = f"key {key}" if key else "this key"
        return f"data capture not approved: {who} has no team (capture needs a team approved through the admin API)"
    return f"data capture not approved for team {team}"


class CaptureGate:
    """The request path's view of capture (see the module docstring)."""

    def __init__(
        self,
        config: GatewayConfig,
        accountant: Accountant,
        current: Callable[[], GatewayConfig],
        consent: Callable[[], ThirdPartyConsent],
        approvals: ApprovalBook | None = None,
    ) -> None:
        self.current = current
        self.consent = consent
        """The runtime's third-party consent (a team's content goes to no exporter without it)."""
        self.metrics = metrics = accountant.metrics
        self.service = CaptureService(
            config.capture,
            config.server.data_dir,
            self._counter(getattr(metrics, "capture_traces", None)),
            redis_url=config.redis.url,
            approvals=approvals,
        )
        self.feedback = FeedbackDesk(
            self.service, lambda: accountant.ledger.path if accountant.ledger is not None else None, metrics
        )
        self._cfg: GatewayConfig | None = None
        self._keys: dict[str, CapturePolicy] = {}
        self._teams: dict[str, CapturePolicy] = {}
        self._settings: CaptureSettings = config.capture
        obs = config.observability
        self.export_content = bool(obs.traces.endpoint and obs.traces.content) or bool(
            obs.posthog.endpoint and obs.posthog.project_key and obs.posthog.content
        )
        """Whether traces or analytics events carry content (for approved teams): fixed at start."""
        self._refresh(config)

    def _counter(self, counter: Any) -> Callable[[str, str], None] | None:
        if counter is None:
            return None
        metrics = self.metrics

        def count(route: str, outcome: str) -> None:
            counter.labels(metrics.labels.route(route), outcome).inc()

        return count

    async def start(self) -> None:
        await self.service.start()

    async def close(self) -> None:
        await self.service.close()

    def _refresh(self, cfg: GatewayConfig) -> None:
        self._keys = {k.name: k.capture for k in cfg.keys if k.capture is not None}
        self._teams = dict(cfg.capture.teams)
        if cfg.capture is not self._settings:
            self._settings = cfg.capture
            self.service.reconfigure(cfg.capture)
        self._cfg = cfg

    def capture_allowed(self, team: str | None) -> bool:
        """Whether the team has approved data capture (the hook shadow testing uses before storing raw text)."""
        return self.service.is_approved(team)

    def redact_document(self, doc: Any) -> Any:
        """A copy of a JSON document with every built-in detector and configured pattern applied: for other
        components that store captured text (e.g. a shadow pair's request and answers) before they write it."""
        return self.service.strict_redactor().redact_json(doc)

    # -- request path -----------------------------------------------------------------------------------------
    def policy_for(
        self, key: str | None, team: str | None, route_policy: CapturePolicy | None
    ) -> tuple[CapturePolicy | None, str | None]:
        cfg = self.current()
        if cfg is not self._cfg:
            self._refresh(cfg)
        if key is not None and (p := self._keys.get(key)) is not None:
            return p, "key"
        if team is not None and (p := self._teams.get(team)) is not None:
            return p, "team"
        if route_policy is not None:
            return route_policy, "route"
        return None, None

    def offer(
        self,
        rec: RequestRecord,
        decision: Decision,
        request: dict[str, Any],
        response: dict[str, Any] | None = None,
        events: Sequence[bytes] | None = None,
    ) -> None:
        rule = decision.rule
        policy, _ = self.policy_for(rec.key, rec.team, rule.cfg.capture if rule is not None else None)
        if policy is not None:
            self.service.offer(rec, policy, request, response, events)

    def attach_content(
        self,
        rec: RequestRecord,
        request: dict[str, Any],
        response: dict[str, Any] | None = None,
        events: Sequence[bytes] | None = None,
    ) -> None:
        """Let the exporters show this exchange's content, when they carry content, its team approved data
        capture and its team (or key) approves third-party processing (docs/consent.md: the exporters' endpoints,
        a tracing vendor or PostHog, are third parties as far as the gateway can tell), before the accountant
        hands the record to them. Costs one set lookup otherwise."""
        if (
            self.export_content
            and rec.endpoint in CONTENT_ENDPOINTS
            and self.service.is_approved(rec.team)
            and self.consent().approves(rec.team, rec.key)
        ):
            rec.content = ContentSource(request, response, events)

    def exported_content(self, rec: RequestRecord) -> ExchangeContent | None:
        """An exporter's view of ``rec``'s content: the conversation and answer, redacted with every detector
        (runs in the exporter's batch, off the request path)."""
        src = rec.content
        c = exchange_content(rec.endpoint, src) if src is not None else None
        if c is None:
            return None
        red = self.service.strict_redactor()
        return ExchangeContent(red.redact_json(c.input), red.redact_json(c.output))

    # -- admin ------------------------------------------------------------------------------------------------------
    def explain(self, route: str | None, team: str | None, key: str | None) -> dict[str, Any]:
        """Whether requests on ``route`` from ``team``/``key`` are captured, and if not, why."""
        cfg = self.current()
        route_cfg = next((r for r in cfg.routes if r.name == route), None) if route else None
        if key is not None and team is None:
            kc = next((k for k in cfg.keys if k.name == key), None)
            team = kc.team if kc is not None else None
        policy, source = self.policy_for(key, team, route_cfg.capture if route_cfg is not None else None)
        approval = self.service.approvals.get(team) if team is not None else None
        approved = self.service.is_approved(team)
        out: dict[str, Any] = {
            "route": route,
            "team": team,
            "key": key,
            "policy": policy.model_dump(mode="json") if policy is not None else None,
            "policy_source": source,
            "approved": approved,
            "approval": approval.as_dict() if approval is not None else None,
        }
        if policy is None:
            where = f"route {route}" if route else "this request"
            out.update(capturing=False, reason=f"no capture policy applies to {where} (route, team or key)")
        elif not approved:
            out.update(capturing=False, reason=not_approved_message(team, key))
        elif policy.sample_rate <= 0:
            out.update(capturing=False, reason=f"the {source} policy's sample_rate is 0")
        else:
            out.update(
                capturing=True, reason=f"capturing {policy.sample_rate:.0%} of requests ({source} policy)"
            )
        return out
