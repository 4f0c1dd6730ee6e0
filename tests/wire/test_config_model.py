"""The configuration models' base: strict, frozen, each field described by the docstring under it, read from
one parse of the module when descriptions are first asked for (``wire.config_model.described``) and checked
against pydantic's own reading."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, ValidationError
from pydantic._internal._docs_extraction import extract_docstrings_from_cls

from gateway.config import ServerConfig
from wire.config_model import StrictModel, described

CONFIG_MODULES = (
    "accounting.config",
    "accounting.export.config",
    "accounting.capture.config",
    "serving.config",
    "routing.config",
    "routing.shadow.config",
    "gateway.config",
    "gateway.admin.vllm",
)

ROOT = Path(__file__).resolve().parents[2]
_SHARED = Field(default=1, ge=0)


class Sample(StrictModel):
    plain: int = 1
    """A plain default."""
    constrained: int = Field(default=2, ge=0)
    """A Field default."""
    required: str
    """No default."""
    explicit: int = Field(default=3, description="given")
    """Not this one."""
    first: int = _SHARED
    """The first of two fields sharing one Field."""
    second: int = _SHARED
    """The second."""
    undocumented: int = 4

    class Inner(StrictModel):
        deep: int = 5
        """Inside a class."""


class Child(Sample):
    extra_field: int = 6
    """Only the child has it."""


def descriptions(model: type[BaseModel]) -> dict[str, str | None]:
    described()
    return {name: field.description for name, field in model.model_fields.items()}


def test_each_field_is_described_by_the_docstring_under_it() -> None:
    d = descriptions(Sample)
    assert d["plain"] == "A plain default."
    assert d["constrained"] == "A Field default."
    assert d["required"] == "No default."
    assert d["undocumented"] is None


def test_an_explicit_description_wins_over_the_docstring() -> None:
    assert descriptions(Sample)["explicit"] == "given"


def test_fields_sharing_one_field_object_keep_their_own_descriptions() -> None:
    d = descriptions(Sample)
    assert (d["first"], d["second"]) == ("The first of two fields sharing one Field.", "The second.")
    assert _SHARED.description is None


def test_a_nested_class_reads_its_own_docstrings() -> None:
    assert descriptions(Sample.Inner) == {"deep": "Inside a class."}


def test_a_subclass_keeps_its_parents_descriptions_and_adds_its_own() -> None:
    d = descriptions(Child)
    assert d["plain"] == "A plain default."
    assert d["extra_field"] == "Only the child has it."


def test_descriptions_reach_the_json_schema() -> None:
    props = Sample.model_json_schema()["properties"]
    assert props["plain"]["description"] == "A plain default."
    assert props["second"]["description"] == "The second."


def _run(code: str) -> str:
    """``code`` run in a fresh interpreter (this process has made and described many models already)."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_loading_the_config_reads_no_source_for_descriptions() -> None:
    code = (
        "import gateway.config as g, wire.config_model as m\n"
        "g.validate_document({'server': {'port': 4001}}, 'test')\n"
        "print(len(m._DOCS), g.ServerConfig.model_fields['port'].description)"
    )
    assert _run(code) == "0 None"


def test_a_schema_built_at_load_is_built_again_with_the_descriptions() -> None:
    code = (
        "import gateway.config as g\n"
        "g.validate_document({'server': {'port': 4001}}, 'test')\n"
        "schema = g.GatewayConfig.model_json_schema()\n"
        "print(schema['$defs']['ServerConfig']['properties']['port']['description'])\n"
        "print(g.validate_document({'server': {'port': 4002}}, 'test').server.port)"
    )
    port_doc = ServerConfig.model_json_schema()["properties"]["port"]["description"]
    assert _run(code).splitlines() == [port_doc, "4002"]


def test_unknown_fields_are_refused_with_their_name() -> None:
    with pytest.raises(ValidationError, match="surprise"):
        Sample.model_validate({"required": "x", "surprise": 1})


def test_instances_are_frozen() -> None:
    s = Sample(required="x")
    with pytest.raises(ValidationError):
        s.plain = 2  # type: ignore[misc]


def config_models() -> Iterator[type[StrictModel]]:
    modules = [importlib.import_module(name) for name in CONFIG_MODULES]
    described()
    for module, name in zip(modules, CONFIG_MODULES, strict=True):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, StrictModel) and value.__module__ == name:
                yield value


def test_every_configuration_field_has_a_description() -> None:
    missing = [
        f"{m.__module__}.{m.__qualname__}.{name}"
        for m in config_models()
        for name, field in m.model_fields.items()
        if not field.description
    ]
    assert not missing


def test_descriptions_are_the_ones_pydantic_itself_reads() -> None:
    """pydantic's own reader (``use_attribute_docstrings``, by inspecting the class's source) is the reference."""
    models = list(config_models())
    assert len(models) > 40
    for model in models:
        own = extract_docstrings_from_cls(model, use_inspect=True)
        for name, field in model.model_fields.items():
            if name in own and name in model.__annotations__:
                assert field.description == own[name], (model.__qualname__, name)
