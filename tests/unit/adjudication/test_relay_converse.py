"""A home decision reaches the review elsewhere that holds a copy (DESIGN.md, "A home
decision reaches the review elsewhere that holds a copy"; invariant 5).

p-01 is approved on the domain key (A) for analytics and crm; the name-only key's review
(B) holds p-02 and the copy of p-01. On A, platinum p-04 challenges p-01 for crm and A's
person awards p-04: p-01 is rejected at home. B's review must not wait on it with p-02
alone, whichever order A decides the review's notice and its own award in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.adjudication.domain import AdjudicationState, DecisionContext
from services.adjudication.domain.decide import decide_relaying
from shared.events import (
    Account,
    AccountLinkReported,
    CopiesInReview,
    DisputeOpened,
    DisputeResolutionSubmitted,
    DisputeResolved,
    DomainEvent,
    HomeEndRelayed,
    Opportunity,
    PartnerSnapshot,
    RegistrationDecided,
    RegistrationSubmitted,
    ReportedRegistration,
)
from shared.policy import Policy

HOME = "dom:heuser-holdings.com"
ALIAS = "name:heuser holdings gmbh"
T = datetime(2026, 11, 1, tzinfo=UTC)


def _at(hours: int) -> datetime:
    return T + timedelta(hours=hours)


def _submitted(rid: str, partner: str, key: str, hours: int, products: tuple[str, ...],
               tier: str = "registered") -> RegistrationSubmitted:
    return RegistrationSubmitted(
        registration_id=rid, partner_id=partner,
        partner=PartnerSnapshot(partner_id=partner, tier=tier), account_key=key,
        account=Account(name="Heuser Holdings",
                        domain="heuser-holdings.com" if key == HOME else None),
        opportunity=Opportunity(title="deal", products=products), motion="resell",
        submitted_at=_at(hours), policy_version=1)


def _decide(state: AdjudicationState, eid: str, event: DomainEvent,
            hours: int) -> tuple[list[DomainEvent], list[DomainEvent]]:
    decisions, relays = decide_relaying(state, event, DecisionContext(
        eid, _at(hours), Policy.default(1)))
    return decisions, list(relays)


def _review_with_a_copy() -> tuple[AdjudicationState, AdjudicationState, str, CopiesInReview]:
    """A with p-01 approved and p-04 challenging it; B with its review over p-02 and the
    copy of p-01, and the notice B's review sent A."""
    home, alias = AdjudicationState(), AdjudicationState()
    _decide(home, "e1", _submitted("reg_p01", "p-01", HOME, 0, ("analytics", "crm")), 0)
    _decide(alias, "e2", AccountLinkReported(
        account_key=ALIAS, alias_key=HOME, matched_by="name", reported_at=_at(1),
        policy_version=1, registration_id="reg_p02", possible_duplicate=True,
        registrations=(ReportedRegistration(
            registration_id="reg_p01", party_type="partner", party_id="p-01",
            motion="resell", products=("analytics", "crm"), status="approved",
            submitted_at=_at(0)),)), 1)
    opened, notices = _decide(alias, "e3",
                              _submitted("reg_p02", "p-02", ALIAS, 1, ("analytics",)), 1)
    assert [type(n) for n in notices] == [CopiesInReview]
    notice = notices[0]
    assert isinstance(notice, CopiesInReview)
    assert (notice.account_key, notice.review_key, notice.registration_ids) == (
        HOME, ALIAS, ("reg_p01",))
    assert not any(isinstance(d, CopiesInReview) for d in opened)  # never a decision
    challenge, _ = _decide(home, "e4", _submitted("reg_p04", "p-04", HOME, 2, ("crm",),
                                                  tier="platinum"), 2)
    return home, alias, _opened(challenge), notice


def _opened(decisions: list[DomainEvent]) -> str:
    return next(d.dispute_id for d in decisions if isinstance(d, DisputeOpened))


def _award_p04(home: AdjudicationState, dispute_id: str, hours: int
               ) -> tuple[list[DomainEvent], list[DomainEvent]]:
    return _decide(home, "e6", DisputeResolutionSubmitted(
        dispute_id=dispute_id, account_key=HOME, actor_id="admin", actor_role="admin",
        outcome="award", registration_id="reg_p04", submitted_at=_at(hours)), hours)


def _review_frees_p02(alias: AdjudicationState, told: DomainEvent) -> None:
    assert isinstance(told, HomeEndRelayed)
    assert (told.account_key, told.home_key) == (ALIAS, HOME)
    assert [(e.registration_id, e.status) for e in told.ended] == [("reg_p01", "rejected")]
    decisions, relays = _decide(alias, "e7", told, 4)
    assert relays == []
    moot = [d for d in decisions if isinstance(d, DisputeResolved)]
    assert [d.outcome for d in moot] == ["moot"]
    p02 = [d for d in decisions if isinstance(d, RegistrationDecided)]
    assert [(d.registration_id, d.status) for d in p02] == [("reg_p02", "approved")]
    assert alias.entries["reg_p01"].status == "expired"  # not for good: a contest may win


def test_a_rejection_at_home_tells_the_review_that_holds_its_copy() -> None:
    home, alias, challenge, notice = _review_with_a_copy()
    assert _decide(home, "e3.r0", notice, 2) == ([], [])  # remembered: nothing to tell yet
    decisions, told = _award_p04(home, challenge, 3)
    assert ("reg_p01", "rejected") in {(d.registration_id, d.status) for d in decisions
                                       if isinstance(d, RegistrationDecided)}
    assert len(told) == 1
    _review_frees_p02(alias, told[0])
    assert home.watchers == {}


def test_a_notice_that_arrives_after_the_rejection_is_answered_at_once() -> None:
    home, alias, challenge, notice = _review_with_a_copy()
    _, told = _award_p04(home, challenge, 3)
    assert told == []  # nobody known to tell yet
    decisions, answer = _decide(home, "e3.r0", notice, 3)
    assert decisions == [] and len(answer) == 1
    _review_frees_p02(alias, answer[0])


def test_an_approval_at_home_tells_the_review_nothing() -> None:
    home, _, challenge, notice = _review_with_a_copy()
    _decide(home, "e3.r0", notice, 2)
    _, told = _decide(home, "e6", DisputeResolutionSubmitted(
        dispute_id=challenge, account_key=HOME, actor_id="admin", actor_role="admin",
        outcome="co_sell", submitted_at=_at(3)), 3)
    assert told == []
    assert home.watchers == {"reg_p01": [ALIAS]}
