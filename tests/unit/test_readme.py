"""The README is the front door: what it says about the code must stay true."""

from __future__ import annotations

import re
from pathlib import Path

from shared.events.catalogue import CATALOGUE
from shared.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    following = README.find("\n## ", start + 1)
    return README[start:following if following != -1 else None]


def test_the_event_catalogue_lists_exactly_the_event_types_of_the_code() -> None:
    listed = set(re.findall(r"`(dealreg\.[a-z_.]+\.v\d+)`", _section("Event catalogue")))
    assert listed == set(CATALOGUE)


def test_the_configuration_table_names_real_settings() -> None:
    documented = set(re.findall(r"`DEALREG_([A-Z_]+)`", _section("Configuration")))
    fields = {name.upper() for name in Settings.model_fields}
    assert documented - fields == set(), "documented but not a setting"
    # The SMTP row names its siblings as `_PORT`, `_TLS`, ...
    documented |= {f"SMTP{suffix}" for suffix in
                   re.findall(r"`(_[A-Z]+)`", _section("Configuration"))}
    assert fields - documented == set(), "a setting the README does not document"


def test_the_readme_says_who_may_close_as_access_does() -> None:
    from services.registration.domain import access

    row = next(line for line in _section("API").splitlines()
               if line.startswith("| `POST /v1/registrations/{id}/close`"))
    who = row.split("|")[2]
    assert "owning partner" not in who and "partner" not in access.CLOSERS
    assert all(role in who for role in (*access.CLOSERS, "admin"))
