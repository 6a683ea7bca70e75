"""A filing in review that a person later rejects adds no names that join customers, as
one rejected at its decision (session 29 decision, session 30: `match.rejected_names:
unfiled`, `AdjudicationState.brought` / `retired`): its rejecting decision takes back the
forms it brought that no other live filing filed since, and says so (`unfiled_names`)."""

from __future__ import annotations

from adjudication_driver import Driver, decisions, only, policy

from services.adjudication import snapshots
from shared.accounts import AccountIdentity, normalize_name
from shared.eventlog import TopicPartition
from shared.events import DisputeOpened


def _holders(d: Driver, name: str = "Widget Labs") -> list[str]:
    trade = AccountIdentity(None, None, normalize_name(name, "US"), "US")
    return [m.account_key for m in d.state.index.match(trade, 0.9)]


def _tie(d: Driver) -> str:
    """r1 (p-1) holds Acme; r2 (p-2), "Acme Corp dba Widget Labs" inside the tie window,
    waits for a person beside it; the trade name is weighed meanwhile."""
    d.register("r1", "p-1", name="Acme Corp")
    d.later(minutes=5)
    out = d.register("r2", "p-2", name="Acme Corp dba Widget Labs")
    assert d.status("r2") == "in_review"
    assert _holders(d) == ["dom:acme.com"]
    [opened] = only(out, DisputeOpened)
    return str(opened.dispute_id)


def test_a_filing_a_person_rejects_takes_back_the_names_it_brought() -> None:
    d = Driver(policy=policy())
    dispute = _tie(d)
    d.later(hours=1)
    out = d.resolve(dispute, "award", registration_id="r1")
    [decided] = decisions(out, "r2")
    assert decided.status == "rejected"
    assert decided.unfiled_names == ("widget labs",)
    assert _holders(d) == []  # a later filing of Widget Labs meets nobody's customer
    assert decisions(out, "r1")[0].unfiled_names == ()
    assert not d.state.brought.brought and not d.state.unfiled_now


def test_a_name_another_live_filing_filed_meanwhile_stays() -> None:
    """p-3 files "Widget Labs" under the same key while r2 waits, and a person approves
    it: r2's rejection takes back nothing (r3 holds the name)."""
    d = Driver(policy=policy())
    dispute = _tie(d)
    d.later(minutes=5)
    d.register("r3", "p-3", name="Widget Labs")
    assert d.status("r3") == "in_review"
    d.later(hours=1)
    out = d.resolve(dispute, "award", registration_id="r3")
    [decided] = decisions(out, "r2")
    assert decided.status == "rejected"
    assert decided.unfiled_names == ()
    assert _holders(d) == ["dom:acme.com"]


def test_a_filing_rejected_at_its_decision_keeps_no_name_for_another() -> None:
    """A second filing of the trade name, rejected at its own decision (p-2's duplicate of
    its waiting r2), is no live filing: the person's rejection of r2 still takes it back."""
    d = Driver(policy=policy())
    dispute = _tie(d)
    d.later(hours=2)
    d.register("r4", "p-2", name="Acme Corp dba Widget Labs")
    assert d.status("r4") == "rejected"
    assert _holders(d) == ["dom:acme.com"]  # r2's, still waiting
    d.later(hours=1)
    out = d.resolve(dispute, "award", registration_id="r1")
    assert decisions(out, "r2")[0].unfiled_names == ("widget labs",)
    # r4 counted for nothing, but the directory's row of the form names it as its latest
    # filer: the decision names it so the directory takes the form back too (crfix).
    assert decisions(out, "r2")[0].unfiled_cofilers == ("r4",)
    assert _holders(d) == []


def test_older_policy_documents_keep_a_reviewed_filing_s_names() -> None:
    """`match.rejected_names: filed` (documents published before session 29): old logs
    replay as they were decided."""
    d = Driver(policy=policy(match={"rejected_names": "filed"}))
    dispute = _tie(d)
    assert not d.state.brought.brought
    d.later(hours=1)
    out = d.resolve(dispute, "award", registration_id="r1")
    assert decisions(out, "r2")[0].unfiled_names == ()
    assert _holders(d) == ["dom:acme.com"]


def test_a_contested_rejection_a_person_rejects_again_takes_the_names_back_again() -> None:
    """Rejected at its decision (names taken back), contested (filed again, in review:
    `refiled_names`), rejected by the person: taken back once more."""
    d = Driver(policy=policy(tie_window="PT0S"))
    d.register("r1", "p-1", name="Acme Corp")
    d.later(hours=1)
    d.register("r2", "p-2", name="Acme Corp dba Widget Labs")
    assert d.status("r2") == "rejected" and _holders(d) == []
    d.later(hours=1)
    out = d.contest("r2", "p-2")
    assert d.status("r2") == "in_review"
    assert decisions(out, "r2")[0].refiled_names == ("widget labs",)
    assert _holders(d) == ["dom:acme.com"]
    d.later(hours=1)
    out = d.resolve("dsp-c1", "award", registration_id="r1")
    assert decisions(out, "r2")[0].unfiled_names == ("widget labs",)
    assert _holders(d) == []


def test_a_snapshot_taken_while_it_waits_decides_its_rejection_alike() -> None:
    """Snapshot schema 13 keeps what each waiting entry brought: recovery from it decides
    the person's rejection exactly as the live state does."""
    tp = TopicPartition("t.intake", 0)
    live = Driver(policy=policy())
    dispute = _tie(live)
    blob = snapshots.encode(live.state, tp, 2)
    restored, covers = snapshots.decode(blob, tp, 2)
    assert covers == 2
    other = Driver(policy=live.policy, now=live.now, state=restored)
    for d in (live, other):
        d.later(hours=1)
    a = live.resolve(dispute, "award", registration_id="r1")
    b = other.resolve(dispute, "award", registration_id="r1")
    assert [e.model_dump() for e in a] == [e.model_dump() for e in b]
    assert decisions(b, "r2")[0].unfiled_names == ("widget labs",)
    assert _holders(other) == []


def test_a_fallback_settlement_s_rejection_takes_the_names_back_too() -> None:
    """Nobody decides: the final-breach fallback settles the review (the earlier filing
    wins the tie). One rule for every rejection that ends a review."""
    d = Driver(policy=policy())
    _tie(d)
    out = d.run_until(d.later(days=30))
    [decided] = decisions(out, "r2")
    assert (decided.status, decided.rule) == ("rejected", "final_breach_fallback")
    assert decided.unfiled_names == ("widget labs",)
    assert _holders(d) == []
