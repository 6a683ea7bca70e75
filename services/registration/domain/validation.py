"""Rules for what a command may contain, beyond types: ISO codes, money, text.

Pure functions raising `ValueError` with a message meant for the caller; the API's request
models call them from their validators, so every violation ends up in one problem
response's field list.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Final

import pycountry

from shared.accounts import normalize_country, registrable_domain

# ISO 4217 minor units. pycountry carries the codes but not the exponent; every currency
# not listed here has two decimals.
_MINOR_UNITS: Final[dict[str, int]] = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
         "VND", "VUV", "XAF", "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
# Codes that are not money a deal is priced in: precious metals, bond-market units, SDRs,
# the testing code and "no currency".
_NOT_A_DEAL_CURRENCY: Final = frozenset(
    {"XAG", "XAU", "XPD", "XPT", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA", "XTS",
     "XXX", "XAD"}
)

TEXT_PATTERN: Final = r"^[^\x00-\x1f\x7f]*$"
"""No ASCII control characters, in the OpenAPI document; the full rule (Unicode control
and format characters) is `shared.inputs.check_text`, applied to every text field."""
IDENTIFIER_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}$"
"""Ids of partners, reps, owners, registrations, disputes: printable, no spaces."""


@functools.lru_cache(maxsize=1024)
def _iso_4217(code: str) -> bool:
    # pycountry's look-up goes through its lazy loader on every call: a measurable share
    # of every registration's validation under load. The table never changes in a process.
    return pycountry.currencies.get(alpha_3=code) is not None


def currency_code(value: str) -> str:
    """The ISO 4217 alphabetic code (upper case) of a currency deals can be priced in."""
    code = value.strip().upper()
    if len(code) != 3 or not _iso_4217(code):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    if code in _NOT_A_DEAL_CURRENCY:
        raise ValueError(f"{code} is not a currency a deal can be priced in")
    return code


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def check_amount(value: Decimal, currency: str) -> Decimal:
    """A positive, finite amount with no more decimals than the currency has."""
    if not value.is_finite() or value <= 0:
        raise ValueError("the amount must be a positive number")
    exponent = value.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    allowed = minor_units(currency)
    if places > allowed:
        raise ValueError(
            f"{currency} has {allowed} decimal place{'s' if allowed != 1 else ''}; "
            f"{value} has {places}"
        )
    return value


def country_code(value: str) -> str:
    """ISO 3166-1 alpha-2 for an alpha-2 / alpha-3 code or an English country name."""
    code = normalize_country(value)
    if code is None:
        raise ValueError(f"{value!r} is not an ISO 3166 country (use e.g. US, DEU, France)")
    return code


def check_domain(value: str) -> str:
    """A domain, website URL or e-mail address from which a registrable domain follows."""
    if registrable_domain(value) is None:
        raise ValueError(
            f"{value!r} is not a domain, website or e-mail address under a public suffix"
        )
    return value

