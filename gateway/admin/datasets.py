"""``GET /admin/datasets/export``: captured traffic as an OpenAI fine-tuning dataset (zip, or JSON).

The export itself is ``accounting.capture.export``; this handler parses the filters, gathers judged shadow pairs
(``gateway.dataset_pairs``), runs the export in a thread into a temporary directory and returns it as a zip
archive (``manifest.json``, ``train.jsonl``, ``test.jsonl``, ``preferences_train.jsonl``,
``preferences_test.jsonl``) or, with ``format=json``, as one JSON object (small exports, scripts, tests).
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from accounting.capture.config import BUILTIN_DETECTORS
from accounting.capture.export import FILES, DatasetExporter, ExportFilters, FeedbackCondition
from accounting.capture.redact import Redactor
from gateway.admin.capture import parse_when
from gateway.dataset_pairs import store_pairs
from gateway.deps import get_state
from gateway.errors import bad_request
from gateway.state import GatewayState

State = Annotated[GatewayState, Depends(get_state)]
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def filters_from_query(
    task: str | None,
    since: str | None,
    until: str | None,
    team: str | None,
    route: str | None,
    min_feedback: list[str],
    from_shadow_wins: bool,
    shadow_winner: str,
    holdout: float,
    salt: str,
    preferences: bool,
    limit: int | None,
    in_house: bool = False,
) -> ExportFilters:
    try:
        conds = tuple(FeedbackCondition.parse(c) for c in min_feedback)
    except ValueError as exc:
        raise bad_request(str(exc), "min_feedback", "invalid_value") from None
    return ExportFilters(
        task=task,
        since=parse_when(since),
        until=parse_when(until, True, "until"),
        team=team,
        route=route,
        min_feedback=conds,
        from_shadow_wins=from_shadow_wins,
        shadow_winner=shadow_winner,
        holdout=holdout,
        split_salt=salt,
        preferences=preferences,
        limit=limit,
        in_house=in_house,
    )


_SPOOL_BYTES = 64 * 1024 * 1024
"""An export is built in memory up to this size, then on disk (a ``SpooledTemporaryFile``)."""


def _zip(directory: Path) -> IO[bytes]:
    buf: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # closed by _chunks
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in ("manifest.json", *FILES):
            z.write(directory / name, name)
    buf.seek(0)
    return buf


def _chunks(buf: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := buf.read(256 * 1024):
            yield chunk
    finally:
        buf.close()


def _as_json(directory: Path, manifest: dict[str, Any]) -> IO[bytes]:
    """The export as one JSON document, ``{"manifest": ..., "files": {name: [record, ...]}}``, written like the zip
    to a spooled file (closed by ``_chunks``): each line of the files is a JSON value already (the exporter wrote
    it with orjson), so it is copied into its array as it is, never parsed, and the document's size is bounded by
    the disk, not by memory."""
    buf: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)
    buf.write(b'{"manifest":' + orjson.dumps(manifest) + b',"files":{')
    for i, name in enumerate(FILES):
        buf.write((b"," if i else b"") + orjson.dumps(name) + b":[")
        sep = b""
        with open(directory / name, "rb") as fh:
            for line in fh:
                record = line.strip()
                if record:
                    buf.write(sep + record)
                    sep = b","
        buf.write(b"]")
    buf.write(b"}}")
    buf.seek(0)
    return buf


def build_router() -> APIRouter:
    router = APIRouter(tags=["capture"])

    @router.get(
        "/datasets/export",
        summary="Export captured traffic as an OpenAI fine-tuning dataset",
        description=(
            "Supervised examples (chat format, with tools) split into train/test by a stable hash of the prompt, "
            "preference pairs (demonstrations over original answers; judged shadow winners over losers), and a "
            "manifest. ``min_feedback`` (repeatable) keeps requests whose latest feedback on a metric satisfies "
            "e.g. ``helpful>=1``; ``from_shadow_wins`` takes examples from shadow pairs an llm_judge decided, "
            "answering with the winner. Times: unix seconds, ISO date/datetime, or an age such as ``7d``."
        ),
        response_model=None,
        responses={200: {"content": {"application/zip": {}, "application/json": {}}}},
    )
    async def export(
        st: State,
        task: str | None = None,
        since: str | None = None,
        until: str | None = None,
        team: str | None = None,
        route: str | None = None,
        min_feedback: Annotated[list[str] | None, Query(description="e.g. helpful>=1 (repeatable)")] = None,
        from_shadow_wins: bool = False,
        shadow_winner: Annotated[str, Query(pattern="^(any|candidate|primary)$")] = "any",
        holdout: Annotated[float, Query(ge=0, le=0.5)] = 0.1,
        salt: Annotated[str, Query(min_length=1, max_length=128)] = "pointsman",
        preferences: bool = True,
        limit: Annotated[int | None, Query(ge=1, le=100_000_000)] = None,
        format: Annotated[str, Query(pattern="^(zip|json)$")] = "zip",
        in_house: Annotated[
            bool,
            Query(
                description="The dataset stays in-house: include teams without third-party processing consent "
                "(left out otherwise: the files are made for a provider's fine-tuning)."
            ),
        ] = False,
    ) -> Response:
        f = filters_from_query(
            task,
            since,
            until,
            team,
            route,
            min_feedback or [],
            from_shadow_wins,
            shadow_winner,
            holdout,
            salt,
            preferences,
            limit,
            in_house,
        )
        svc = st.capture.service
        await st.approvals.refresh()
        await svc.settle()
        needed = f.from_shadow_wins or f.preferences
        exporter = DatasetExporter(
            svc.store,
            Redactor(BUILTIN_DETECTORS, svc.named.values()),
            store_pairs(st, asyncio.get_running_loop()) if needed else None,
            st.runtime.consent.approves,
        )
        with tempfile.TemporaryDirectory(prefix="pointsman-export-") as tmp:
            result = await asyncio.to_thread(exporter.export, f, tmp)
            if format == "json":
                doc = await asyncio.to_thread(_as_json, result.directory, result.manifest)
                return StreamingResponse(_chunks(doc), media_type="application/json")
            buf = await asyncio.to_thread(_zip, result.directory)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"dataset-{_FILENAME_UNSAFE.sub('_', task or 'all')[:64]}-{stamp}.zip"  # task is client input
        return StreamingResponse(
            _chunks(buf),
            media_type="application/zip",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    return router
