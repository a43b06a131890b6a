"""The errors common raises (common.core.errors): one tree, drawn where they are defined."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pydantic
import pytest

import common
from common.core import errors
from common.core.errors import ServingError, validation_problems

_DRAWN = re.compile(r"^(?P<indent> *)[*+-] (?P<name>\w+)")


def drawn_tree() -> dict[str, str | None]:
    """Each class the docstring of common.core.errors draws, and the class drawn above it."""
    tree: dict[str, str | None] = {}
    above: list[str] = []
    for line in (errors.__doc__ or "").split("::", 1)[1].splitlines():
        found = _DRAWN.match(line.removeprefix("    "))
        if found:
            depth = len(found["indent"]) // 2
            del above[depth:]
            tree[found["name"]] = above[-1] if above else None
            above.append(found["name"])
    return tree


def common_serving_errors() -> dict[str, str | None]:
    """Every ServingError class any module of common defines, and its base."""
    for module in pkgutil.walk_packages(common.__path__, "common."):
        importlib.import_module(module.name)
    found: dict[str, str | None] = {ServingError.__name__: None}
    waiting = [ServingError]
    while waiting:
        cls = waiting.pop()
        for sub in cls.__subclasses__():
            waiting.append(sub)
            if sub.__module__.startswith("common."):
                found[sub.__name__] = cls.__name__
    return found


def test_the_drawn_tree_holds_every_error_of_common_under_its_base() -> None:
    assert drawn_tree() == common_serving_errors()


def test_each_error_answers_with_the_status_it_names() -> None:
    statuses = {
        name: getattr(errors, name)("x").status_code
        for name in (
            "BodyTooLarge",
            "TooManyRows",
            "HeadersTooLarge",
            "RequestTimeout",
            "UnsupportedEncoding",
            "ShuttingDown",
            "BatchFailed",
        )
    }
    assert statuses == {
        "BodyTooLarge": 413,
        "TooManyRows": 413,
        "HeadersTooLarge": 431,
        "RequestTimeout": 408,
        "UnsupportedEncoding": 415,
        "ShuttingDown": 503,
        "BatchFailed": 500,
    }


def test_pydantics_errors_read_as_where_and_what() -> None:
    class Port(pydantic.BaseModel):
        http_port: int = pydantic.Field(ge=1, le=65535)
        hosts: list[str]

    with pytest.raises(pydantic.ValidationError) as raised:
        Port.model_validate({"http_port": 70000, "hosts": ["a", 3]})
    problems = raised.value.errors(include_url=False)
    assert validation_problems(problems) == (
        "http_port: Input should be less than or equal to 65535; "
        "hosts.1: Input should be a valid string"
    )
    assert validation_problems(problems, most=1) == (
        "http_port: Input should be less than or equal to 65535"
    )
    assert validation_problems(problems, flags=True).startswith(
        "--http_port=70000: Input should be less than or equal to 65535; --hosts.1=3: "
    )


def test_a_body_that_is_not_json_is_named_body() -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        pydantic.TypeAdapter(dict[str, int]).validate_json(b"{")
    assert validation_problems(raised.value.errors(), most=1).startswith("body: Invalid JSON")


def test_no_check_in_common_rests_on_an_assert() -> None:
    """``python -O`` removes assert statements: common refuses bad input by raising."""
    root = Path(common.__file__).parent
    asserts = [
        f"{path.relative_to(root)}:{node.lineno}"
        for path in sorted(root.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assert)
    ]
    assert asserts == []
