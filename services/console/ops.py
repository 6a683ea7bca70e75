"""What the owner's and the channel manager's screens share: Jinja filters for timelines
and diffs, and turning console form dates into API instants."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.console.pages import TEMPLATES

_TYPE = re.compile(r"^(?:dealreg|crm)\.(.+?)(?:\.v\d+)?$")


def event_label(event_type: Any) -> str:
    """`dealreg.registration.decided.v1` -> `registration decided`."""
    match = _TYPE.match(str(event_type or ""))
    return (match.group(1) if match else str(event_type or "")).replace(".", " ").replace(
        "_", " ")


def as_json(value: Any) -> str:
    """A JSON value as people read it in a diff (strings unquoted when plain)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)


def day_start(value: str | None, *, end: bool = False, zone: tzinfo = UTC) -> str | None:
    """A form's `YYYY-MM-DD`, a day in `zone` (the viewer's), as the instant the API
    expects (`end`: the next day's start, so a range includes its last day). None for an
    empty or invalid value."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    if end:
        day += timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC).isoformat()


def viewer_zone(name: str | None) -> tzinfo:
    """The viewer's timezone as the browser named it (`static/console.js` fills a form's
    `tz` field with it); UTC when absent or unknown (no JavaScript)."""
    if not name or len(name) > 64:
        return UTC
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return UTC


def account_name(account_key: Any) -> str:
    """`dom:acme.com` -> `acme.com`: an account key as people read it."""
    text = str(account_key or "")
    kind, sep, rest = text.partition(":")
    return rest if sep and kind in ("dom", "crm", "name") else text


TEMPLATES.env.filters.update(event_label=event_label, as_json=as_json,
                             account_name=account_name)
