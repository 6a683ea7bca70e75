"""Upcasters: old event versions stay readable forever (invariant 8).

An upcaster turns the `data` of version N of a type into the `data` of version N+1. Reading
applies the chain until the newest version the catalogue knows, so the log is never
rewritten and a consumer only ever sees current shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Data = dict[str, Any]
Upcaster = Callable[[Data], Data]


@dataclass
class UpcasterRegistry:
    """Chains of `(base_type, from_version) -> upcaster` steps."""

    _steps: dict[tuple[str, int], Upcaster] = field(default_factory=dict)
    generation: int = 0
    """Steps registered so far: a reader that remembers a type as current checks that no
    step came since (`services.projections.worker.decode_value`)."""

    def register(self, base_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        def decorator(fn: Upcaster) -> Upcaster:
            key = (base_type, from_version)
            if key in self._steps:
                raise ValueError(f"an upcaster for {base_type}.v{from_version} already exists")
            self._steps[key] = fn
            self.generation += 1
            return fn

        return decorator

    def applies(self, base_type: str, version: int) -> bool:
        """Whether `version` of `base_type` has a step, i.e. is not the newest."""
        return (base_type, version) in self._steps

    def upcast(self, base_type: str, version: int, data: Data) -> tuple[int, Data]:
        """Apply every known step from `version` on; return the final version and data."""
        step = self._steps.get((base_type, version))
        while step is not None:
            data = step(data)
            version += 1
            step = self._steps.get((base_type, version))
        return version, data


# The registry the catalogue uses. Each schema change adds a step here, next to the new class.
upcasters = UpcasterRegistry()
