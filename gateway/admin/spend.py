"""``GET /admin/spend``: totals and breakdowns of the spend ledger (JSON or CSV); ``GET /admin/ledger``: its state."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from accounting.errors import LedgerUnavailable
from accounting.money import usd
from accounting.spend_report import DIMENSIONS, FILTERS, SPEND_FIELDS, parse_time, spend_csv
from gateway.deps import get_state
from gateway.errors import ApiError, bad_request, to_api_error
from gateway.state import GatewayState


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {f: 0 for f in SPEND_FIELDS}
    cost = Decimal(0)
    for r in rows:
        for f in SPEND_FIELDS:
            if f != "cost_usd":
                out[f] += r[f]
        cost += Decimal(r["cost_usd"])
    out["cost_usd"] = usd(cost)
    return out


_PARAMS = frozenset({"group_by", "from", "to", "format", *FILTERS})
"""The query parameters ``GET /admin/spend`` takes."""


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get(
        "/spend",
        summary="Spend totals and breakdowns",
        description=(
            "Totals from the durable ledger over ``from <= time < to`` (unix seconds, ISO date or datetime; "
            "a bare date's ``to`` covers that whole UTC day), grouped by any of "
            + ", ".join(DIMENSIONS)
            + ". ``model`` is the served (upstream) model. Filters narrow the rows. "
            "Every request finished before the call is included."
        ),
        response_model=None,
        responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
    )
    async def spend(
        request: Request,
        st: Annotated[GatewayState, Depends(get_state)],
        group_by: Annotated[str, Query(description="Comma-separated dimensions, e.g. task,model")] = "",
        from_: Annotated[str | None, Query(alias="from", description="Start (inclusive)")] = None,
        to: Annotated[str | None, Query(description="End (exclusive)")] = None,
        format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
        key: str | None = None,
        team: str | None = None,
        task: str | None = None,
        route: str | None = None,
        model: str | None = None,
        requested_model: str | None = None,
        backend: str | None = None,
        outcome: str | None = None,
    ) -> Response | dict[str, Any]:
        for name in request.query_params:
            if name not in _PARAMS:  # a misspelt filter must not answer with the unfiltered totals
                raise bad_request(
                    f"unknown query parameter {name!r}; filters are {', '.join(FILTERS)}, with group_by, from, "
                    "to and format",
                    name,
                    "invalid_value",
                )
        groups = [g.strip() for g in group_by.split(",") if g.strip()]
        for g in groups:
            if g not in DIMENSIONS:
                raise bad_request(
                    f"unknown group_by {g!r}; use any of {', '.join(DIMENSIONS)}", "group_by", "invalid_value"
                )
        if len(set(groups)) != len(groups):
            raise bad_request("group_by names a dimension twice", "group_by", "invalid_value")
        try:
            since = parse_time(from_)
            until = parse_time(to, end=True)
        except ValueError:
            raise bad_request(
                "from/to must be unix seconds, an ISO date or an ISO datetime", "from", "invalid_value"
            ) from None
        filters = {
            k: v
            for k, v in (
                ("key", key),
                ("team", team),
                ("task", task),
                ("route", route),
                ("model", model),
                ("requested_model", requested_model),
                ("backend", backend),
                ("outcome", outcome),
            )
            if v
        }
        try:
            rows = await st.accountant.spend(groups, since, until, filters)
        except LookupError as exc:
            raise ApiError(404, str(exc), "invalid_request_error", "ledger_disabled") from None
        except LedgerUnavailable as exc:
            raise to_api_error(exc) from None
        if format == "csv":
            return Response(
                spend_csv(groups, rows),
                media_type="text/csv; charset=utf-8",
                headers={"content-disposition": 'attachment; filename="pointsman-spend.csv"'},
            )
        return {
            "object": "spend",
            "group_by": groups,
            "from": since,
            "to": until,
            "filters": filters,
            "total": totals(rows),
            "data": rows,
            "self_hosted_pricing": st.accountant.measured.report(),
        }

    @router.get(
        "/ledger",
        summary="Ledger status",
        description=(
            "The ledger's backend and file; with SQLite, ``rollup_backlog_rows``: rows its hourly and daily "
            "rollups did not hold yet at the writer's last pass (reports read those raw; a ledger written before "
            "the rollups is rolled up in the background after its first start); with PostgreSQL, the database (host, port, name: never credentials), "
            "whether the last shipping pass reached it, the local outbox (unshipped rows and its bound, "
            "``ledger.outbox_max_rows``; ``full`` while new rows are refused), rows shipped and failed passes."
        ),
    )
    async def ledger(st: Annotated[GatewayState, Depends(get_state)]) -> dict[str, Any]:
        return st.accountant.ledger_status()

    return router
