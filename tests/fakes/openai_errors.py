"""Error answers and response headers as the OpenAI API sends them.

Every answer carries ``x-request-id`` (``req_…``), ``openai-version``, ``openai-processing-ms`` and the
``x-ratelimit-*`` headers; errors have the API's bodies (type and code as the real API spells them), and a
429 carries ``retry-after`` and ``retry-after-ms`` as well.
"""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web

_ids = itertools.count(1)


def common_headers(remaining: int = 9999) -> dict[str, str]:
    return {
        "x-request-id": f"req_fake{next(_ids):024x}",
        "openai-version": "2020-10-01",
        "openai-organization": "org-fake",
        "openai-processing-ms": "7",
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": str(remaining),
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-limit-tokens": "10000000",
        "x-ratelimit-remaining-tokens": "9999990",
        "x-ratelimit-reset-tokens": "0s",
    }


def error_body(status: int, model: str) -> dict[str, Any]:
    """The API's error object for ``status``."""
    message: str
    type_: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    if status == 401:
        message, code = (
            (
                "Incorrect API key provided: sk-upst***cret. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            ),
            "invalid_api_key",
        )
    elif status == 403:
        message, code = "Project `proj_fake` does not have access to model `{model}`", "model_not_found"
    elif status == 404:
        message, code = (
            f"The model `{model}` does not exist or you do not have access to it.",
            "model_not_found",
        )
    elif status == 429:
        message, type_, code = (
            f"Rate limit reached for {model} in organization org-fake on requests per min (RPM): Limit 3, Used 3, "
            "Requested 1. Please try again in 1s. Visit https://platform.openai.com/account/rate-limits to learn more.",
            "requests",
            "rate_limit_exceeded",
        )
    elif status == 503:
        message, type_ = "The engine is currently overloaded, please try again later.", "server_error"
    elif status >= 500:
        message, type_ = (
            f"The server had an error while processing your request. Sorry about that! (fake {status})",
            "server_error",
        )
    else:
        message = f"fake {status}"
    return {
        "error": {"message": message.replace("{model}", model), "type": type_, "param": param, "code": code}
    }


def error_response(status: int, model: str, retry_after_s: float = 1.0) -> web.Response:
    headers: dict[str, str] = {}
    if status == 429:
        headers = {
            **common_headers(remaining=0),
            "retry-after": str(int(retry_after_s)),
            "retry-after-ms": str(int(retry_after_s * 1000)),
        }
    return web.json_response(error_body(status, model), status=status, headers=headers)
