"""A partner's `account_key` filter: one rule (`partner_view.KeyFilter`) and one scan
(`queries.scan_page`) for `GET /v1/registrations` and `GET /v1/disputes`. The e2e twins
(`tests/e2e/test_partner_view.py::test_a_partners_account_key_filters_match_only_the_keys_
its_view_shows`, `..._does_not_confirm_a_hidden_key_by_its_cursor`) drive both endpoints."""

from __future__ import annotations

from typing import Any

from services.projections.adapters.queries import scan_page
from shared.api import partner_view as pv
from shared.api.partner_view import KeyFilter, Viewer

P2 = Viewer("partner", "p-2")
HIDDEN = "crm:SECRETCRM"  # a competitor's CRM id, the key p-2's name-only deal is filed under
ACCOUNT = {"name": "Umbrella Holdings", "country": "US"}
SHOWN = "name:US:umbrella-holdings"


def _registration() -> dict[str, Any]:
    return {"id": "reg_2", "partner_id": "p-2", "account_key": HIDDEN, "account": ACCOUNT,
            "status": "in_review", "decision": {"conflicts": []}}


def _dispute() -> dict[str, Any]:
    return {"id": "dsp_1", "status": "open", "registration_ids": ["reg_1", "reg_2"],
            "account_key": HIDDEN, "explanation": f"Tie on {HIDDEN}."}


def _dispute_scope() -> pv.Scope:
    holders = {"reg_1": pv.holder("partner", "p-1", HIDDEN, {"crm_account_id": "SECRETCRM"}),
               "reg_2": pv.holder("partner", "p-2", HIDDEN, ACCOUNT)}
    return pv.Scope.of(P2, holders, {"reg_1", "reg_2"})


def test_a_guessed_hidden_key_keeps_neither_the_partners_registration_nor_its_dispute() -> None:
    shown_registration = pv.registration(_registration(), P2)
    shown_dispute = pv.dispute(_dispute(), _dispute_scope())
    guess = KeyFilter(P2, HIDDEN)
    assert (guess.scans, guess.stored) == (True, None)  # never a SQL filter on the filed key
    assert not guess.shows(shown_registration)
    assert not guess.shows(shown_dispute)
    # The key its registration shows finds it; its dispute shows no key at all.
    assert shown_registration["account_key"] == SHOWN
    assert KeyFilter(P2, SHOWN).shows(shown_registration)
    assert shown_dispute["account_key"] is None


def test_vendor_roles_filter_on_the_filed_key_in_the_store() -> None:
    for role in ("admin", "integration", "rep", "owner", "channel_manager"):
        by_key = KeyFilter(Viewer(role, "x"), HIDDEN)
        assert (by_key.scans, by_key.stored) == (False, HIDDEN)
        assert by_key.shows(_registration()) and by_key.shows({"account_key": "other"})
    assert KeyFilter(P2, None).stored is None and not KeyFilter(P2, None).scans


async def test_the_scans_cursor_depends_only_on_the_rows_it_reads() -> None:
    """Two of the partner's rows under a hidden key and `limit=1`: a page cut after a SQL
    filter came back empty with a cursor. The scan's page under a guess equals its page
    under a key that names nothing; under the shown key it pages through both."""
    rows = [{"id": f"r{i}", "shown": SHOWN} for i in range(3)] + [{"id": "r3", "shown": "x"}]

    async def fetch(cursor: str | None, n: int) -> list[dict[str, Any]]:
        after = [r for r in rows if cursor is None or r["id"] > cursor]
        return after[:n + 1]

    async def page(asked: str, start: str | None = None) -> tuple[list[str], str | None]:
        by_key = KeyFilter(P2, asked)

        async def pick(row: dict[str, Any]) -> str | None:
            return row["id"] if by_key.shows({"account_key": row["shown"]}) else None

        return await scan_page(fetch, pick, start=start, limit=1)

    assert await page(HIDDEN) == await page("crm:NOSUCH") == ([], None)
    seen, cursor = await page(SHOWN)
    assert (seen, cursor) == (["r0"], "r0")
    assert await page(SHOWN, cursor) == (["r1"], "r1")
    assert await page(SHOWN, "r1") == (["r2"], "r2")  # r3 follows (another key): maybe more
    assert await page(SHOWN, "r2") == ([], None)
