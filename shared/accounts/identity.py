"""The identity of an end-customer account and the canonical key a new account gets.

An :class:`AccountIdentity` is what a registration or claim says about its customer, held
in normalised form so two spellings of the same facts compare equal. The account key is
the stable name under which the event log and every read model file the account; it is
derived once, when an account is first seen, and reused afterwards through the index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.accounts.normalize import (
    is_freemail_domain,
    is_platform_page,
    normalize_country,
    normalize_name,
    registrable_domain,
)
from shared.frozen import frozen_state, restore_frozen

__all__ = ["AccountIdentity", "derive_account_key", "key_label"]


@dataclass(frozen=True, slots=True)
class AccountIdentity:
    """Normalised facts identifying one account; any of them may be unknown.

    Build it with :meth:`from_raw` unless the values are already normalised (for example
    when read back from an event that stored them).
    """

    crm_account_id: str | None
    domain: str | None
    name: str | None
    country: str | None

    @classmethod
    def from_raw(
        cls,
        name: str | None = None,
        domain: str | None = None,
        website: str | None = None,
        email: str | None = None,
        country: str | None = None,
        crm_account_id: str | None = None,
        *,
        allow_freemail: bool = False,
    ) -> AccountIdentity:
        """Normalise raw submitted values.

        The domain comes from the first of ``domain``, ``website``, ``email`` that yields a
        registrable domain. Free-mail domains (gmail.com, web.de, ...) are skipped unless
        ``allow_freemail``: an address at gmail.com says nothing about the employer, and
        keying accounts on it would merge every such customer into one account. A business's
        page on a platform (``facebook.com/acme``) is skipped too, for the same reason.
        Unrecognised values become None rather than errors; validation of what is required
        belongs to the caller.
        """
        found: str | None = None
        for raw in (domain, website, email):
            if not raw:
                continue
            candidate = registrable_domain(raw)
            if candidate is not None and not is_platform_page(raw) \
                    and (allow_freemail or not is_freemail_domain(candidate)):
                found = candidate
                break
        crm = crm_account_id.strip() if crm_account_id else ""
        code = normalize_country(country) if country else None
        norm_name = normalize_name(name, code) if name else ""
        return cls(
            crm_account_id=crm or None,
            domain=found,
            name=norm_name or None,
            country=code,
        )

    # Held by adjudicator snapshots: pickled as the dataclass pickles itself, also when
    # compiled (shared/frozen.py).
    def __getstate__(self) -> list[object]:
        return frozen_state(self)

    def __setstate__(self, state: list[object]) -> None:
        restore_frozen(self, state)

    def is_empty(self) -> bool:
        """True when nothing usable identifies the account."""
        return not (self.crm_account_id or self.domain or (self.name and self.country))


def derive_account_key(
    identity: AccountIdentity, taken: Callable[[str], bool] | None = None
) -> str:
    """The canonical key for a NEW account with this identity.

    ``dom:<domain>`` when a domain is known (the most stable public identifier), else
    ``crm:<crm id>``, else ``name:<CC>:<normalised name with '-' for spaces>``. A name
    alone is not enough: the same name in two countries is usually two companies, so a
    name-only key needs the country. Raises ValueError when neither is available.

    ``taken(key)`` says a key already belongs to another customer: the one case is a
    domain filed under a different CRM id (different CRM ids are different customers, see
    :mod:`shared.accounts.sameness`), and then the CRM id names the new account. Keys
    never carry two different identifiers of one kind.

    Only call this when :meth:`shared.accounts.index.AccountIndex.resolve` found no
    existing account; an existing account keeps the key it was created with even when it
    later gains a domain.
    """
    candidates: list[str] = []
    if identity.domain:
        candidates.append(f"dom:{identity.domain}")
    if identity.crm_account_id:
        candidates.append(f"crm:{identity.crm_account_id}")
    if identity.name and identity.country:
        # Normalised names contain no punctuation, so '-' cannot clash with a name char.
        candidates.append(f"name:{identity.country}:{identity.name.replace(' ', '-')}")
    if not candidates:
        if identity.name:
            raise ValueError("an account identified only by name needs a country")
        raise ValueError("an account needs a domain, a CRM account id, or a name and country")
    if taken is not None:
        for key in candidates:
            if not taken(key):
                return key
    return candidates[0]


def key_label(account_key: str) -> str:
    """How a sentence names an account by its key alone: the domain, `CRM account <id>`,
    the name part of a name key, else the key itself. One rule for the adjudicator's
    sentences (`explain.account_label`) and the partner view's rebuilt ones."""
    kind, _, rest = account_key.partition(":")
    if kind == "dom":
        return rest
    if kind == "crm":
        return f"CRM account {rest}"
    if kind == "name":
        return rest.partition(":")[2].replace("-", " ") or account_key
    return account_key
