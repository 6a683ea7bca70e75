"""The directory's names are folded order-free (session 30): intake and decisions are
consumed independently, so the projections may meet a filing's rejection before its
submission, or a second filing of the same name under the same key between the first
one's submission and its rejection. Whatever the interleaving (each stream in its order)
and the batching, the filed names (`account_names` rows `schema.name_filed` keeps, here
`MemoryStore.filed_names`) are the adjudicator's: a name the adjudicator took back from a
key is not filed there, one it keeps (or files again) is."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.projections.domain.batch import Batch, Item, needs
from shared.accounts.filing import name_rows
from shared.events import DomainEvent, RegistrationDecided, RegistrationSubmitted
from tests.unit.projections.builders import decided, submitted
from tests.unit.projections.memory_store import MemoryStore

COUNTRY = "US"
DIRECTORY_ONLY = frozenset({"directory"})
NAMES = ("Beta Systems", "Beta Systems dba Gamma Labs", "Gamma Labs",
         "Delta Works dba Gamma Labs")
KEYS = ("dom:beta.com", "dom:gamma.com")

Filed = set[tuple[str, str, str]]


def _forms(key: str, name: str) -> list[str]:
    return [row["name"] for row in name_rows(key, name, COUNTRY, True)[0]]


def _submission(rid: str, key: str, name: str) -> RegistrationSubmitted:
    return submitted(rid, "p-1", key=key, name=name, domain=key.removeprefix("dom:"),
                     country=COUNTRY)


def _decision(rid: str, key: str, *, rejected: bool = False, unfiled: Sequence[str] = (),
              refiled: Sequence[str] = ()) -> RegistrationDecided:
    event = decided(rid, "p-1", key=key, status="rejected" if rejected else "approved",
                    rule="duplicate" if rejected else "no_conflict",
                    until_minutes=None if rejected else 600)
    update: dict[str, Any] = {}
    if unfiled:
        update["unfiled_names"] = tuple(unfiled)
    if refiled:
        update.update(refiled_names=tuple(refiled), refiled_country=COUNTRY)
    return event.model_copy(update=update)


class Adjudicator:
    """The adjudicator's name rule, as `adjudicate.adjudicate` and `state.activate` apply
    it: a rejected filing takes back the forms new under its key (`new_name_forms`), an
    undone rejection files again the forms of its name new under its key then. Logs its
    submissions (intake) and decisions in its order."""

    def __init__(self) -> None:
        self.filed: dict[str, set[str]] = {}
        self.intake: list[DomainEvent] = []
        self.decisions: list[DomainEvent] = []
        self.taken_back: dict[str, tuple[str, str]] = {}

    def submit(self, rid: str, key: str, name: str, reject: bool) -> None:
        forms = _forms(key, name)
        names = self.filed.setdefault(key, set())
        fresh = [f for f in forms if f not in names]
        names.update(forms)
        self.intake.append(_submission(rid, key, name))
        if reject and fresh:
            names.difference_update(fresh)
            self.taken_back[rid] = (key, name)
        self.decisions.append(_decision(rid, key, rejected=reject,
                                        unfiled=fresh if reject else ()))

    def undo(self, rid: str) -> None:
        key, name = self.taken_back.pop(rid)
        names = self.filed[key]
        fresh = [f for f in _forms(key, name) if f not in names]
        names.update(fresh)
        self.decisions.append(_decision(rid, key, refiled=fresh))

    def names(self) -> Filed:
        return {(COUNTRY, form, key) for key, forms in self.filed.items() for form in forms}


def _items(stream: Sequence[DomainEvent], topic: str) -> list[Item]:
    moment = datetime(2026, 1, 5, tzinfo=UTC)
    return [Item(f"{topic}_{offset}", moment, event, DIRECTORY_ONLY, None, None, None,
                 offset) for offset, event in enumerate(stream)]


def _fold(store: MemoryStore, batches: Sequence[Sequence[Item]]) -> Filed:
    for items in batches:
        store.write(Batch(store.load(needs(items))).fold_all(items))
    return store.filed_names()


def _log_order(adjudicator: Adjudicator) -> list[Item]:
    """Intake and decisions as the adjudicator wrote them: each submission's decision
    right after it, an undone rejection's decision where it came."""
    intake = _items(adjudicator.intake, "intake")
    decisions = _items(adjudicator.decisions, "decisions")
    by_filing = {getattr(i.event, "registration_id", ""): i for i in intake}
    ordered: list[Item] = []
    for item in decisions:
        submission = by_filing.pop(getattr(item.event, "registration_id", ""), None)
        if submission is not None and not item.event.refiled_names:  # type: ignore[attr-defined]
            ordered.append(submission)
        ordered.append(item)
    return ordered


