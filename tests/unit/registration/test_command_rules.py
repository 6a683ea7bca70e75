"""The pure rules of the command side: access, idempotency, CloudEvents, key choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.registration.domain import access
from services.registration.domain.cloudevents import NotCloudEvents, parse, parse_event
from services.registration.domain.idempotency import Stored, Verdict, fingerprint, judge
from services.registration.domain.intake import InvalidAccount, identity_of
from services.registration.domain.resolution import choose
from services.registration.handlers import partition_keys
from shared.accounts import AccountIndex, AccountMatch
from shared.api.auth import split_token
from shared.eventlog.partitioner import partition_for

NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)


# --- access ------------------------------------------------------------------------------

def test_a_partner_registers_only_for_itself() -> None:
    assert access.acting_partner("partner", "p-1", None) == "p-1"
    assert access.acting_partner("partner", "p-1", "p-1") == "p-1"
    with pytest.raises(access.Denied) as denied:
        access.acting_partner("partner", "p-1", "p-2")
    assert denied.value.status == 403
    assert access.acting_partner("integration", None, "p-2") == "p-2"


def test_a_rep_claims_only_for_itself() -> None:
    assert access.acting_rep("rep", "r-1", None) == "r-1"
    with pytest.raises(access.Denied):
        access.acting_rep("rep", "r-1", "r-2")


def test_another_partners_registration_does_not_exist_for_a_partner() -> None:
    access.check_owns_registration("partner", "p-1", "p-1", "reg_1")
    access.check_owns_registration("integration", None, "p-1", "reg_1")
    with pytest.raises(access.Denied) as denied:
        access.check_owns_registration("partner", "p-2", "p-1", "reg_1")
    assert denied.value.status == 404


def test_an_owner_acts_only_on_disputes_assigned_to_it() -> None:
    access.check_assigned("owner", "cm-1", "cm-1", "dsp_1")
    access.check_assigned("owner", "cm-1", None, "dsp_1")  # unknown: adjudication decides
    access.check_assigned("admin", None, "cm-1", "dsp_1")
    with pytest.raises(access.Denied) as denied:
        access.check_assigned("owner", "cm-2", "cm-1", "dsp_1", ("cm-2", "cm-1"))
    assert denied.value.status == 403  # it was assigned to cm-2 before: cm-2 may read it


def test_a_dispute_never_assigned_to_an_owner_does_not_exist_for_it() -> None:
    with pytest.raises(access.Denied) as denied:
        access.check_assigned("owner", "cm-2", "cm-1", "dsp_1", ("cm-1",))
    assert denied.value.status == 404


# --- idempotency ---------------------------------------------------------------------------

def test_fingerprints_ignore_json_formatting_but_not_content() -> None:
    a = fingerprint("POST", "/v1/x", b'{"a": 1, "b": [1, 2]}')
    assert a == fingerprint("post", "/v1/x", b'{"b":[1,2],"a":1}')
    assert a != fingerprint("POST", "/v1/x", b'{"a": 2, "b": [1, 2]}')
    assert a != fingerprint("POST", "/v1/y", b'{"a": 1, "b": [1, 2]}')
    assert fingerprint("POST", "/v1/x", b"{not json") != fingerprint("POST", "/v1/x", b"")


def stored(done: bool, age: float = 1.0, ttl: float = 3600.0, fp: str = "f") -> Stored:
    created = NOW - timedelta(seconds=age)
    return Stored(fp, done, created, created + timedelta(seconds=ttl))


@pytest.mark.parametrize(("entry", "fp", "verdict"), [
    (None, "f", Verdict.PROCEED),
    (stored(True), "f", Verdict.REPLAY),
    (stored(True), "g", Verdict.MISMATCH),
    (stored(False), "f", Verdict.IN_PROGRESS),
    (stored(False, age=120), "f", Verdict.PROCEED),  # abandoned by a crashed process
    (stored(True, age=7200), "g", Verdict.PROCEED),  # expired
])
def test_idempotency_verdicts(entry: Stored | None, fp: str, verdict: Verdict) -> None:
    assert judge(entry, fp, NOW, lease_seconds=60) is verdict


# --- CloudEvents ---------------------------------------------------------------------------

def event(**overrides: object) -> dict[str, object]:
    raw: dict[str, object] = {"specversion": "1.0", "id": "1", "source": "urn:prm",
                              "type": "dealreg.registration.submitted.v1", "data": {}}
    raw.update(overrides)
    return raw


def test_a_valid_structured_event_parses() -> None:
    [parsed] = parse(event(time="2026-11-23T09:00:00Z"), batch=False, limit=10)
    assert parsed.valid and parsed.id == "1" and parsed.time == NOW


@pytest.mark.parametrize(("overrides", "field"), [
    ({"specversion": "0.3"}, "specversion"),
    ({"id": ""}, "id"),
    ({"source": None}, "source"),
    ({"type": "com.example.unknown.v1"}, "type"),
    ({"data": "text"}, "data"),
    ({"datacontenttype": "text/plain"}, "datacontenttype"),
    ({"time": "yesterday"}, "time"),
    ({"data_base64": "AAAA"}, "data_base64"),
])
def test_each_envelope_problem_is_reported(overrides: dict[str, object], field: str) -> None:
    parsed = parse_event(0, event(**overrides))
    assert not parsed.valid
    assert field in [e["field"] for e in parsed.errors]


def test_a_batch_is_judged_event_by_event() -> None:
    results = parse([event(), event(type="nope.v1"), 42], batch=True, limit=10)
    assert [r.valid for r in results] == [True, False, False]
    assert [r.index for r in results] == [0, 1, 2]


def test_batch_shape_and_size_are_checked() -> None:
    with pytest.raises(NotCloudEvents):
        parse({"not": "a list"}, batch=True, limit=10)
    with pytest.raises(NotCloudEvents):
        parse([event()] * 3, batch=True, limit=2)
    with pytest.raises(NotCloudEvents):
        parse([event()], batch=False, limit=10)


# --- account identity and key choice -------------------------------------------------------

@pytest.mark.parametrize(("domain", "expected"), [
    ("https://www.Shop.Acme.co.uk/about?x=1", "acme.co.uk"),
    ("jane.doe@sales.acme.com", "acme.com"),
    ("WWW.ACME.COM", "acme.com"),
    ("bücher.de", "xn--bcher-kva.de"),
])
def test_domains_come_from_urls_and_emails(domain: str, expected: str) -> None:
    assert identity_of(None, domain, None, None).domain == expected


@pytest.mark.parametrize(("a", "b"), [
    ("Acme Corp", "ACME Corporation"),
    ("Müller GmbH", "Muller"),
    ("Société Générale S.A.", "societe generale"),
    ("Globex B.V.", "Globex"),
    ("Initech, Inc.", "initech"),
])
def test_legal_suffixes_accents_and_case_normalise_away(a: str, b: str) -> None:
    assert identity_of(a, None, "US", None).name == identity_of(b, None, "US", None).name


def test_free_mail_does_not_identify_a_company() -> None:
    with pytest.raises(InvalidAccount, match="free-mail"):
        identity_of(None, "bob@gmail.com", None, None)
    assert identity_of("Acme", "bob@gmail.com", "US", None).domain is None


def test_new_accounts_get_a_derived_key() -> None:
    identity = identity_of("Acme Corp", "acme.com", "US", None)
    assert choose(identity, []).account_key == "dom:acme.com"
    assert choose(identity_of("Acme Corp", None, "US", None), []).account_key == \
        "name:US:acme"


def test_exact_evidence_beats_names_and_other_keys_become_aliases() -> None:
    identity = identity_of("Acme", "acme.com", "US", "crm-1")
    matches = [
        AccountMatch("name:US:acme", "name", 0.95, True),
        AccountMatch("dom:acme.com", "domain", 1.0, True),
        AccountMatch("crm:crm-1", "crm_account_id", 1.0, True),
        AccountMatch("name:US:acmex", "name", 0.85, False),
    ]
    resolution = choose(identity, matches)
    assert resolution.account_key == "crm:crm-1"
    assert [a.account_key for a in resolution.aliases] == ["dom:acme.com", "name:US:acme"]
    assert [m.account_key for m in resolution.possible_duplicates] == ["name:US:acmex"]


def test_a_name_in_the_review_band_never_reuses_a_key() -> None:
    identity = identity_of("Acme", None, "US", None)
    resolution = choose(identity, [AccountMatch("name:US:acmee", "name", 0.85, False)])
    assert resolution.is_new and resolution.account_key == "name:US:acme"


def _resolve(index: AccountIndex, name: str | None, domain: str | None, country: str | None,
             crm: str | None = None) -> str:
    """Resolve like the edge's directory does, then file the account like after an append."""
    identity = identity_of(name, domain, country, crm)
    matches = index.match(identity, 0.9, 0.1)
    key = choose(identity, matches, index.identifiers, index.__contains__).account_key
    index.add(key, identity)
    return key


