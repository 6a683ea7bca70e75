"""A contest is one appeal per rival protection, also when the rival is met again as its
copy on another partition (invariant 9; DESIGN.md, "Contests end"; session 26).

Davis has two keys on two partitions: B (CRM id) holds p-01 (crm), A (domain) holds p-04
(analytics); each holds a copy of the other's registration. p-02 registers on B for both
products, loses by tier to p-01, and contests. B's review draws in the copy of p-04, which
also overlaps it, and tells A (`CopiesInReview`), naming B's own p-01 that p-02 contested
losing to (`appealed_here`): A, which holds a copy of p-01, remembers the appeal beside it.
p-02 registering again under A's key and losing to that copy may not contest again; a
partner that never contested may, and so may p-02 once the copy ended and came back
(another grant).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from services.adjudication.domain import AdjudicationState, DecisionContext
from services.adjudication.domain.decide import decide_relaying
from shared.events import (
    Account,
    AccountLinkReported,
    CopiesInReview,
    DisputeActionRejected,
    DisputeFiled,
    DisputeOpened,
    DisputeResolutionSubmitted,
    DomainEvent,
    EndedAtHome,
    HomeEndRelayed,
    Opportunity,
    PartnerSnapshot,
    RegistrationDecided,
    RegistrationSubmitted,
    ReportedRegistration,
    encode,
    new_envelope,
)
from shared.events.codec import decode
from shared.events.registration import RegistrationStatus
from shared.policy import Policy

A = "dom:davis.com"
B = "crm:0012dav"
T = datetime(2026, 11, 1, tzinfo=UTC)
SECOND = "contested losing to the same registration once already"


def _at(hours: int) -> datetime:
    return T + timedelta(hours=hours)


_DEFAULT = Policy.default(1)
POLICY = _DEFAULT.model_copy(update={
    "match": _DEFAULT.match.model_copy(update={"crm_ids": "any_case"})})
"""The reading this story was written under (session 26): p-02's CRM id "0012DAV" is not
B's "0012dav" by letter case, so B's copy of p-04 is met only when B's review draws it in.
Under `any_spelling` (session 28's default) they are one id, p-02 is B's customer outright
and the copy of p-04 beats it at once beside p-01 (`beaten_by` both), so the story of a
copy met only through a review needs the reading under which that happens; policy
versions keep the reading they were published with."""


def _decide(state: AdjudicationState, eid: str, event: DomainEvent,
            hours: int) -> tuple[list[DomainEvent], list[DomainEvent]]:
    decisions, relays = decide_relaying(state, event, DecisionContext(
        eid, _at(hours), POLICY))
    return decisions, list(relays)


def _submitted(rid: str, partner: str, key: str, hours: int, products: tuple[str, ...],
               tier: str = "registered") -> RegistrationSubmitted:
    return RegistrationSubmitted(
        registration_id=rid, partner_id=partner,
        partner=PartnerSnapshot(partner_id=partner, tier=tier), account_key=key,
        account=Account(name="Davis, Todd and Hernandez",
                        domain="davis.com" if key == A else None,
                        crm_account_id="0012DAV" if key == B else None),
        opportunity=Opportunity(title="deal", products=products), motion="resell",
        submitted_at=_at(hours), policy_version=1)


def _copy(rid: str, partner: str, products: tuple[str, ...],
          status: RegistrationStatus = "approved") -> ReportedRegistration:
    return ReportedRegistration(
        registration_id=rid, party_type="partner", party_id=partner, motion="resell",
        products=products, status=status, submitted_at=_at(0), tier="gold")


def _report(state: AdjudicationState, eid: str, key: str, alias: str, hours: int,
            *copies: ReportedRegistration) -> None:
    _decide(state, eid, AccountLinkReported(
        account_key=key, alias_key=alias, matched_by="name", reported_at=_at(hours),
        policy_version=1, registrations=copies), hours)


def _status(decisions: list[DomainEvent], rid: str) -> str:
    return next(d.status for d in decisions
                if isinstance(d, RegistrationDecided) and d.registration_id == rid)


def _contest(state: AdjudicationState, eid: str, rid: str, partner: str, key: str,
             hours: int) -> tuple[list[DomainEvent], list[DomainEvent]]:
    return _decide(state, eid, DisputeFiled(
        dispute_id=f"dsp_{rid}", registration_id=rid, partner_id=partner, account_key=key,
        reason="we found them first", filed_at=_at(hours), policy_version=1), hours)


def _first_appeal() -> AdjudicationState:
    """A after p-02's contest on B: told of it, holding the copy of p-01."""
    return _both_after_the_first_appeal()[0]


def _both_after_the_first_appeal() -> tuple[AdjudicationState, AdjudicationState]:
    a, b = AdjudicationState(), AdjudicationState()
    _decide(b, "e1", _submitted("reg_p01", "p-01", B, 0, ("crm",), tier="gold"), 0)
    _decide(a, "e2", _submitted("reg_p04", "p-04", A, 0, ("analytics",), tier="gold"), 0)
    _report(a, "e3", A, B, 1, _copy("reg_p01", "p-01", ("crm",)))
    _report(b, "e4", B, A, 1, _copy("reg_p04", "p-04", ("analytics",)))
    decisions, _ = _decide(b, "e5", _submitted("reg_p02", "p-02", B, 2, ("crm", "analytics")),
                           2)
    assert _status(decisions, "reg_p02") == "rejected"
    assert b.entries["reg_p02"].beaten_by == ("reg_p01",)
    decisions, relays = _contest(b, "e6", "reg_p02", "p-02", B, 3)
    assert any(isinstance(d, DisputeOpened) for d in decisions)
    notices = [r for r in relays if isinstance(r, CopiesInReview)]
    assert [(n.account_key, n.registration_ids, n.contested_by, n.appealed, n.appealed_here)
            for n in notices] == [(A, ("reg_p04",), "p-02", (), ("reg_p01",))]
    _decide(a, "e6.r0", notices[0], 3)
    return a, b


def test_a_second_contest_against_the_rival_s_copy_elsewhere_is_refused() -> None:
    """Fails without `appealed_here`: A opened a second level-1 dispute."""
    a = _first_appeal()
    decisions, _ = _decide(a, "e7", _submitted("reg_p02b", "p-02", A, 4, ("crm",)), 4)
    assert _status(decisions, "reg_p02b") == "rejected"
    assert a.entries["reg_p02b"].beaten_by == ("reg_p01",)
    decisions, _ = _contest(a, "e8", "reg_p02b", "p-02", A, 5)
    refused = [d for d in decisions if isinstance(d, DisputeActionRejected)]
    assert [r.reason for r in refused] == ["not_disputable"] and SECOND in refused[0].explanation
    assert not any(isinstance(d, DisputeOpened) for d in decisions)


def test_a_partner_that_never_contested_the_copy_may() -> None:
    a = _first_appeal()
    _decide(a, "e7", _submitted("reg_p03", "p-03", A, 4, ("crm",)), 4)
    decisions, _ = _contest(a, "e8", "reg_p03", "p-03", A, 5)
    assert any(isinstance(d, DisputeOpened) for d in decisions)


def test_a_copy_that_ended_and_came_back_is_another_grant() -> None:
    """The appeal is remembered beside the copy while it lasts: p-01 rejected at home
    (told here, `HomeEndRelayed`: the copy ends, not for good) and approved again there (a
    contest it won) is a new grant, brought back by a later report, and p-02 may contest
    it. Fails if the appeal outlives the copy."""
    a = _first_appeal()
    assert a.appealed == {"reg_p01": ["p-02"]}
    _decide(a, "e7", HomeEndRelayed(account_key=A, home_key=B, ended=(
        EndedAtHome(registration_id="reg_p01", status="rejected"),), ended_at=_at(4)), 4)
    assert not a.entries["reg_p01"].active
    _report(a, "e8", A, B, 5, _copy("reg_p01", "p-01", ("crm",)))
    assert a.entries["reg_p01"].active
    _decide(a, "e9", _submitted("reg_p02b", "p-02", A, 6, ("crm",)), 6)
    assert a.entries["reg_p02b"].beaten_by == ("reg_p01",)
    decisions, _ = _contest(a, "e10", "reg_p02b", "p-02", A, 7)
    assert any(isinstance(d, DisputeOpened) for d in decisions)


def test_a_copy_not_held_here_is_not_remembered() -> None:
    """Nothing to attach the appeal to: no memory of a registration this partition does
    not hold (it would outlive every grant)."""
    a = AdjudicationState()
    _decide(a, "e1", _submitted("reg_p04", "p-04", A, 0, ("analytics",), tier="gold"), 0)
    _decide(a, "e2", CopiesInReview(
        account_key=A, dispute_id="dsp_x", review_key=B, registration_ids=("reg_p04",),
        drawn_at=_at(1), contested_by="p-02", appealed=("reg_p04",),
        appealed_here=("reg_p01",)), 1)
    assert a.appealed == {"reg_p04": ["p-02"]}


def test_a_notice_written_before_the_field_decodes_naming_none() -> None:
    """Old logs decode: a `CopiesInReview` written before session 26 has no
    `appealed_here` and reads as naming none (nothing is remembered beside copies)."""
    event = CopiesInReview(account_key=A, dispute_id="dsp_x", review_key=B,
                           registration_ids=("reg_p04",), drawn_at=_at(1),
                           contested_by="p-02", appealed=("reg_p04",))
    body = orjson.loads(encode(new_envelope(event, id="evt_1", source="urn:test",
                                            subject=A, time=_at(1))))
    del body["data"]["appealed_here"]
    _, decoded = decode(orjson.dumps(body))
    assert isinstance(decoded, CopiesInReview)
    assert decoded.appealed_here == () and decoded == event


def test_a_review_elsewhere_that_holds_the_rival_s_copy_is_told_though_none_is_drawn_in(
) -> None:
    """The full ElsewhereRecentRules example: p-04 had ended, so B's contest drew no copy
    from A, but A's earlier review holds a copy of p-01 (B watches it for A,
    `state.watchers`): the notice goes there with the appeal alone. Fails without it."""
    a, b = AdjudicationState(), AdjudicationState()
    _decide(b, "e1", _submitted("reg_p01", "p-01", B, 0, ("crm",), tier="gold"), 0)
    _report(a, "e2", A, B, 1, _copy("reg_p01", "p-01", ("crm",)))
    _decide(b, "e3", CopiesInReview(account_key=B, dispute_id="dsp_a", review_key=A,
                                    registration_ids=("reg_p01",), drawn_at=_at(1)), 1)
    assert b.watchers == {"reg_p01": [A]}
    _decide(b, "e4", _submitted("reg_p02", "p-02", B, 2, ("crm",)), 2)
    _, relays = _contest(b, "e5", "reg_p02", "p-02", B, 3)
    notices = [r for r in relays if isinstance(r, CopiesInReview)]
    assert [(n.account_key, n.registration_ids, n.contested_by, n.appealed_here)
            for n in notices] == [(A, (), "p-02", ("reg_p01",))]
    _decide(a, "e5.r0", notices[0], 3)
    _decide(a, "e6", _submitted("reg_p02b", "p-02", A, 4, ("crm",)), 4)
    decisions, _ = _contest(a, "e7", "reg_p02b", "p-02", A, 5)
    refused = [d for d in decisions if isinstance(d, DisputeActionRejected)]
    assert [r.reason for r in refused] == ["not_disputable"] and SECOND in refused[0].explanation


def test_an_appeal_won_at_home_ends_the_copy_it_was_remembered_beside() -> None:
    """Rival 3 (session 26): A holds its copy of p-01 only to guard (no review of it
    there), so B did not count A as watching p-01. A person awards p-02 on B: p-01 is
    rejected there, yet A's copy stayed approved, p-02 registering under A's key lost to
    it, and its contest was refused as a second appeal -- the appeal it had won. B now
    counts a partition it told of the appeal as watching the rival (as a settled review:
    holding no line back), tells it the rival ended (`HomeEndRelayed`), and the copy ends
    there with the appeal beside it. Fails without it (p-02 rejected again on A)."""
    a, b = _both_after_the_first_appeal()
    [review] = b.disputes.values()
    _, relays = _decide(b, "e7", DisputeResolutionSubmitted(
        dispute_id=review.id, account_key=B, actor_id=review.owner_id, actor_role="owner",
        outcome="award", registration_id="reg_p02", note="p-02 found them first",
        submitted_at=_at(4)), 4)
    assert (b.entries["reg_p01"].status, b.entries["reg_p02"].status) == (
        "rejected", "approved")
    assert [(r.account_key, [w.registration_id for w in r.ended]) for r in relays
            if isinstance(r, HomeEndRelayed)] == [(A, ["reg_p01"])]
    for relay in relays:
        _decide(a, f"e7.{relay.account_key}", relay, 4)
    assert not a.entries["reg_p01"].active and a.appealed == {}
    decisions, _ = _decide(a, "e8", _submitted("reg_p02b", "p-02", A, 5, ("crm",)), 5)
    assert _status(decisions, "reg_p02b") == "approved"
