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
