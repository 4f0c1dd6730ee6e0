"""The JSON value the fakes answer for a schema conforms to it (checked with a real JSON Schema validator)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from tests.fakes.json_sample import sample


class Address(BaseModel):
    city: str
    zip: str | None = None


class Person(BaseModel):
    name: str
    age: int
    address: Address
    tags: list[str]


SCHEMAS: list[Any] = [
    {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer", "minimum": 5}}},
    {"type": "object", "properties": {"u": {"type": "string", "enum": ["c", "f"]}, "k": {"const": 3}}},
    {"type": "array", "items": {"type": "number"}, "minItems": 2},
    {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
    {"type": ["null", "string"]},
    {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}},
            {"type": "object", "properties": {"b": {"type": "string"}}},
        ]
    },
    Person.model_json_schema(),
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_sample_conforms_to_its_schema(schema: Any) -> None:
    jsonschema.validate(sample(schema), schema)


def test_refs_into_defs_are_followed() -> None:
    assert sample(Person.model_json_schema())["address"] == {"city": "sample", "zip": "sample"}


def test_sample_is_deterministic() -> None:
    assert sample(SCHEMAS[0]) == sample(SCHEMAS[0]) == {"a": "sample", "b": 5}
