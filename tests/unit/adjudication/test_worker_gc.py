"""The adjudicator raises the cyclic collector's thresholds (its state is a large heap of
long-lived objects: see worker.GC_THRESHOLDS) and never lowers one set higher."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.adjudication.worker import GC_THRESHOLDS, tune_gc


@pytest.fixture
def thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*before)


@pytest.mark.usefixtures("thresholds")
def test_tune_gc_raises_the_default_thresholds() -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS


@pytest.mark.usefixtures("thresholds")
def test_tune_gc_keeps_a_threshold_someone_set_higher() -> None:
    higher = 2 * GC_THRESHOLDS[0]
    gc.set_threshold(higher, 5, 50)
    tune_gc()
    assert gc.get_threshold() == (higher, GC_THRESHOLDS[1], 50)
