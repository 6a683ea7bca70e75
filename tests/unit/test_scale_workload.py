"""The scale benchmark's realistic workload (`bench_decide.py --scale`): keyed exactly as the
edge keys it, and cached on disk without ever serving a workload another generator made."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from services.registration.domain.resolution import choose
from shared.accounts.identity import AccountIdentity
from shared.accounts.index import AccountIndex
from shared.policy import Policy
from tests.bench import bench_decide
from tests.support import companies


def _full_choose(directory: AccountIndex, identity: AccountIdentity) -> tuple[str, bool]:
    """What the edge does: `choose` over the whole `match` answer, review band included."""
    match = Policy.model_validate({"version": 4}).match
    full = choose(identity,
                  directory.match(identity, match.name_threshold, match.review_band),
                  directory.identifiers, directory.__contains__, match.name_only == "review")
    return full.account_key, full.is_new


def test_bench_keys_each_registration_as_choose_over_the_edges_full_match_does() -> None:
    """`_EdgeKeys` skips the name look-up when identifiers decide or no key could be taken
    by name, and asks for confident names only: the key and whether it is new must be
    what `choose` makes of the edge's whole answer, registration after registration."""
    work = companies.generate(7, 2_500, collision_share=1 / 3, partners=200,
                              max_per_company=4)
    keys = bench_decide._EdgeKeys(Policy.model_validate({"version": 4}).match)
    known = 0
    for reg, identity, key, new in bench_decide.edge_keyed(work, keys):
        assert (key, new) == _full_choose(keys.directory, identity), reg
        known += not new
    assert known > 500


@pytest.mark.parametrize(("first", "then"), [
    ({"crm_account_id": "C-1"}, {"domain": "acme.io"}),
    ({"domain": "acme.com"}, {"crm_account_id": "C-2"}),
])
def test_a_key_without_the_querys_kind_of_identifier_is_still_taken_by_name(
        first: dict[str, str], then: dict[str, str]) -> None:
    """The name look-up is skipped only while no key exists that a name could give: a
    `crm:` key without a domain takes a domain-only query of the same name, a `dom:` key
    without a CRM id a CRM-only one; one with both identifiers is a new account."""
    keys = bench_decide._EdgeKeys(Policy.model_validate({"version": 4}).match)
    earlier = AccountIdentity.from_raw(name="Acme Corp", country="US", **first)
    key, new = keys.key(earlier)
    assert new
    keys.add(key, earlier)
    query = AccountIdentity.from_raw(name="ACME Inc.", country="US", **then)
    assert keys.key(query) == _full_choose(keys.directory, query) == (key, False)
    both = AccountIdentity.from_raw(name="Acme Corp", country="US", domain="acme.de",
                                    crm_account_id="C-3")
    assert keys.key(both) == _full_choose(keys.directory, both)
    assert keys.key(both)[1]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(bench_decide, "CACHE", tmp_path / "cache")
    return tmp_path / "cache"


def test_a_second_run_reads_the_keyed_workload_from_the_cache(cache_dir: Path) -> None:
    made, made_stats = bench_decide._keyed_workload(400, 5)
    again, again_stats = bench_decide._keyed_workload(400, 5)
    assert (made_stats["cache"], again_stats["cache"]) == ("miss", "hit")
    assert again == made and again_stats["distinct_keys"] == made_stats["distinct_keys"]
    assert [p.name for p in cache_dir.iterdir()] == [made_stats["cache_file"]]
    fresh, fresh_stats = bench_decide._keyed_workload(400, 5, cache=False)
    assert fresh == made and fresh_stats["cache"] == "off"


def test_another_seed_size_or_generator_version_is_a_cache_miss(
        cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench_decide._keyed_workload(300, 5)
    assert bench_decide._keyed_workload(300, 6)[1]["cache"] == "miss"
    assert bench_decide._keyed_workload(301, 5)[1]["cache"] == "miss"
    monkeypatch.setattr(companies, "GENERATOR_VERSION", companies.GENERATOR_VERSION + 1)
    assert bench_decide._keyed_workload(300, 5)[1]["cache"] == "miss"
    assert len(list(cache_dir.iterdir())) == 4


def test_a_changed_generator_source_is_a_cache_miss(
        cache_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bench_decide._keyed_workload(300, 5)
    edited = tmp_path / "companies.py"
    edited.write_text(Path(companies.__file__).read_text() + "\n# edited\n")
    monkeypatch.setattr(companies, "__file__", str(edited))
    assert bench_decide._keyed_workload(300, 5)[1]["cache"] == "miss"


@pytest.mark.parametrize("budget", [4000, 30])
def test_near_name_check_at_scale_answers_as_the_indexs_match(budget: int) -> None:
    """Above EXHAUSTIVE_UP_TO companies the generator asks the product's name index which
    names have a near name under another company; its early-stopping look-up must answer
    exactly what `AccountIndex.match` does, both ways (also where the index's candidate
    budget leaves common blocking keys out, as at scale)."""
    work = companies.generate(11, 3_000, collision_share=0.0)
    index = AccountIndex(candidate_budget=budget)
    for c in work.companies:
        index.add(c.id, AccountIdentity.from_raw(name=c.name, country=c.country))
    floor = companies.NAME_THRESHOLD - companies.REVIEW_BAND
    answers = []
    for c in work.companies:
        for name in (c.name, companies._typo(random.Random(c.id), c.name)):
            query = AccountIdentity.from_raw(name=name, country=c.country)
            full = any(m.account_key != c.id for m in index.match(
                query, companies.NAME_THRESHOLD, companies.NAME_THRESHOLD - floor))
            assert companies._near_others(index, c.id, name, c.country, floor) == full, name
            answers.append(full)
    assert answers.count(True) > 200 and answers.count(False) > 200
