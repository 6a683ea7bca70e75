"""Which registration a CRM close by `external_ref` is about (`handlers.closed_by_reference`,
DESIGN.md "a close by reference"): a rival's later copy of the reference neither takes the
holder's close nor blocks it; what the reference does not settle stays a 422 (None)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.registration.handlers import closed_by_reference

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def row(id_: str, partner: str, status: str, minute: int,
        rule: str = "no_conflict") -> dict[str, Any]:
    return {"id": id_, "partner_id": partner, "status": status,
            "submitted_at": T0 + timedelta(minutes=minute),
            "decision": {"rule": rule}}


def test_a_rival_s_later_copy_in_review_does_not_block_the_holder_s_close() -> None:
    holder = row("r-1", "p-1", "approved", 0)
    for copy in (row("r-2", "p-2", "in_review", 5, "tie"),
                 row("r-2", "p-2", "submitted", 5),
                 row("r-2", "p-2", "approved", 5, "non_exclusive"),
                 row("r-2", "p-2", "expired", 5)):
        assert closed_by_reference([copy, holder]) is holder, copy
    # Several copies by several rivals, and the holder's own withdrawn first filing.
    rows = [row("r-0", "p-1", "withdrawn", -10), holder, row("r-3", "p-2", "in_review", 3),
            row("r-4", "p-3", "submitted", 4), row("r-5", "p-4", "rejected", 1)]
    assert closed_by_reference(rows) is holder


def test_what_the_reference_does_not_settle_stays_ambiguous() -> None:
    # A holder expired, a rival's copy active: whose opportunity it is nobody can say.
    assert closed_by_reference([row("r-1", "p-1", "expired", 0),
                                row("r-2", "p-2", "approved", 5)]) is None
    assert closed_by_reference([row("r-1", "p-1", "expired", 0),
                                row("r-2", "p-2", "in_review", 5, "tie")]) is None
    # Two protection holders of different partners (two customers under one reference).
    assert closed_by_reference([row("r-1", "p-1", "approved", 0),
                                row("r-2", "p-2", "approved", 5)]) is None
    # The one approved row was filed after another partner's row that held something.
    assert closed_by_reference([row("r-1", "p-1", "approved", 0, "non_exclusive"),
                                row("r-2", "p-2", "approved", 5)]) is None
    # No protection holder at all.
    assert closed_by_reference([row("r-1", "p-1", "in_review", 0, "tie"),
                                row("r-2", "p-2", "in_review", 0, "tie")]) is None
    # A non-exclusive approval is no protection holder.
    assert closed_by_reference([row("r-1", "p-1", "approved", 0, "non_exclusive"),
                                row("r-2", "p-2", "in_review", 5, "tie")]) is None


def test_one_partner_s_own_rows_close_as_before() -> None:
    first, again = row("r-1", "p-1", "expired", 0), row("r-2", "p-1", "approved", 9)
    assert closed_by_reference([first, again]) is again
    ended = row("r-3", "p-1", "won", 0)
    assert closed_by_reference([ended]) is ended
    assert closed_by_reference([row("r-1", "p-1", "approved", 0),
                                row("r-2", "p-1", "in_review", 1)]) is None


def test_a_row_in_review_filed_before_the_holder_s_does_not_block_its_close() -> None:
    """Session 29: a row in review (or not yet decided) holds nothing, so the approved
    holder's close by reference goes through whenever that row was filed; it ends the
    holder's registration only."""
    holder = row("r-2", "p-2", "approved", 5)
    for pending in (row("r-1", "p-1", "in_review", 0, "possible_duplicate"),
                    row("r-1", "p-1", "submitted", 0)):
        assert closed_by_reference([pending, holder]) is holder, pending
    # One that held something before the holder's filing still makes it ambiguous.
    assert closed_by_reference([row("r-1", "p-1", "expired", 0), holder,
                                row("r-3", "p-3", "in_review", 1, "tie")]) is None


def test_a_rival_s_copy_of_a_closed_reference_takes_no_close() -> None:
    """Session 29 rival review: the holder's row won, a rival's later copy of the reference
    (approved after, or non-exclusive beside it) took the CRM's re-sent close."""
    won = row("r-1", "p-1", "won", 0)
    for copy in (row("r-2", "p-2", "approved", 5),
                 row("r-2", "p-2", "approved", 5, "non_exclusive"),
                 row("r-2", "p-2", "expired", 5)):
        assert closed_by_reference([won, copy]) is None, copy
        # The closing partner's own renewal under the reference still takes it.
        renewal = row("r-3", "p-1", "approved", 9)
        assert closed_by_reference([won, copy, renewal]) is renewal, copy
    # A row filed before the other partner's closed one is no copy of it.
    earlier = row("r-0", "p-2", "approved", -5)
    assert closed_by_reference([row("r-1", "p-1", "lost", 0), earlier]) is earlier


def test_a_rival_s_pending_row_filed_before_the_holder_s_takes_no_re_sent_close() -> None:
    """Session 29 second rival review: a rival's row in review (or undecided) filed before
    the holder's no longer blocks the holder's close (s29-decisions), so the close won
    the holder's row; the CRM's re-sent close (an amount update) then found the rival's
    pending row the one closable row and closed it `won`: the holder's win taken by a
    row that holds nothing. A row still pending when another partner's row of the
    reference closed is never chosen (None: the CRM sends `registration_id`)."""
    for closed in ("won", "lost"):
        holder = row("r-2", "p-2", closed, 5)
        for pending in (row("r-1", "p-1", "in_review", 0, "possible_duplicate"),
                        row("r-1", "p-1", "submitted", 0)):
            assert closed_by_reference([pending, holder]) is None, (closed, pending)
            # The closing partner's own renewal under the reference still takes it.
            renewal = row("r-3", "p-2", "approved", 9)
            assert closed_by_reference([pending, holder, renewal]) is renewal
    # The first close, before either closed, still goes to the holder.
    assert closed_by_reference([row("r-1", "p-1", "in_review", 0, "possible_duplicate"),
                                row("r-2", "p-2", "approved", 5)])["id"] == "r-2"
