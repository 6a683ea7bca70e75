"""What a caller may send, beyond types, in one place: text, decimals, instants.

**Text.** No control or format characters, and no invisible letters (the Hangul fillers).

Control characters (Unicode Cc: C0, DEL, C1 such as U+0085 NEL), format characters (Cf:
bidi embeddings and overrides U+202A-U+202E, isolates U+2066-U+2069, marks U+200E/U+200F,
zero-width U+200B-U+200D, U+2060, U+FEFF, soft hyphen), lone surrogates (Cs) and line /
paragraph separators (U+2028, U+2029) break logs, CSV exports, PostgreSQL text (NUL) and
what a reader sees (a right-to-left override turns "gpj.exe" into "exe.jpg"). They are
refused in every text field. Ordinary spaces, including no-break and ideographic spaces,
are text. Multi-line fields (a dispute's `reason`, a resolution's notes) also accept line
breaks and tabs (`\\n`, `\\r`, `\\t`); every other field is one line.

`check_text` is the rule; `Text` / `MultilineText` are the pydantic types that apply it,
for request bodies and query parameters alike.

**Decimals** (amounts, percents) are canonical: a JSON number, or a string of digits with
an optional `-` and fraction (`"1000"`, `"1000.50"`). Refused: `"1_000"` (Python reads it
as 1000), `" 5"`, `"+5"`, `"1e3"`, `"NaN"`, `"Infinity"`, `"007"`, `".5"`, `true`.

**Instants** in query parameters (`as_of`, `since`, `until`) are ISO 8601 date-times with
an offset, between 2000-01-01 and 2199-12-31 (the range of dates this API accepts): a
number is not read as a Unix time (`as_of=-1` was 1969-12-31).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BeforeValidator

from shared.accounts.normalize import LOOK_ALIKES

REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
LINE_BREAKS: Final = frozenset("\t\n\r")
INVISIBLE_LETTERS: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800")
"""The Hangul fillers: letters (Lo) that draw as a blank, Unicode default-ignorable code
points that no name or product contains (a Korean syllable decomposes to real jamo, never
to a filler); and the blank Braille pattern (a symbol drawn as a blank, no space: kept
in a product name). Refused as format characters are: "Acme Corp" with a trailing filler was
another name than "Acme Corp", "analytics" with one another product (session 29 rival
review: a rival approved unseen beside the holder)."""


def check_text(value: str, *, multiline: bool = False) -> str:
    """`value`, or `ValueError` naming the first refused character."""
    # The fast path: no Other, no Separator except ' ', no invisible letter.
    if value.isprintable() and (value.isascii() or INVISIBLE_LETTERS.isdisjoint(value)):
        return value
    for char in value:
        if multiline and char in LINE_BREAKS:
            continue
        if char in INVISIBLE_LETTERS:
            raise ValueError(f"invisible characters are not allowed (U+{ord(char):04X} "
                             f"{unicodedata.name(char).lower()})")
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            name = unicodedata.name(char, "") or "a control character"
            raise ValueError(
                f"control and format characters are not allowed (U+{ord(char):04X} "
                f"{name.lower()}){'' if multiline else '; this field is one line'}")
    return value


def single_line(value: str) -> str:
    return check_text(value)


def multi_line(value: str) -> str:
    return check_text(value, multiline=True)


Text = Annotated[str, AfterValidator(single_line)]
MultilineText = Annotated[str, AfterValidator(multi_line)]


# --- product names ---------------------------------------------------------------------

_PLAIN_PRODUCT: Final = re.compile(r"[a-z0-9_./+-]+(?: [a-z0-9_./+-]+)*")


def canonical_product(value: str) -> str:
    """The one spelling of a product name, in which products are filed, compared and looked
    up: compatibility forms read as plain (NFKC: full-width "analytics" (U+FF41...) is
    "analytics"), case folded, inner whitespace collapsed to one space, none at the ends.
    So "Analytics", "ANALYTICS" and "analytics" are one product, as are "Data  Lake" and
    "data lake" (rival review session 26: under scope `account_product` a rival spelling
    the holder's product in another case was approved beside it on the same customer).
    Idempotent; a plain lower-case name is its own canonical form.

    In a word with Latin letters, a Cyrillic or Greek letter drawn like a Latin one (and a
    Latin small capital) reads as that letter (`shared.accounts.normalize.LOOK_ALIKES`, as
    in names): "analytics" spelled with a Cyrillic a (U+0430) was another product than
    "analytics", and a rival was approved beside the holder (rival review, session 26). A
    word wholly in another script is kept as written (Russian "analitika")."""
    if value.isascii() and _PLAIN_PRODUCT.fullmatch(value):
        return value
    text = " ".join(unicodedata.normalize("NFKC", value).casefold().split())
    if text.isascii():
        return text
    words = [unicodedata.normalize("NFKD", word).translate(LOOK_ALIKES)
             if _LATIN_LETTER.search(word) else word for word in text.split(" ")]
    return unicodedata.normalize("NFKC", " ".join(words))


_LATIN_LETTER: Final = re.compile(r"[a-z]")


# --- decimals --------------------------------------------------------------------------

_CANONICAL_DECIMAL: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


def canonical_decimal(value: Any) -> Any:
    """A JSON number or a canonical decimal string, as a `Decimal`; `ValueError` else."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError("a number, not a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("a finite number")
        return Decimal(repr(value))
    if isinstance(value, str):
        if len(value) <= 40 and _CANONICAL_DECIMAL.fullmatch(value):
            return Decimal(value)
        raise ValueError('a decimal such as "1000" or "1000.50" (digits, an optional '
                         'fraction; no spaces, signs, exponents or separators)')
    raise ValueError("a decimal number")


CanonicalDecimal = Annotated[Decimal, BeforeValidator(canonical_decimal)]


# --- instants --------------------------------------------------------------------------

EARLIEST: Final = date(2000, 1, 1)
LATEST: Final = date(2199, 12, 31)
_ISO_DATETIME: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}.{0,40}")


def iso_instant(value: Any) -> Any:
    """Only an ISO 8601 date-time string (never a number read as a Unix time)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATETIME.fullmatch(value):
        return value
    raise ValueError("an ISO 8601 date-time with an offset, e.g. 2027-02-01T00:00:00Z")


def sane_instant(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give a time zone offset (e.g. Z)")
    if not EARLIEST <= value.astimezone(UTC).date() <= LATEST:
        raise ValueError(f"must be between {EARLIEST} and {LATEST}")
    return value


def sane_date(value: date) -> date:
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"must be between {EARLIEST} and {LATEST}")
    return value


Instant = Annotated[datetime, BeforeValidator(iso_instant), AfterValidator(sane_instant)]
"""An ISO 8601 date-time with an offset, within the sane range."""
