"""The rules of engagement: the versioned policy document the adjudicator applies.

`PUT /v1/policy` publishes a new version of this document; the registration service stamps
the current version on every command it accepts, and the adjudicator decides each event with
the version stamped on it, so a replay applies exactly the rules that were in force.

Durations are ISO 8601 (`P90D`, `PT24H`, `PT5S`, `P2W`). Years and months have no fixed
length, so they are converted by a documented rule instead of guessed at per date:
one year = 365 days, one month = 30 days (`P3M` is read as `P90D` and written back that
way). Fractions are allowed on the smallest unit only (`PT0.5S`, `P1.5D`).

`escalation.reminder_before` says when the owner of a dispute level is reminded: either a
duration (how much time is left before the deadline, counted in the same business time as
the SLA) or a number in (0, 1) (the fraction of the SLA still left). When a duration is not
shorter than the level's SLA, the reminder falls at the SLA's midpoint instead, so short test
ladders (`PT5S`) still get one.

With a business calendar, SLA days are working days: `P2D` means two working days' worth of
working time (16 hours with `hours: 09:00-17:00`), hours and smaller units are working time.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property, lru_cache
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

__all__ = [
    "KNOWN_MOTIONS",
    "KNOWN_PRECEDENCE_RULES",
    "KNOWN_TIERS",
    "BusinessCalendar",
    "Duration",
    "Escalation",
    "EscalationLevel",
    "ExtensionPolicy",
    "MatchPolicy",
    "Policy",
    "format_duration",
    "parse_duration",
]

KNOWN_PRECEDENCE_RULES: Final = ("direct_named_account", "incumbent", "first_submitted", "tier")
KNOWN_TIERS: Final = ("platinum", "gold", "silver", "registered")
KNOWN_MOTIONS: Final = ("resell", "referral", "co_sell", "influence")

# --------------------------------------------------------------------------------------
# ISO 8601 durations
# --------------------------------------------------------------------------------------

_NUM = r"(\d+(?:[.,]\d+)?)"
_DURATION: Final = re.compile(
    rf"^P(?:{_NUM}Y)?(?:{_NUM}M)?(?:{_NUM}D)?(?:T(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?$"
)
_WEEKS: Final = re.compile(rf"^P{_NUM}W$")
_UNIT_SECONDS: Final = (365 * 86400, 30 * 86400, 86400, 3600, 60, 1)  # Y M D H M S


@lru_cache(maxsize=256)
def parse_duration(text: str) -> timedelta:
    """Parse a strict ISO 8601 duration (`PnYnMnDTnHnMnS` or `PnW`) to a timedelta.

    Rejects negative or empty durations, a dangling `T`, and fractions anywhere but on the
    last unit given. Years count 365 days and months 30 days (see the module docstring).
    """
    raw = text.strip().upper()
    weeks = _WEEKS.match(raw)
    if weeks:
        return _seconds(_decimal(weeks.group(1)) * 7 * 86400)
    match = _DURATION.match(raw)
    if not match or raw in ("P", "PT") or raw.endswith("T"):
        raise ValueError(f"not an ISO 8601 duration: {text!r} (e.g. P90D, PT24H, PT5S)")
    groups = match.groups()
    given = [i for i, g in enumerate(groups) if g is not None]
    if not given:
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    total = Decimal(0)
    for i in given:
        value = groups[i]
        assert value is not None
        if ("." in value or "," in value) and i != given[-1]:
            raise ValueError(f"only the smallest unit may have a fraction: {text!r}")
        total += _decimal(value) * _UNIT_SECONDS[i]
    return _seconds(total)


def _seconds(total: Decimal) -> timedelta:
    # Whole seconds and microseconds separately: a float would lose precision on P365D.
    whole = int(total)
    return timedelta(seconds=whole, microseconds=int((total - whole) * 1_000_000))


def _decimal(value: str) -> Decimal:
    try:
        return Decimal(value.replace(",", "."))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only digits
        raise ValueError(f"bad number in duration: {value!r}") from exc


def format_duration(value: timedelta) -> str:
    """The canonical ISO 8601 spelling: days, then hours, minutes, seconds (`P1DT2H`)."""
    if value < timedelta(0):
        raise ValueError("durations are never negative")
    days = value.days
    seconds = value.seconds
    micros = value.microseconds
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P"
    if days:
        out += f"{days}D"
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if secs or micros:
        time += f"{secs}.{micros:06d}".rstrip("0").rstrip(".") + "S"
    if time:
        out += "T" + time
    return out if out != "P" else "PT0S"


def _to_timedelta(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    return value


def _not_negative(value: timedelta) -> timedelta:
    # A number is read as seconds by pydantic; a negative one was accepted, published, and
    # then failed to serialize (a 500 after the append). Found by the policy fuzzer.
    if value < timedelta(0):
        raise ValueError("durations are never negative")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    AfterValidator(_not_negative),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "format": "duration", "examples": ["P90D", "PT5S"]}),
]
"""A timedelta read from and written as an ISO 8601 duration string."""


def _reminder(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    return value


def _serialize_reminder(value: timedelta | float) -> str | float:
    return format_duration(value) if isinstance(value, timedelta) else value


Reminder = Annotated[
    timedelta | float,
    BeforeValidator(_reminder),
    PlainSerializer(_serialize_reminder),
    WithJsonSchema(
        {"oneOf": [{"type": "string", "format": "duration"},
                   {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}]}
    ),
]


# --------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExtensionPolicy(_Part):
    period: Duration = timedelta(days=30)
    max_extensions: int = Field(default=1, ge=0, le=100)
    window: Duration | None = timedelta(days=30)
    """An extension is accepted only within this long before the protection expires (as
    channel programs do: extend a deal that is still alive near its end, not pre-emptively);
    None: any time while approved."""

    def allows_another(self, extensions: int) -> bool:
        """Whether a protection already extended `extensions` times may be extended once
        more: at most `max_extensions` extensions in all. The one rule, for the edge's 409
        and the adjudicator's `max_extensions` refusal alike."""
        return extensions < self.max_extensions

    def opens(self, protected_until: datetime) -> datetime | None:
        """The first instant an extension is accepted for a protection ending at
        `protected_until` (None: any time). The one rule, for the edge's 409 and the
        adjudicator's refusal alike."""
        return protected_until - self.window if self.window is not None else None

    @field_validator("period", "window")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value


