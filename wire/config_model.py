"""The base of every configuration model: unknown fields refused, frozen, and each field described by the
docstring written under it.

pydantic can read those docstrings itself (``use_attribute_docstrings``), but on Python < 3.13 it does so per
class by walking the defining frames, re-tokenizing the class's block and parsing it again: 65 ms of the
gateway's start-up for its ~60 configuration classes (measured: ``import gateway.config`` 270 -> 205 ms
without it). Here each defining module's source is parsed once, when its first model is created, and every
class takes its fields' docstrings from that parse once its fields are collected and before its schema is
built: the descriptions (JSON schemas, the admin API's schemas) are the same. (A model class defined inside a
function gets none: only classes at module level, or nested in them, are found in the parse.)
"""

from __future__ import annotations

import ast
import inspect
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict

_DOCS: dict[str, dict[str, dict[str, str]]] = {}
"""Per module: class qualname -> field name -> docstring."""


class StrictModel(BaseModel):
    """Unknown fields are refused (the error names the path), instances are frozen, and each field's description
    is the docstring under it. Schemas are built on first use (``defer_build``), after the descriptions are in."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        describe(cls)


def describe(cls: type[BaseModel]) -> None:
    """Give each field of ``cls`` without a description the docstring under it in ``cls``'s own source, as
    pydantic's ``use_attribute_docstrings`` does (fields collected, schema not built yet)."""
    docs = _class_docs(cls)
    for name, field in cls.model_fields.items():
        if field.description is None and name in docs:
            field.description = docs[name]


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