def test_similar_names_with_different_domains_get_different_keys() -> None:
    # Issue 12, defect 1: "Bench Account 406" (bench406.com) was filed under dom:bench0.com.
    index = AccountIndex()
    keys = [_resolve(index, f"Bench Account {n}", f"bench{n}.com", "US") for n in range(500)]
    assert keys == [f"dom:bench{n}.com" for n in range(500)]


def test_a_throwaway_domain_cannot_squat_a_popular_name() -> None:
    # "Initech 7 Inc" at junk-7.example.org must not capture the real initech-7.com.
    index = AccountIndex()
    assert _resolve(index, "Initech 7 Inc", "junk-7.example.org", "US") == "dom:example.org"
    assert _resolve(index, "Initech 7 Inc", "initech-7.com", "US") == "dom:initech-7.com"


def test_legal_form_variants_with_different_domains_are_two_customers() -> None:
    index = AccountIndex()
    assert _resolve(index, "Anderson Ltd", "anderson-ltd.com", "GB") == "dom:anderson-ltd.com"
    assert _resolve(index, "Anderson Inc", "anderson.com", "GB") == "dom:anderson.com"
    assert _resolve(index, "Jones PLC", "jones.co.uk", "GB") == "dom:jones.co.uk"
    assert _resolve(index, "Jones Inc", "jonesinc.com", "GB") == "dom:jonesinc.com"