class MatchPolicy(_Part):
    name_threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    review_band: float = Field(default=0.1, ge=0.0, lt=1.0)
    name_only: Literal["review", "decide"] = "review"
    """A confident name match where exactly one side carries an identifier (CRM id or
    domain) and the other none. `review`: only a possible duplicate -- the edge never
    files the identified account under the name-only key (nor the reverse), and the
    adjudicator sends the newcomer to a `possible_duplicate` review instead of walking
    precedence, so a name-only registration cannot squat every same-name company.
    `decide` (policies published before this option): the name makes them one customer."""
    crm_ids: Literal["exact", "salesforce", "salesforce_any_case", "any_case",
                     "any_spelling"] = "any_spelling"
    """How CRM ids compare. `any_spelling` (the default since session 28): as `any_case`
    for Salesforce ids, and any other id (a GUID, a HubSpot number, "CRM-00123") is one
    CRM id whatever its spacing, hyphens, underscores, dots, slashes or letter case
    (`shared.accounts.salesforce.any_spelling`; session 28: "CRM 00123" and "crm-00123"
    were two customers, a rival reformatting the holder's id approved beside it, unseen).
    `any_case` (session 27): as
    `salesforce_any_case`, and a GUID (Microsoft Dynamics 365 and other CRMs key accounts
    by one) is one CRM id in any letter case (session 27 rival review: the holder's GUID
    in lower case was another customer). `salesforce_any_case` (session 24-26): a valid
    `salesforce_any_case`, and a GUID (Microsoft Dynamics 365 and other CRMs key accounts
    by one) is one CRM id in any letter case (session 27 rival review: the holder's GUID
    in lower case was another customer). `salesforce_any_case` (session 24-26): a valid
    Salesforce id (15 case-sensitive characters, or those 15 plus their 3-character
    checksum, the 18 read in any letter case as Salesforce reads them) is one CRM id in
    every spelling (filed and looked up under its 18-character form,
    `shared.accounts.salesforce`); anything else compares exactly. `salesforce` (policies
    published in session 23): the same, but an 18-character id whose first 15 characters
    are not in the case its suffix says (upper-cased by a case-insensitive system) is no
    Salesforce id and compares exactly. `exact` (policies published before either): two
    spellings are two CRM ids, two customers."""

    rejected_names: Literal["unfiled", "filed"] = "unfiled"
    """The names of a filing rejected at its decision. `unfiled` (the default since session
    29): the names it brought to its key (a name or trade name the key did not have) are
    taken back once it is rejected, so a filing that never held anything adds no names
    that join customers -- a rival's rejected "B dba A" no longer makes later filings of A
    meet B's key. `filed` (policies published before): they stay filed."""

    countryless_names: Literal["ask", "hold"] = "ask"
    """A name filed without a country. `ask` (the default since session 29): it *asks but
    does not hold* -- a filing without a country is still weighed against every country's
    names (it waits for a person beside a namesake, the price of not knowing the country,
    paid by its filer), but a name filed without one is weighed only against later filings
    that give no country either, and protects its holder otherwise by its identifiers
    alone (CRM id, domain): one "Acme Robotics" filed with a made-up CRM id and no country
    no longer sends every later "Acme Robotics" in every country to a review
    (`shared.accounts.index.weighs_countryless`). `hold` (policies published before): such
    a name is weighed against every later filing of its name, in every country."""

    @model_validator(mode="after")
    def _band_below_threshold(self) -> MatchPolicy:
        if self.review_band >= self.name_threshold:
            raise ValueError("review_band must be smaller than name_threshold")
        return self


