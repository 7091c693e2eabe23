"""Field descriptions from attribute docstrings (the string under a field), for the models
whose docstrings people read: `l3tui validate --explain KEY` prints a config field's, `l3tui
schema decision` publishes a decision field's.

Pydantic's `use_attribute_docstrings` finds each class's source by walking the frames of
its creation and tokenizing the class block: 65-90 ms of every console start for the ~40
config models. Here each module's source is parsed once, when its first model is complete,
with the same rules (the string right after an annotated name, cleaned as `inspect.cleandoc`
does; nested classes and functions are not looked into). Reading source never fails a model:
without it (a zip, stripped sources) fields simply have no description.
"""

from __future__ import annotations

import ast
import inspect
import sys
from typing import Any

_MODULES: dict[str, dict[str, dict[str, str]]] = {}
"""module name -> class qualname -> field -> docstring."""


def describe_fields(cls: type[Any]) -> None:
    """Give each field of pydantic model `cls` declared with a docstring and no
    `description=` that docstring as its description (fields inherited keep their own)."""
    docs = attribute_docstrings(cls)
    if not docs:
        return
    fields = cls.__pydantic_fields__
    for name, doc in docs.items():
        field = fields.get(name)
        if field is not None and field.description is None:
            field.description = doc


def attribute_docstrings(cls: type[Any]) -> dict[str, str]:
    """{attribute: docstring} of the class body of `cls` in its module's source."""
    module = cls.__module__
    classes = _MODULES.get(module)
    if classes is None:
        classes = _MODULES[module] = _parse(module)
    return classes.get(cls.__qualname__, {})


def _parse(module: str) -> dict[str, dict[str, str]]:
    path = getattr(sys.modules.get(module), "__file__", None)
    if not path or not path.endswith(".py"):
        return {}
    try:
        with open(path, "rb") as source:
            tree = ast.parse(source.read(), path)
    except (OSError, SyntaxError, ValueError):
        return {}
    out: dict[str, dict[str, str]] = {}
    _classes(tree.body, "", out)
    return out


def _classes(body: list[ast.stmt], prefix: str, out: dict[str, dict[str, str]]) -> None:
    for node in body:
        if isinstance(node, ast.ClassDef):
            qualname = f"{prefix}{node.name}"
            visitor = _Docstrings()
            visitor.generic_visit(node)
            out[qualname] = visitor.attrs
            _classes(node.body, f"{qualname}.", out)


class _Docstrings(ast.NodeVisitor):
    """Pydantic's rules (pydantic/_internal/_docs_extraction.py), so that descriptions are
    what `use_attribute_docstrings` gave."""

    def __init__(self) -> None:
        self.target: str | None = None
        self.attrs: dict[str, str] = {}
        self.previous: type[ast.AST] | None = None

    def visit(self, node: ast.AST) -> Any:
        result = super().visit(node)
        self.previous = type(node)
        return result

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if isinstance(node.target, ast.Name):
            self.target = node.target.id

    def visit_Expr(self, node: ast.Expr) -> None:
        value = node.value
        if (isinstance(value, ast.Constant) and isinstance(value.value, str)
                and self.previous is ast.AnnAssign):  # fmt: skip
            if self.target:
                self.attrs[self.target] = inspect.cleandoc(value.value)
            self.target = None

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        pass

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        pass

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        pass
