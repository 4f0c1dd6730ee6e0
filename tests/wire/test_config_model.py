"""The configuration models' base: strict, frozen, each field described by the docstring under it, read from
one parse of the module (``wire.config_model``) and checked against pydantic's own reading."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, Field, ValidationError
from pydantic._internal._docs_extraction import extract_docstrings_from_cls

from wire.config_model import StrictModel

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


def test_unknown_fields_are_refused_with_their_name() -> None:
    with pytest.raises(ValidationError, match="surprise"):
        Sample.model_validate({"required": "x", "surprise": 1})


def test_instances_are_frozen() -> None:
    s = Sample(required="x")
    with pytest.raises(ValidationError):
        s.plain = 2  # type: ignore[misc]


def config_models() -> Iterator[type[StrictModel]]:
    for name in CONFIG_MODULES:
        module = importlib.import_module(name)
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
