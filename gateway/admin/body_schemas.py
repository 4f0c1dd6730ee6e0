"""Admin request bodies: JSON body parsing and the OpenAPI request-body schemas of the admin endpoints."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel, TypeAdapter

from gateway.errors import ApiError
from wire.config_model import described


async def json_body(request: Request) -> Any:
    """The request body parsed as JSON. Bodies are validated as policy documents (like the config file), not
    by FastAPI, so that errors carry the document path of the failing field."""
    raw = await request.body()
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise ApiError(
            400, "The request body is not valid JSON.", "invalid_request_error", "invalid_json"
        ) from None


def json_object(doc: Any, what: str = "The request body") -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ApiError(400, f"{what} must be a JSON object.", "invalid_request_error", "invalid_value")
    return doc


def inline_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its ``$defs`` references inlined (for ``openapi_extra``, which has no ``$defs``)."""
    schema = copy.deepcopy(schema)
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = resolve(copy.deepcopy(defs[ref[len("#/$defs/") :]]))
                return {**target, **{k: resolve(v) for k, v in node.items() if k != "$ref"}}
            out = {k: resolve(v) for k, v in node.items()}
            disc = out.get("discriminator")
            if isinstance(disc, dict):
                disc.pop("mapping", None)
            return out
        if isinstance(node, list):
            return [resolve(x) for x in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def model_schema(model: type[BaseModel] | Any) -> dict[str, Any]:
    """``model``'s JSON schema (a model class, or any type a ``TypeAdapter`` takes), with the configuration
    models' field descriptions."""
    described()
    if isinstance(model, type) and issubclass(model, BaseModel):
        return inline_schema(model.model_json_schema())
    return inline_schema(TypeAdapter(model).json_schema())


def named(schema: dict[str, Any], what: str) -> dict[str, Any]:
    """``schema`` plus a required ``name``."""
    return {
        "allOf": [
            {
                "type": "object",
                "properties": {"name": {"type": "string", "description": f"Name of the {what}."}},
                "required": ["name"],
            },
            schema,
        ]
    }


def body_doc(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON request body."""
    body: dict[str, Any] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if description:
        body["description"] = description
    return {"requestBody": body}