_HOURS: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


@lru_cache(maxsize=64)
def _holiday_code_ok(code: str) -> bool:
    import holidays  # a pure data package; imported lazily so a policy without one is cheap

    country, _, subdiv = code.partition("-")
    supported = holidays.list_supported_countries()
    if country not in supported:
        return False
    return not subdiv or subdiv in supported[country]


class BusinessCalendar(_Part):
    """When SLA time runs: working hours on working days in a timezone, minus holidays."""

    timezone: str = "UTC"
    working_days: tuple[int, ...] = (1, 2, 3, 4, 5)
    """ISO weekdays: 1 = Monday ... 7 = Sunday."""
    hours: str = "09:00-17:00"
    holidays: str | None = None
    """A country code the `holidays` package knows (`US`, `DE`), optionally with a
    subdivision (`DE-BY`, `US-CA`)."""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @field_validator("working_days")
    @classmethod
    def _days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("at least one working day is needed")
        if any(day < 1 or day > 7 for day in value):
            raise ValueError("working days are ISO weekdays 1 (Monday) .. 7 (Sunday)")
        if len(set(value)) != len(value):
            raise ValueError("working days must not repeat")
        return tuple(sorted(value))

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = _HOURS.match(value.strip())
        if not match:
            raise ValueError('hours must look like "09:00-17:00"')
        start = int(match.group(1)) * 60 + int(match.group(2))
        end = int(match.group(3)) * 60 + int(match.group(4))
        if end > 24 * 60 or end <= start:
            raise ValueError("the working day must end after it starts, by 24:00")
        return value.strip()

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if not _holiday_code_ok(code):
            raise ValueError(f"the holidays package knows no country (subdivision) {value!r}")
        return code

    @property
    def day_minutes(self) -> tuple[int, int]:
        """The working day as (start, end) minutes after local midnight."""
        match = _HOURS.match(self.hours)
        assert match is not None
        return (int(match.group(1)) * 60 + int(match.group(2)),
                int(match.group(3)) * 60 + int(match.group(4)))


class EscalationLevel(_Part):
    owner_id: str = Field(min_length=1, max_length=200)
    sla: Duration

    @field_validator("sla")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("an SLA must be a positive duration")
        return value


def _default_levels() -> tuple[EscalationLevel, ...]:
    return (
        EscalationLevel(owner_id="cm-1", sla=timedelta(days=2)),
        EscalationLevel(owner_id="dir-1", sla=timedelta(days=3)),
    )