def test_a_rejection_folded_a_batch_before_its_submission_still_takes_the_name_back() -> None:
    """(a) The decision's batch comes first: the submission folded after it files its
    names all the same (before session 30 the row stayed filed)."""
    adjudicator = Adjudicator()
    adjudicator.submit("reg_b", KEYS[0], "Beta Systems", reject=False)
    adjudicator.submit("reg_x", KEYS[0], "Beta Systems dba Gamma Labs", reject=True)
    intake = _items(adjudicator.intake, "intake")
    decisions = _items(adjudicator.decisions, "decisions")
    filed = _fold(MemoryStore(), [decisions, intake])
    assert (COUNTRY, "gamma labs", KEYS[0]) not in filed
    assert filed == adjudicator.names() == {(COUNTRY, "beta systems", KEYS[0])}


def test_a_second_filing_folded_before_the_first_one_s_rejection_keeps_the_name() -> None:
    """(b) reg_x files "Gamma Labs" under B's key and is rejected; reg_z files it again
    after that decision (the adjudicator keeps it). The projections fold both submissions
    before the rejection: the name stays (before session 30: its row, first filed by
    reg_x, went with reg_x's rejection)."""
    adjudicator = Adjudicator()
    adjudicator.submit("reg_x", KEYS[0], "Beta Systems dba Gamma Labs", reject=True)
    adjudicator.submit("reg_z", KEYS[0], "Beta Systems dba Gamma Labs", reject=False)
    intake = _items(adjudicator.intake, "intake")
    decisions = _items(adjudicator.decisions, "decisions")
    expected = adjudicator.names()
    assert (COUNTRY, "gamma labs", KEYS[0]) in expected
    assert _fold(MemoryStore(), [intake, decisions]) == expected
    assert _fold(MemoryStore(), [intake[:1], intake[1:] + decisions]) == expected
    assert _fold(MemoryStore(), [intake + decisions]) == expected  # one batch too


def test_an_undone_rejection_files_its_names_again_in_any_order() -> None:
    """A rejection undone (`refiled_names`) files the names again, whether its decision
    is folded before the submission, and though a later filing of the name was rejected
    too (the adjudicator keeps the name: the undone filing holds it)."""
    adjudicator = Adjudicator()
    adjudicator.submit("reg_x", KEYS[0], "Beta Systems dba Gamma Labs", reject=True)
    adjudicator.submit("reg_y", KEYS[0], "Gamma Labs", reject=True)
    adjudicator.undo("reg_x")
    expected = adjudicator.names()
    assert (COUNTRY, "gamma labs", KEYS[0]) in expected
    intake = _items(adjudicator.intake, "intake")
    decisions = _items(adjudicator.decisions, "decisions")
    assert _fold(MemoryStore(), [_log_order(adjudicator)]) == expected
    assert _fold(MemoryStore(), [decisions, intake]) == expected
    assert _fold(MemoryStore(), [intake, decisions]) == expected
    assert _fold(MemoryStore(), [decisions[:1], intake, decisions[1:]]) == expected


_STEP = st.one_of(
    st.tuples(st.just("submit"), st.sampled_from(KEYS), st.sampled_from(NAMES),
              st.booleans()),
    st.tuples(st.just("undo"), st.integers(0, 10)))


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(_STEP, min_size=1, max_size=12), data=st.data())
def test_any_interleaving_of_intake_and_decisions_files_the_adjudicator_s_names(
        steps: list[tuple[Any, ...]], data: st.DataObject) -> None:
    """Filings (some rejected, some rejections undone) decided by the adjudicator's rule;
    the two streams merged in any interleaving, each in its order, cut into any batches:
    the filed names equal the adjudicator's, and the fold of its own order."""
    adjudicator = Adjudicator()
    for n, step in enumerate(steps):
        if step[0] == "submit":
            adjudicator.submit(f"reg_{n}", step[1], step[2], step[3])
        elif adjudicator.taken_back:
            undone = sorted(adjudicator.taken_back)
            adjudicator.undo(undone[step[1] % len(undone)])
    expected = adjudicator.names()
    assert _fold(MemoryStore(), [_log_order(adjudicator)]) == expected
    intake = _items(adjudicator.intake, "intake")
    decisions = _items(adjudicator.decisions, "decisions")
    picks = data.draw(st.permutations([True] * len(intake) + [False] * len(decisions)))
    merged: list[Item] = []
    streams = {True: iter(intake), False: iter(decisions)}
    for pick in picks:
        merged.append(next(streams[pick]))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(merged) - 1)), max_size=4)))
    batches = [merged[a:b] for a, b in zip([0, *cuts], [*cuts, len(merged)], strict=True)]
    assert _fold(MemoryStore(), [b for b in batches if b]) == expected


def test_a_kept_row_is_marked_alike_in_the_fold_and_the_store() -> None:
    """A name row without a filer (filed before migration 0016, or filed again by an
    undone rejection) carries the same `filed_at` in the fold, the table's default and
    migration 0017: above any intake offset, so no filing replaces it."""
    from services.projections.domain.directory import KEPT, later
    from shared.readmodel.schema import NAME_KEPT, account_names

    assert KEPT == NAME_KEPT == account_names.c.filed_at.default.arg  # type: ignore[union-attr]
    kept = {"filed_by": None, "filed_at": KEPT}
    filing = {"filed_by": "reg_9", "filed_at": 2**40}
    assert later(kept, filing) is kept and later(filing, kept) is kept
