"""A filing whose rejection is undone into review (contested, promoted) and that a person
then rejects again takes its names back in the directory too (session 30 second rival
review): the adjudicator takes back the forms it filed again (`AdjudicationState.brought`,
`refiled_names` then `unfiled_names` on one filing), so the directory's row of them must
not stay filed for good. Before, the re-filed row had no filer (`KEPT`) and no rejection
could take it back: `GET /v1/ownership?name=` and an edge warmed from the directory kept
the rival's trade name under the holder's key, which the adjudicator had dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.projections.domain.batch import Batch, Item, needs
from shared.events import DomainEvent
from tests.unit.projections.memory_store import MemoryStore
from tests.unit.projections.test_directory_names_order_free import (
    COUNTRY,
    DIRECTORY_ONLY,
    KEYS,
    _decision,
    _forms,
    _submission,
)

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _items(stream: list[DomainEvent], topic: str) -> list[Item]:
    return [Item(f"{topic}_{offset}", T0, event, DIRECTORY_ONLY, None, None, None, offset)
            for offset, event in enumerate(stream)]


def _fold(batches: list[list[Item]]) -> set[tuple[str, str, str]]:
    store = MemoryStore()
    for items in batches:
        if items:
            store.write(Batch(store.load(needs(items))).fold_all(items))
    return store.filed_names()


def _cycles(n: int) -> tuple[list[DomainEvent], list[DomainEvent]]:
    """reg_x files "Beta Systems dba Gamma Labs" under B's key (Gamma Labs new there) and
    is rejected; then `n` times: its rejection undone into review (`refiled_names`), a
    person rejects it again (`unfiled_names`)."""
    fresh = [f for f in _forms(KEYS[0], "Beta Systems dba Gamma Labs")
             if f not in _forms(KEYS[0], "Beta Systems")]
    intake: list[DomainEvent] = [_submission("reg_b", KEYS[0], "Beta Systems"),
                                 _submission("reg_x", KEYS[0], "Beta Systems dba Gamma Labs")]
    decisions: list[DomainEvent] = [_decision("reg_b", KEYS[0]),
                                    _decision("reg_x", KEYS[0], rejected=True, unfiled=fresh)]
    for k in range(n):
        at = T0 + timedelta(hours=2 * k + 1)
        refile = _decision("reg_x", KEYS[0], refiled=fresh)
        decisions.append(refile.model_copy(update={"status": "in_review", "decided_at": at,
                                                   "protected_until": None}))
        again = _decision("reg_x", KEYS[0], rejected=True, unfiled=fresh)
        decisions.append(again.model_copy(update={"decided_at": at + timedelta(hours=1)}))
    return intake, decisions


def test_a_reviewed_filing_rejected_again_after_its_rejection_was_undone_has_no_names() -> None:
    intake, decisions = _cycles(1)
    expected = {(COUNTRY, "beta systems", KEYS[0])}
    assert _fold([_items(intake, "intake"), _items(decisions, "decisions")]) == expected
    assert _fold([_items(decisions, "decisions"), _items(intake, "intake")]) == expected


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), cut=st.integers(0, 10), undone=st.booleans(), data=st.data())
def test_any_number_of_review_cycles_folds_to_the_last_decision(
        n: int, cut: int, undone: bool, data: st.DataObject) -> None:
    """Cycles of undo-into-review and rejection, ending rejected or (`undone`) in review
    once more: the name is filed exactly when the last decision files it, whatever the
    interleaving of the two streams and the batching."""
    intake, decisions = _cycles(n)
    if undone:
        decisions.append(decisions[-2].model_copy(
            update={"decided_at": T0 + timedelta(hours=2 * n + 1)}))
    merged_from = _items(intake, "intake"), _items(decisions, "decisions")
    picks = data.draw(st.permutations([0] * len(intake) + [1] * len(decisions)))
    streams = [iter(merged_from[0]), iter(merged_from[1])]
    merged = [next(streams[p]) for p in picks]
    cut = min(cut, len(merged))
    filed = _fold([merged[:cut], merged[cut:]])
    assert ((COUNTRY, "gamma labs", KEYS[0]) in filed) is undone
    assert (COUNTRY, "beta systems", KEYS[0]) in filed


def test_a_re_filed_row_orders_by_its_decision_s_time_naive_or_aware() -> None:
    """Re-filed rows sit above every intake offset, ordered by the re-filing decision's
    time (a later re-filing by another filing replaces an earlier one); a naive time
    reads as UTC rather than failing the fold."""
    from services.projections.domain.directory import KEPT, later, refiled

    aware = refiled(KEYS[0], ("gamma labs",), COUNTRY, "reg_x", T0)[0]
    naive = refiled(KEYS[0], ("gamma labs",), COUNTRY, "reg_x", T0.replace(tzinfo=None))[0]
    assert aware == naive and aware["filed_at"] > KEPT
    second = refiled(KEYS[0], ("gamma labs",), COUNTRY, "reg_a", T0 + timedelta(hours=1))[0]
    assert later(aware, second) is second and later(second, aware) is second
