"""Salesforce record ids: the 15-character (case-sensitive) and 18-character
(case-insensitive: the 15 plus a 3-character checksum of their letter case) spellings of
one id, and the canonical 18-character form both are filed and looked up under when the
policy says `match.crm_ids: salesforce` (README, "The same customer"); under
`salesforce_any_case` (the default since session 24) an 18-character id is also read in
any letter case, its suffix restoring the case of the first 15.

The suffix (Salesforce's documented algorithm): split the 15 characters into three chunks
of five; for each chunk, bit i (i = 0..4, first character = bit 0) is set when character i
is an upper-case letter A-Z; the 5-bit number indexes ``ABCDEFGHIJKLMNOPQRSTUVWXYZ012345``.

Pure: no I/O, no state.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Final, Literal

__all__ = ["CrmIds", "any_case", "any_spelling", "canonical_crm_id", "crm_id_spellings",
           "salesforce_18", "salesforce_18_any_case", "salesforce_suffix"]

CrmIds = Literal["exact", "salesforce", "salesforce_any_case", "any_case", "any_spelling"]

_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID: Final = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?")


def salesforce_suffix(id15: str) -> str:
    """The 3-character checksum suffix of a 15-character id (upper case)."""
    out = []
    for chunk in range(3):
        bits = 0
        for i, char in enumerate(id15[chunk * 5:chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << i
        out.append(_ALPHABET[bits])
    return "".join(out)


@lru_cache(maxsize=16384)  # pure; the accounts of the decisions in flight are asked often
def salesforce_18(crm_id: str) -> str | None:
    """The canonical 18-character form of a Salesforce id (its 15 characters as given, the
    suffix in upper case), or None when `crm_id` is not one: not 15 or 18 alphanumerics,
    or an 18-character id whose suffix is not the checksum of its first 15."""
    if not _ID.fullmatch(crm_id):
        return None
    head = crm_id[:15]
    suffix = salesforce_suffix(head)
    if len(crm_id) == 18 and crm_id[15:].upper() != suffix:
        return None
    return head + suffix


@lru_cache(maxsize=16384)
def salesforce_18_any_case(crm_id: str) -> str | None:
    """`salesforce_18`, reading an 18-character id case-insensitively as Salesforce does
    (that is what the suffix is for): the suffix says which of the first 15 characters are
    upper case, so ``001HFGAI3F5DIG9QDA`` (an id upper-cased by a case-insensitive system)
    is ``001hFGAi3f5dig9QDA``. None when `crm_id` is no Salesforce id in any case: not 15
    or 18 alphanumerics, a suffix character outside the checksum alphabet, or a suffix
    marking a digit upper case."""
    strict = salesforce_18(crm_id)
    if strict is not None or len(crm_id) != 18 or not _ID.fullmatch(crm_id):
        return strict
    suffix = crm_id[15:].upper()
    head = []
    for chunk, char in enumerate(suffix):
        bits = _ALPHABET.find(char)
        if bits < 0:
            return None
        for i, raw in enumerate(crm_id[chunk * 5:chunk * 5 + 5]):
            upper = bool(bits >> i & 1)
            if raw.isdigit():
                if upper:
                    return None
                head.append(raw)
            else:
                head.append(raw.upper() if upper else raw.lower())
    return "".join(head) + suffix


_GUID: Final = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")
_BRACED_GUID: Final = re.compile(
    r"\{\s*([0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12})\s*\}")


@lru_cache(maxsize=16384)
def any_case(crm_id: str) -> str | None:
    """Policy `match.crm_ids: any_case` (the default since session 27): the canonical
    form of a CRM id that is the same id in any letter case, or None:
    a Salesforce id (`salesforce_18_any_case`), or a GUID (Microsoft Dynamics 365 and
    other CRMs key records by one; hexadecimal digits are case-insensitive, RFC 9562), in
    lower case (rival review, session 27: a GUID the holder filed in upper case, submitted
    in lower case, was another customer, the rival approved unseen)."""
    found = salesforce_18_any_case(crm_id)
    if found is not None:
        return found
    return crm_id.lower() if _GUID.fullmatch(crm_id) else None


# What a person or an integration puts between the characters of an id it copies by hand:
# spacing, hyphens (any dash), underscores, dots, slashes.
_SEPARATORS: Final = re.compile(r"[\s\-\u2010-\u2015_./]+")


@lru_cache(maxsize=16384)
def any_spelling(crm_id: str) -> str:
    """Policy `match.crm_ids: any_spelling` (the default since session 28): the canonical
    form of a CRM id. A Salesforce id (15 or 18 alphanumerics as given) keeps Salesforce's
    reading (`salesforce_18_any_case`: the 15 are case-sensitive, two records may differ
    only in case; also typed in full width); any other id -- a GUID, a HubSpot number,
    "CRM-00123" -- is one id whatever its spacing, hyphens, underscores, dots, slashes,
    letter case or width: those characters removed, case and width folded ("CRM 00123",
    "crm-00123" and "CRM00123" are "crm00123"), a GUID also in braces ("{...}", Dynamics'
    `getId()`). Such a form never equals a Salesforce id's canonical form (whose suffix is
    upper case). An id of nothing but separators stays itself."""
    found = salesforce_18_any_case(crm_id)
    if found is not None:
        return found
    # Width too: a full-width "ACC-1001" (as some input methods type it) is "ACC-1001",
    # and a full-width Salesforce id is that id (session 29, `SpellingRules`: it was
    # squeezed and case-folded, another customer than the holder's id).
    plain = unicodedata.normalize("NFKC", crm_id)
    if plain != crm_id:
        found = salesforce_18_any_case(plain)
        if found is not None:
            return found
    # A GUID in braces, as Dynamics 365's client API (`getId()`) and the registry format
    # give it, is the GUID (session 29, `SpellingRules`: "{3f25...}" was another id).
    braced = _BRACED_GUID.fullmatch(plain)
    if braced is not None:
        plain = braced.group(1)
    squeezed = _SEPARATORS.sub("", plain).casefold()
    return squeezed or crm_id


def canonical_crm_id(crm_id: str, mode: CrmIds) -> str:
    """The form a CRM id is compared in under policy `match.crm_ids` = `mode`: the id
    itself (`exact`), or its 18-character form when it is a valid Salesforce id
    (`salesforce`; `salesforce_any_case` also when its 18 characters came in another
    letter case)."""
    if mode == "exact":
        return crm_id
    if mode == "any_spelling":
        return any_spelling(crm_id)
    if mode == "any_case":
        return any_case(crm_id) or crm_id
    if mode == "salesforce_any_case":
        return salesforce_18_any_case(crm_id) or crm_id
    return salesforce_18(crm_id) or crm_id


def crm_id_spellings(crm_id: str, mode: CrmIds) -> tuple[str, ...]:
    """Every spelling a store may have filed `crm_id` under that policy `match.crm_ids` =
    `mode` compares equal to it (`canonical_crm_id`), `crm_id` itself first: under
    `salesforce`, a valid Salesforce id's 15-character form and its 18-character form
    with the suffix in each letter case (at most 9); otherwise the id alone. For look-ups
    in tables that file ids as submitted (the edge's fall-back query, `GET /v1/ownership`):
    the one place that knows which spellings are one id."""
    if mode == "any_spelling":
        spelled = any_spelling(crm_id)
        if salesforce_18_any_case(crm_id) is None:
            # Spellings are unbounded ("CRM 00123", "crm-00123", ...): the id as given,
            # its canonical form, that in upper case, and a GUID's hyphenated forms; the
            # in-memory index and the adjudicator find every other spelling.
            guid = any_case(crm_id) if _GUID.fullmatch(crm_id) else (
                "-".join((spelled[:8], spelled[8:12], spelled[12:16], spelled[16:20],
                          spelled[20:])) if re.fullmatch(r"[0-9a-f]{32}", spelled) else None)
            extra = (guid, guid.upper()) if guid else ()
            return tuple(dict.fromkeys((crm_id, spelled, spelled.upper(), *extra)))
        mode = "any_case"
    canonical = (salesforce_18(crm_id) if mode == "salesforce"
                 else salesforce_18_any_case(crm_id) if mode == "salesforce_any_case"
                 else any_case(crm_id) if mode == "any_case"
                 else None)
    if canonical is None:
        return (crm_id,)
    if len(canonical) != 18:  # a GUID: the id as given, in lower and in upper case
        return tuple(dict.fromkeys((crm_id, canonical, canonical.upper())))
    head, suffix = canonical[:15], canonical[15:]
    variants = [""]
    for char in suffix:
        variants = [v + c for v in variants for c in dict.fromkeys((char, char.lower()))]
    # Under `salesforce_any_case` also the id upper- and lower-cased whole (what
    # case-insensitive systems do to it; other mixtures are found by the in-memory index
    # and the adjudicator, not by these look-ups).
    cased = (canonical.upper(), canonical.lower()) \
        if mode in ("salesforce_any_case", "any_case") else ()
    spellings = dict.fromkeys((crm_id, head, *(head + v for v in variants), *cased))
    return tuple(spellings)
