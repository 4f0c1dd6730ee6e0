"""A deterministic JSON value that conforms to a JSON schema (what a fake model answers for structured output
and tool arguments).

Covers what client libraries generate from zod, pydantic and TypedDicts: objects (every property, required or
not), arrays (one item), enums and consts (the first value), ``anyOf``/``oneOf``/``allOf`` (the first
branch that is not null), ``$ref`` into ``$defs``/``definitions``, and nullable type lists.
"""

from __future__ import annotations

from typing import Any

STRING = "sample"


def sample(schema: Any, root: Any = None, depth: int = 0) -> Any:
    if root is None:
        root = schema
    if not isinstance(schema, dict) or depth > 32:
        return None
    if "$ref" in schema:
        return sample(_resolve(root, schema["$ref"]), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            concrete = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
            return sample((concrete or branches)[0], root, depth + 1)
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            v = sample(part, root, depth + 1)
            if isinstance(v, dict):
                merged.update(v)
        return merged
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t is None:
        t = "object" if "properties" in schema else "string"
    if t == "object":
        props = schema.get("properties") or {}
        return {name: sample(sub, root, depth + 1) for name, sub in props.items()}
    if t == "array":
        items = schema.get("items")
        n = max(1, int(schema.get("minItems") or 1))
        return [sample(items, root, depth + 1) for _ in range(n)] if isinstance(items, dict) else []
    if t == "string":
        return STRING
    if t == "integer":
        return max(1, int(schema.get("minimum") or 1))
    if t == "number":
        return 1.5
    if t == "boolean":
        return True
    return None


def _resolve(root: Any, ref: Any) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#"):
        return {}
    node = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        if not isinstance(node, dict):
            return {}
        node = node.get(part.replace("~1", "/").replace("~0", "~"))
    return node if isinstance(node, dict) else {}