def test_a_name_still_decides_where_one_side_has_no_identifier() -> None:
    index = AccountIndex()
    assert _resolve(index, "Anderson Ltd", "anderson.com", "GB") == "dom:anderson.com"
    assert _resolve(index, "Anderson Inc", None, "GB") == "dom:anderson.com"
    assert _resolve(index, "Globex Corp", None, "US") == "name:US:globex"
    assert _resolve(index, "Globex Inc", "globex.com", "US") == "name:US:globex"


def test_a_name_only_key_that_gained_a_domain_no_longer_matches_another_domain() -> None:
    index = AccountIndex()
    assert _resolve(index, "Acme Corp", None, "US") == "name:US:acme"
    assert _resolve(index, "Acme Corp", "acme.com", "US") == "name:US:acme"
    assert _resolve(index, "Acme Corp", "acme.io", "US") == "dom:acme.io"


def test_a_domain_under_another_crm_id_is_another_customer() -> None:
    index = AccountIndex()
    assert _resolve(index, "Acme", "acme.com", "US", "crm-1") == "dom:acme.com"
    assert _resolve(index, "Acme", "acme.com", "US", "crm-2") == "crm:crm-2"
    assert _resolve(index, "Acme", "acme.io", "US", "crm-1") == "dom:acme.com"


# --- tokens and fan-out --------------------------------------------------------------------

def test_api_key_tokens_split_into_id_and_secret() -> None:
    assert split_token("drk.key_1." + "s" * 43) == ("key_1", "s" * 43)
    assert split_token("drk.key_1.short") is None
    assert split_token("admin-token") is None


def test_one_key_per_partition_reaches_every_partition() -> None:
    keys = partition_keys("partner:p-1", 12)
    assert sorted(partition_for(k, 12) for k in keys) == list(range(12))
    assert keys == partition_keys("partner:p-1", 12)


_NAMES = st.sampled_from(["Acme", "Acme Inc", "Acme Corp", "Acme Systems", "Acne Systems",
                          "Globex", "Globex GmbH", "AB", "AB Inc"])
_IDENTITY = st.tuples(_NAMES, st.sampled_from([None, "acme.com", "acme.io", "globex.com"]),
                      st.sampled_from([None, "C1", "C2"]))


@settings(max_examples=300)
@given(st.lists(_IDENTITY, min_size=1, max_size=25))
def test_different_identifiers_never_share_an_account_key(
    submitted: list[tuple[str, str | None, str | None]],
) -> None:
    index = AccountIndex()
    keys = [_resolve(index, name, domain, "US", crm) for name, domain, crm in submitted]
    for key in keys:
        carried = index.identifiers(key)
        assert len(carried.crm_ids) <= 1, (key, carried)
        assert len(carried.domains) <= 1 or carried.crm_ids, (key, carried)


def test_a_made_up_crm_id_on_a_known_domain_gets_its_own_key_and_the_owner_as_possible() -> None:
    index = AccountIndex()
    owner = _resolve(index, "Soylent Corp", "soylent.com", "US", "001SOY")
    identity = identity_of("Soylent Corp", "soylent.com", "US", "FAKE-99")
    resolution = choose(identity, index.match(identity, 0.9, 0.1), index.identifiers,
                        index.__contains__)
    # Its own key (handlers._copy_reports then reports the owner's registrations, flagged
    # possible_duplicate, when the two keys live on different partitions).
    assert resolution.is_new and resolution.account_key != owner
    assert [m.account_key for m in resolution.possible_duplicates] == [owner]


def test_an_identified_account_never_gets_a_name_only_key_by_name_under_review() -> None:
    index = AccountIndex()
    squat = _resolve(index, "Stark Industries", None, "US")
    assert squat.startswith("name:")
    identity = identity_of("Stark Industries", "stark.com", "US", None)
    matches = index.match(identity, 0.9, 0.1)
    reviewed = choose(identity, matches, index.identifiers, index.__contains__, True)
    assert reviewed.account_key == "dom:stark.com"
    assert [m.account_key for m in reviewed.possible_duplicates] == [squat]
    # Under `decide` (older policies) the name still resolves it onto the name-only key.
    assert choose(identity, matches, index.identifiers, index.__contains__).account_key == squat
    # Nor the reverse: a name-only account does not take the identified key by name.
    index.add("dom:stark.com", identity)
    alone = identity_of("Stark Industries", None, "US", None)
    back = choose(alone, [m for m in index.match(alone, 0.9, 0.1)
                          if m.account_key != squat], index.identifiers, index.__contains__,
                  True)
    assert back.is_new and back.account_key != "dom:stark.com"
