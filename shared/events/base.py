"""The base class of every domain event and the catalogue that maps type names to classes."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict


class DomainEvent(BaseModel):
    """An immutable fact. `TYPE` is the versioned CloudEvents type, e.g. `...submitted.v1`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]

    def to_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)


E = TypeVar("E", bound=type[DomainEvent])
M = TypeVar("M", bound=BaseModel)

_new = object.__new__
_set = object.__setattr__
_FIELD_COUNTS: dict[type[BaseModel], int] = {}


def trusted(cls: type[M], /, **fields: Any) -> M:
    """`cls(**fields)` without validation, for a producer whose values already have the
    field types exactly (the adjudicator's decisions, built from its own validated state):
    validating a decision cost a third of its construction and ~2 us, twice per event.

    Every field must be given, each of its declared type (no coercion happens: an int for a
    Decimal field would be written as an int). A call naming fewer or more fields than
    `cls` has is validated instead, so a forgotten field still gets its default. The
    result equals the validated model, field for field, and serializes to the same bytes
    (tests/unit/events/test_trusted_events.py checks every decision of the mixed workload).
    """
    count = _FIELD_COUNTS.get(cls)
    if count is None:
        count = _FIELD_COUNTS[cls] = len(cls.model_fields)
    if len(fields) != count:
        return cls(**fields)
    obj = _new(cls)
    _set(obj, "__dict__", fields)
    _set(obj, "__pydantic_fields_set__", set(fields))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj

CATALOGUE: dict[str, type[DomainEvent]] = {}


def event_type(cls: E) -> E:
    """Class decorator: register `cls` in the catalogue under its versioned type name."""
    name = cls.TYPE
    if name in CATALOGUE:
        raise ValueError(f"event type {name} registered twice")
    CATALOGUE[name] = cls
    return cls


class UnhandledEventType(TypeError):
    """A consumer met a catalogue event type it neither handles nor explicitly ignores: a
    programming error (a new event type without its consumers), never skipped silently."""

    def __init__(self, consumer: str, event: DomainEvent) -> None:
        super().__init__(f"{consumer} has no rule for {type(event).__name__} "
                         f"({event.TYPE}): handle it or list it as ignored")
