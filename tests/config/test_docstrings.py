"""Field descriptions come from attribute docstrings by l3tui's own reader (config/
docstrings.py, cheaper at start than pydantic's `use_attribute_docstrings`): they must be
exactly what pydantic's reader finds, for every config model and every decision model, since
`l3tui validate --explain` and `l3tui schema decision` print them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic._internal._docs_extraction import extract_docstrings_from_cls

import l3tui.config.builtins
import l3tui.config.loader
import l3tui.coordinator.decisions as decisions
from l3tui.config.docstrings import attribute_docstrings
from l3tui.config.fields import Model


def _models() -> list[type[BaseModel]]:
    out: list[type[BaseModel]] = []
    todo: list[type[Any]] = [Model, decisions._Documented]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += cls.__subclasses__()
    return [m for m in out if m.__module__.startswith("l3tui.")]


def test_every_model_is_described_as_pydantic_would() -> None:
    assert l3tui.config.loader and l3tui.config.builtins  # every config model is defined
    models = _models()
    assert len(models) > 40
    described = 0
    for model in models:
        expected = extract_docstrings_from_cls(model, use_inspect=True)
        assert attribute_docstrings(model) == expected, model.__qualname__
        for name, doc in expected.items():
            field = model.model_fields.get(name)
            if field is not None:
                assert field.description == doc, f"{model.__qualname__}.{name}"
                described += 1
    assert described > 150


def test_inherited_fields_keep_their_parents_description() -> None:
    run = decisions.RunWorkflow.model_fields
    assert run["id"].description == decisions._Decision.model_fields["id"].description
    assert run["id"].description and run["priority"].description


def test_the_published_decision_schema_carries_the_descriptions() -> None:
    schema = decisions.json_schema()
    reserve = schema["$defs"]["Reserve"]["properties"]
    assert reserve["reason"]["description"].startswith("Why, for people reading")
