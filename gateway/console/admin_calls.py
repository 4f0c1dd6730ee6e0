"""The console's way to the admin API: in-process requests to the same FastAPI app, with the admin key, so
every page shows and every form changes exactly what ``/admin`` does (one home for each operation)."""

from __future__ import annotations

from typing import Any

import httpx


class AdminError(Exception):
    """The admin API refused a change: ``message`` and ``param`` (the field path, when it names one)."""

    def __init__(
        self, status: int, message: str, param: str | None, problems: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.problems = problems or ([(param, message)] if param else [])
        """Every failing (path, message) the config check reported (a policy change names them all)."""


class AdminCalls:
    def __init__(self, app: Any, admin_key: str) -> None:
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://console.internal",
            headers={"authorization": f"Bearer {admin_key}"},
            timeout=30,
        )

    async def __aenter__(self) -> AdminCalls:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        resp = await self._client.request(method, "/admin" + path, **kw)
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                problems = [(str(p["path"]), str(p["message"])) for p in err.get("problems") or []]
                raise AdminError(resp.status_code, str(err.get("message")), err.get("param"), problems)
            except (ValueError, KeyError, TypeError):
                raise AdminError(resp.status_code, resp.text[:500], None) from None
        return resp

    async def get(self, path: str, **params: Any) -> Any:
        return (
            await self.request("GET", path, params={k: v for k, v in params.items() if v is not None})
        ).json()

    async def send(self, method: str, path: str, body: Any = None) -> Any:
        return (await self.request(method, path, json=body)).json()