class Escalation(_Part):
    calendar: BusinessCalendar | None = None
    """None: SLAs run 24x7."""
    levels: tuple[EscalationLevel, ...] = Field(default_factory=_default_levels)
    on_final_breach: Literal["precedence", "first_submitted", "keep_open"] = "precedence"
    """Past the last level: `precedence` settles by the policy's precedence as adjudication
    walks it, a tie (nothing separates them) broken by the earlier submission;
    `first_submitted` by submission time alone;
    `keep_open` leaves it with the last owner. Either fallback settles an unreviewed
    possible duplicate as `distinct` (two customers) and never takes away an approval that
    does not conflict with the winners."""
    reminder_before: Reminder = timedelta(hours=4)
    deadline_unit: Duration | None = timedelta(hours=1)
    """Every level's deadline (so each escalation and the final-breach fallback) falls due on
    the next whole multiple of this unit since the epoch, UTC, at or after the business-time
    deadline (`shared.business_time.due_on`): `PT1H` (the default since session 29) the next
    whole UTC hour. A dispute's deadlines count from the submission that opened it, a rival's
    for every other member, and a late joiner's decision by the fallback, its `decided_at`,
    its `protected_until` and the timer's firing would otherwise tell that submission to the
    microsecond, where partners read rivals' moments to the hour. A unit divides a day
    (`PT1H`, `PT15M`, `PT1S`; tests use seconds). None (policies published before session
    29): due exactly at the business-time deadline."""

    @field_validator("deadline_unit")
    @classmethod
    def _unit(cls, value: timedelta | None) -> timedelta | None:
        if value is None:
            return None
        day = timedelta(days=1)
        if value <= timedelta(0) or value > day or day % value:
            raise ValueError("deadline_unit must divide a day (PT1H, PT15M, PT1S) or be null")
        return value

    @field_validator("levels")
    @classmethod
    def _at_least_one(cls, value: tuple[EscalationLevel, ...]) -> tuple[EscalationLevel, ...]:
        if not value:
            raise ValueError("the escalation ladder needs at least one level")
        return value

    @field_validator("reminder_before")
    @classmethod
    def _reminder(cls, value: timedelta | float) -> timedelta | float:
        if isinstance(value, timedelta):
            if value <= timedelta(0):
                raise ValueError("reminder_before must be a positive duration")
        elif not 0.0 < value < 1.0:
            raise ValueError("a fractional reminder_before must be in (0, 1)")
        return value


