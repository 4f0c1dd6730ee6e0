"""Accounting refusals. Each declares its HTTP face through ``api_error()``; the gateway renders it
(OpenAI error shape) in ``gateway.errors.to_api_error``."""

from __future__ import annotations


class AccountingError(Exception):
    status = 429
    type = "rate_limit_error"
    code: str | None = None

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def api_error(self) -> tuple[int, str, str, str | None, dict[str, str]]:
        return self.status, self.message, self.type, self.code, self.headers


class BudgetExceeded(AccountingError):
    """A key or team budget for the current day/month is spent, or cannot cover what the request may cost on
    top of what is spent and held by requests in flight: 429 ``insufficient_quota``."""

    type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(
        self,
        scope: str,
        name: str,
        period: str,
        limit: str,
        spent: str,
        retry_after_s: int,
        reserved: str | None = None,
        asked: str | None = None,
    ) -> None:
        self.scope = scope
        self.name = name
        self.period = period
        reset = f"It resets at the start of the next UTC {'day' if period == 'daily' else 'month'}."
        if asked is None:
            message = (
                f"You exceeded your current quota: the {period} budget of {scope} '{name}' (${limit}) is spent "
                f"(${spent} used). {reset}"
            )
        else:
            message = (
                f"You exceeded your current quota: the {period} budget of {scope} '{name}' (${limit}) cannot "
                f"cover this request, which may cost up to ${asked} (${spent} used, ${reserved} held by "
                f"requests in flight). Lower max_tokens, or retry when requests in flight have finished. {reset}"
            )
        super().__init__(message, {"retry-after": str(retry_after_s)})


class RateLimited(AccountingError):
    """A key's requests/min or tokens/min limit is reached: 429 ``rate_limit_exceeded``."""

    code = "rate_limit_exceeded"

    def __init__(self, key: str, limit: str, allowed: int, retry_after_s: int) -> None:
        self.key = key
        self.limit = limit
        what = "requests" if limit == "rpm" else "tokens"
        super().__init__(
            f"Rate limit reached for key '{key}': {allowed} {what} per minute. Retry after {retry_after_s}s.",
            {"retry-after": str(retry_after_s)},
        )


class SharedStateUnavailable(AccountingError):
    """Redis is unreachable and ``redis.on_unavailable`` is ``fail_closed``: refuse rather than guess."""

    code = "shared_state_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "Rate limits and budgets cannot be checked right now (shared state unavailable); retry shortly.",
            {"retry-after": "1"},
        )


class ModelUnpriced(AccountingError):
    """A model without a price would serve a request that a dollar budget covers (``accounting.on_unpriced:
    reject``): 403 ``model_unpriced``, naming the model and the fix."""

    status = 403
    type = "invalid_request_error"
    code = "model_unpriced"

    def __init__(self, model: str, budget: str) -> None:
        self.model = model
        super().__init__(
            f"The model `{model}` has no price, and {budget} has a dollar budget, so its spend could not be "
            f"counted. Ask the operator to set accounting.pricing[{model!r}] (input_per_mtok, output_per_mtok), "
            "or to allow unpriced models with accounting.on_unpriced: allow."
        )


class LedgerUnavailable(AccountingError):
    """The ledger's database did not answer a report or lookup (unreachable, or not within
    ``ledger.call_timeout_s``): 503 ``ledger_unavailable``. Requests are never refused for it."""

    status = 503
    type = "server_error"
    code = "ledger_unavailable"
