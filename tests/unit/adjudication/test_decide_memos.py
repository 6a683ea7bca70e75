"""The caches and shortcuts on decide's path (issue 16) answer exactly what the long way
does: instants, sentences' dates, policy spans, account identities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.adjudication.domain import adjudicate, explain, instants, outcomes
from services.adjudication.domain.state import AdjudicationState
from shared.events.registration import Account

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = st.integers(-(10**15), 253_402_300_799_999_999 - 62_135_596_800_000_000)


@given(us=_US)
def test_from_us_is_the_epoch_plus_that_many_microseconds(us: int) -> None:
    moment = instants.from_us(us)
    assert moment == _EPOCH + timedelta(microseconds=us)
    assert moment.tzinfo is UTC
    assert instants.to_us(moment) == us


@settings(max_examples=300)
@given(us=_US)
def test_a_day_in_a_sentence_is_the_instant_to_the_minute(us: int) -> None:
    exact = (_EPOCH + timedelta(microseconds=us)).isoformat(" ", "minutes")[:16] + " UTC"
    assert explain.day(us) == exact
    assert explain.day(us) == exact  # answered from the memo


def test_days_stay_right_past_the_memo_bound_and_within_a_minute() -> None:
    start = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC
    for minute in range(5000):  # more minutes than the memo keeps
        us = start + minute * 60_000_000 + 59_999_999  # the minute's last microsecond
        assert explain.day(us) == explain.day(us - 59_999_999)
        assert explain.day(us) == instants.from_us(us).strftime("%Y-%m-%d %H:%M UTC")


@given(span=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)))
def test_span_us_is_the_span_in_microseconds(span: timedelta) -> None:
    assert instants.span_us(span) == span // timedelta(microseconds=1)
    assert instants.span_us(span) == span // timedelta(microseconds=1)


_FACET = st.one_of(st.none(), st.sampled_from(
    ["Acme Corp", "ACME corp.", " acme.com ", "Acme.COM", "US", "de", "C1 ", "",
     "Soci\u00e9t\u00e9 G\u00e9n\u00e9rale"]))


@given(name=_FACET, domain=_FACET, country=_FACET, crm=_FACET)
def test_identity_of_answers_as_the_uncached_way(name: str | None, domain: str | None,
                                                 country: str | None, crm: str | None) -> None:
    account = Account(name=name, domain=domain, country=country, crm_account_id=crm)
    again = Account(name=name, domain=domain, country=country, crm_account_id=crm)
    assert adjudicate.identity_of(account) == adjudicate._identity_of(account)
    assert adjudicate.identity_of(again) == adjudicate._identity_of(account)


_PRODUCTS = st.lists(st.sampled_from(["platform", "support", "analytics", "edge", "x"]),
                     max_size=4).map(tuple)


@settings(max_examples=200)
@given(batches=st.lists(_PRODUCTS, min_size=1, max_size=30))
def test_interned_products_are_the_states_own_set_of_them(
        batches: list[tuple[str, ...]]) -> None:
    """The process-wide memo by tuple never hands a state another state's set: each state
    keeps one set per combination, equal to the tuple's, whichever state asked first."""
    first, second = AdjudicationState(), AdjudicationState()
    for products in batches:
        mine = first.intern_products(products)
        assert mine == frozenset(products)
        assert mine is first.intern_products(tuple(reversed(products)))
        assert mine is first.intern_products(frozenset(products))
        theirs = second.intern_products(frozenset(products))
        assert theirs is second.intern_products(products)


def test_products_past_the_memo_bounds_stay_right() -> None:
    state = AdjudicationState()
    for n in range(3000):  # more combinations than either memo keeps
        products = (f"p{n}", f"a{n % 7}")
        interned = state.intern_products(products)
        assert interned == frozenset(products)
        assert outcomes._sorted_products(interned) == tuple(sorted(products))
