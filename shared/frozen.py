"""Pickling of frozen, slotted dataclasses that a state holds (adjudicator snapshots).

`@dataclass(frozen=True, slots=True)` pickles an instance as the list of its field values
and restores it with `object.__setattr__`. In the compiled build (mypyc, `make compiled`)
the class is a native class: its default pickling sets the fields through the frozen
`__setattr__` and fails. Classes a snapshot holds define `__getstate__`/`__setstate__` with
these two functions, the dataclass's own format: the same bytes in either build.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def frozen_state(obj: Any) -> list[object]:
    return [getattr(obj, f.name) for f in fields(obj)]


def restore_frozen(obj: Any, state: list[object]) -> None:
    for f, value in zip(fields(obj), state, strict=True):
        object.__setattr__(obj, f.name, value)
