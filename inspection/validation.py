"""Turn pydantic validation failures into one-line errors that name the file, the key and the fix."""

from __future__ import annotations

import difflib
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from inspection.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config a person writes: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_model(model_cls: type[ModelT], data: Any, source: str, error_cls: type[ConfigError] = ConfigError) -> ModelT:
    """Validate `data` as `model_cls`; on failure raise `error_cls` with one line about the first problem."""
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        raise error_cls(describe_validation_error(exc, model_cls, source)) from None


def describe_validation_error(exc: ValidationError, model_cls: type[BaseModel], source: str) -> str:
    errors = exc.errors()
    # A misspelt key shows up twice (unknown key, missing key): the unknown one is the useful line.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    location = ".".join(str(part) for part in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        valid = sorted(_fields_at(model_cls, first["loc"][:-1]))
        close = difflib.get_close_matches(str(first["loc"][-1]), valid, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else " Fix or remove the key."
        return f"{source}: unknown key '{location}'; valid keys here are: {', '.join(valid)}.{hint}"
    if kind == "missing":
        return f"{source}: missing required key '{location}'. Add it."
    value = first.get("input")
    return f"{source}: bad value {value!r} for '{location}': {first['msg']}. Fix the value."


def _fields_at(model_cls: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (nested) model that `loc` points into, for listing valid keys."""
    current: Any = model_cls
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = field.annotation
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []
