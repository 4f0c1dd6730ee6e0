"""The base of every configuration model: unknown fields refused, frozen, and each field described by the
docstring written under it.

pydantic can read those docstrings itself (``use_attribute_docstrings``), but on Python < 3.13 it does so per
class by walking the defining frames, re-tokenizing the class's block and parsing it again: 65 ms of the
gateway's start-up for its ~60 configuration classes (measured: ``import gateway.config`` 270 -> 205 ms
without it). Here each defining module's source is parsed once, and only when the descriptions are first
asked for (``described``: a JSON schema, the admin API's schemas): parsing the configuration modules was still
~90 M instructions, ~5% of a start's imports and config load, for text that serving never reads. A schema built
before then (the config file's validation builds them at start) is built again with the descriptions, once; the
descriptions and JSON schemas are the same as pydantic's. (A model class defined inside a function gets none:
only classes at module level, or nested in them, are found in the parse.)
"""

from __future__ import annotations

import ast
import inspect
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict

_DOCS: dict[str, dict[str, dict[str, str]]] = {}
"""Per module: class qualname -> field name -> docstring."""
_UNDESCRIBED: list[type[BaseModel]] = []
"""Model classes made since ``described`` last ran, in the order they were made (a class after the ones it uses)."""


class StrictModel(BaseModel):
    """Unknown fields are refused (the error names the path), instances are frozen, and each field's description
    is the docstring under it (once ``described`` has run; ``model_json_schema`` runs it). Schemas are built on
    first use (``defer_build``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _UNDESCRIBED.append(cls)

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        described()
        return super().model_json_schema(*args, **kwargs)


def described() -> None:
    """Give every ``StrictModel`` class made so far its fields' descriptions, and build again, with them, the
    schemas already built without them. Whatever reads descriptions (``model_fields``, a ``TypeAdapter``'s JSON
    schema) calls this first; ``StrictModel.model_json_schema`` does."""
    if not _UNDESCRIBED:
        return
    classes = list(_UNDESCRIBED)
    _UNDESCRIBED.clear()
    for cls in classes:
        describe(cls)
    for cls in classes:  # in the order they were made: a class's fields' models are built again before it
        if cls.__pydantic_complete__:
            cls.model_rebuild(force=True)


def describe(cls: type[BaseModel]) -> None:
    """Give each field of ``cls`` without a description the docstring under it in the source of the class that
    declares it (``cls`` or the base it inherits the field from), as pydantic's ``use_attribute_docstrings``
    does."""
    for name, field in cls.model_fields.items():
        if field.description is None:
            owner = next((k for k in cls.__mro__ if name in vars(k).get("__annotations__", {})), cls)
            doc = _class_docs(owner).get(name)
            if doc is not None:
                field.description = doc


def _class_docs(cls: type) -> dict[str, str]:
    module = cls.__module__
    if module not in _DOCS:
        _DOCS[module] = _module_docs(module)
    return _DOCS[module].get(cls.__qualname__, {})


def _module_docs(module: str) -> dict[str, dict[str, str]]:
    path = getattr(sys.modules.get(module), "__file__", None)
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return {}
    found: dict[str, dict[str, str]] = {}
    _collect(tree.body, "", found)
    return found


def _collect(body: list[ast.stmt], prefix: str, found: dict[str, dict[str, str]]) -> None:
    for node in body:
        if not isinstance(node, ast.ClassDef):
            continue
        qualname = prefix + node.name
        docs: dict[str, str] = {}
        for stmt, after in zip(node.body, node.body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[stmt.target.id] = inspect.cleandoc(after.value.value)
        found[qualname] = docs
        _collect(node.body, qualname + ".", found)