class Policy(BaseModel):
    """One version of the rules of engagement. Every field has a sensible default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(default=1, ge=1)
    scope: Literal["account", "account_product"] = "account_product"
    protection_period: Duration = timedelta(days=90)
    extension: ExtensionPolicy = Field(default_factory=ExtensionPolicy)
    reregistration_cooloff: Duration | None = timedelta(days=30)
    """After a partner's own registration ended by withdrawal or expiry, that partner's new
    registration on the same customer and an overlapping scope is rejected
    `reregistration_cooloff` for this long (the policy the ended registration was decided
    under applies), so withdraw + re-register cannot renew protection past
    `max_extensions`. Capped at `protection_period` (what the adjudicator remembers of an
    ended registration); None: off."""
    exclusive_motions: tuple[Literal["resell", "referral", "co_sell", "influence"], ...] = (
        "resell", "co_sell",
    )
    tie_window: Duration = timedelta(hours=24)
    incumbency_window: Duration = timedelta(days=365)
    precedence: tuple[str, ...] = KNOWN_PRECEDENCE_RULES
    tier_order: tuple[str, ...] = KNOWN_TIERS
    match: MatchPolicy = Field(default_factory=MatchPolicy)
    escalation: Escalation = Field(default_factory=Escalation)
    on_release: Literal["promote_next", "free"] = "promote_next"
    """When an owner lets go (withdrawn, expired, lost, partner exited, lost a dispute):
    `promote_next` approves the next in line among the registrations it beat within
    `release_window` (by the policy's precedence, rule `promoted_on_release`); `free`
    leaves the account to the next newcomer."""
    release_window: Duration = timedelta(days=30)
    promotion_unit: Duration | None = timedelta(hours=1)
    """A promotion caused by the owner's *expiry* takes effect on the next whole multiple of
    this unit since the epoch, UTC, at or after the expiry (`shared.business_time.due_on`; a
    `release_promotion` timer): an expiry is the owner's approval + `protection_period` to the
    microsecond, which partners otherwise read to the hour, and the promoted partner reads
    its promotion's `decided_at` and `protected_until`. Until then the line keeps the
    account: a new registration of another party's on it is rejected `promotion_pending` and
    queues behind the line. A unit divides a day (`PT1H`, the default since session 30;
    `PT1S` in tests). None (policies published before session 30): promoted at the
    expiry, exactly as decided."""
    contest_window: Duration = timedelta(days=14)
    """A rejection can be contested only this long after it was decided (once)."""
    dispute_protection: Literal["extend", "off"] = "extend"
    """`extend`: an approved member's protection does not run out while its dispute is
    open; at the resolution it lasts at least `dispute_grace` more. `off`: it expires on
    schedule, dispute or not."""
    dispute_grace: Duration = timedelta(days=14)
    direct_team: Literal["one_party", "rivals"] = "one_party"
    """`one_party`: the direct team is one party, so a second rep's claim on an account the
    team already holds is rejected `duplicate`; `rivals`: reps compete like partners."""

    @field_validator("protection_period", "release_window", "contest_window", "dispute_grace")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    @field_validator("promotion_unit")
    @classmethod
    def _promotion_unit(cls, value: timedelta | None) -> timedelta | None:
        if value is None:
            return None
        day = timedelta(days=1)
        if value <= timedelta(0) or value > day or day % value:
            raise ValueError("promotion_unit must divide a day (PT1H, PT15M, PT1S) or be null")
        return value

    @field_validator("reregistration_cooloff")
    @classmethod
    def _positive_cooloff(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be a positive duration (or null: off)")
        return value

    @property
    def cooloff(self) -> timedelta | None:
        """The re-registration cool-off in force: at most one protection period."""
        cooloff = self.reregistration_cooloff
        return min(cooloff, self.protection_period) if cooloff is not None else None

    @field_validator("precedence")
    @classmethod
    def _known_rules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [rule for rule in value if rule not in KNOWN_PRECEDENCE_RULES]
        if unknown:
            raise ValueError(
                f"unknown precedence rules {unknown}; known: {list(KNOWN_PRECEDENCE_RULES)}"
            )
        if len(set(value)) != len(value):
            raise ValueError("a precedence rule may appear only once")
        return value

    @field_validator("tier_order")
    @classmethod
    def _all_tiers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        missing = [tier for tier in KNOWN_TIERS if tier not in value]
        if missing:
            raise ValueError(f"tier_order must rank every known tier; missing {missing}")
        if len(set(value)) != len(value):
            raise ValueError("a tier may appear only once")
        return value

    @field_validator("exclusive_motions")
    @classmethod
    def _unique_motions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a motion may appear only once")
        return value

    # Derived look-ups computed once per document: the adjudicator consults them for every
    # event. cached_property keeps them out of the fields (and out of dumps and equality).
    @cached_property
    def _tier_ranks(self) -> dict[str, int]:
        return {tier: rank for rank, tier in enumerate(self.tier_order)}

    @cached_property
    def _exclusive(self) -> frozenset[str]:
        return frozenset(self.exclusive_motions)

    def contest_closes(self, decided_at: datetime) -> datetime:
        """The last instant a rejection decided at `decided_at` can be contested."""
        return decided_at + self.contest_window

    def tier_rank(self, tier: str) -> int:
        """0 for the best tier; unknown tiers rank below every known one."""
        ranks = self._tier_ranks
        return ranks.get(tier, len(ranks))

    def is_exclusive(self, motion: str) -> bool:
        return motion in self._exclusive

    @classmethod
    def from_published(cls, document: dict[str, Any]) -> Policy:
        """A document read back from a `PolicyPublished` event (or the table folded from
        them). Published documents are whole dumps, so a rule a document does not mention
        did not exist when it was published: it keeps the behaviour from before that rule
        (`_BEFORE`), and a replay applies exactly the rules that were in force. A new
        document (`PUT /v1/policy`) gets the current defaults."""
        data = {**_BEFORE, **document}
        extension = data.get("extension")
        if isinstance(extension, dict) and "window" not in extension:
            data["extension"] = {**extension, "window": None}
        escalation = data.get("escalation")
        if isinstance(escalation, dict):
            data["escalation"] = {"deadline_unit": None, **escalation}
        elif escalation is None:
            data["escalation"] = {"deadline_unit": None}
        match = data.get("match")
        if isinstance(match, dict):
            data["match"] = {"name_only": "decide", "crm_ids": "exact",
                             "rejected_names": "filed", "countryless_names": "hold", **match}
        elif match is None:
            data["match"] = {"name_only": "decide", "crm_ids": "exact",
                             "rejected_names": "filed", "countryless_names": "hold"}
        return cls.model_validate(data)

    @classmethod
    def default(cls, version: int = 1) -> Policy:
        """The built-in rules of engagement, used until an admin publishes a policy."""
        return cls(version=version)


_BEFORE: Final[dict[str, Any]] = {
    # What each rule added by issue 12 meant before it existed (see Policy.from_published).
    "on_release": "free",
    "contest_window": "P36500D",
    "dispute_protection": "off",
    "direct_team": "rivals",
    "reregistration_cooloff": None,
    "promotion_unit": None,  # session 30: promoted at the expiry, exactly
}
