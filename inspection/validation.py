"""Turn pydantic validation failures into one-line errors that name the file, the key and the fix."""

from __future__ import annotations

import difflib
from typing import Any, TypeVar, get_args

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
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tags = [str(t) for member in _union_members(model_cls, first["loc"]) for t in _kinds(member)]
        choices = f" ({', '.join(tags)})" if tags else ""
        return f"{source}: '{location}' needs a valid 'kind:'{choices}. Set it."
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a check across fields: its input is the whole object, which says nothing more
        return f"{source}: {message}. Fix the values."
    value = first.get("input")
    return f"{source}: bad value {value!r} for '{location}': {message}. Fix the value."


def _fields_at(model_cls: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (nested) model that `loc` points into, for listing valid keys."""
    model = _model_in(_annotation_at(model_cls, loc), None)
    return list(model.model_fields) if model is not None else []


def _union_members(model_cls: type[BaseModel], loc: tuple) -> list[type[BaseModel]]:
    """The models of the union field at `loc`."""
    return [m for m in (_model_in(arg, None) for arg in _flatten(_annotation_at(model_cls, loc))) if m is not None]


def _annotation_at(model_cls: type[BaseModel], loc: tuple) -> Any:
    """The annotation `loc` points at; a step through a discriminated union names the member by its tag
    (source.folder.path). None where the path leads nowhere."""
    current: Any = model_cls
    for part in loc:
        model = _model_in(current, None)
        if model is not None and str(part) in model.model_fields:
            current = model.model_fields[str(part)].annotation
        else:
            current = _model_in(current, str(part))
            if current is None:
                return None
    return current


def _flatten(annotation: Any) -> list:
    args = get_args(annotation)
    return [leaf for arg in args for leaf in _flatten(arg)] if args else [annotation]


def _model_in(annotation: Any, tag: str | None) -> type[BaseModel] | None:
    """The model an annotation holds (through Optional and Annotated); for a union, the member whose
    `kind` literal is `tag`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation if tag is None or tag in _kinds(annotation) else None
    members = [m for m in (_model_in(arg, tag) for arg in get_args(annotation)) if m is not None]
    return members[0] if len(members) == 1 or (members and tag is not None) else None


def _kinds(model: type[BaseModel]) -> tuple:
    field = model.model_fields.get("kind")
    return get_args(field.annotation) if field is not None else ()
