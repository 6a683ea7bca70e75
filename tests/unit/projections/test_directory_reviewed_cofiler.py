"""A filing in review brought a name form to its key; a later filing of the form under the
key, rejected at its own decision, counted for nothing (`BroughtNames`), so a person's
rejection of the first takes the form back in the adjudicator
(tests/unit/adjudication/test_reviewed_rejection_names.py::
test_a_filing_rejected_at_its_decision_keeps_no_name_for_another). The directory's row of
the form names the later filing as its latest filer: the rejection's `unfiled_cofilers`
take it back there too, whatever the order of the two streams (session 30 crfix: before,
the directory kept the trade name the adjudicator and the edge had dropped)."""

from __future__ import annotations

import itertools

from tests.unit.projections.memory_store import MemoryStore
from tests.unit.projections.test_directory_names_order_free import (
    COUNTRY,
    KEYS,
    _decision,
    _fold,
    _forms,
    _items,
    _submission,
)

KEY = KEYS[0]
TRADE = "Beta Systems dba Gamma Labs"


def _streams(cofilers: tuple[str, ...]) -> tuple[list, list]:  # type: ignore[type-arg]
    intake = [_submission("reg_a", KEY, TRADE), _submission("reg_b", KEY, "Gamma Labs")]
    review = _decision("reg_a", KEY).model_copy(update={
        "status": "in_review", "rule": "possible_duplicate", "protected_until": None})
    rejected = _decision("reg_a", KEY, rejected=True, unfiled=_forms(KEY, TRADE))
    if cofilers:
        rejected = rejected.model_copy(update={"unfiled_cofilers": cofilers})
    decisions = [review, _decision("reg_b", KEY, rejected=True), rejected]
    return _items(intake, "intake"), _items(decisions, "decisions")


def test_a_reviewed_rejection_takes_the_form_back_from_a_rejected_co_filer_s_row() -> None:
    intake, decisions = _streams(("reg_b",))
    for cut in itertools.product(range(len(intake) + 1), range(len(decisions) + 1)):
        batches = [intake[:cut[0]] + decisions[:cut[1]], intake[cut[0]:] + decisions[cut[1]:]]
        filed = _fold(MemoryStore(), [b for b in batches if b])
        assert (COUNTRY, "gamma labs", KEY) not in filed, (cut, filed)
        assert filed == set(), filed
    # Without the co-filers named (decisions before the fix), the row stayed filed.
    intake, decisions = _streams(())
    assert (COUNTRY, "gamma labs", KEY) in _fold(MemoryStore(), [intake + decisions])
