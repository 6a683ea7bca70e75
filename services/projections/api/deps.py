"""Dependencies shared by the query routes: who is asking, read-your-writes, cursors
(`shared.api.cursors`, re-exported)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from services.projections.domain.batch import MODELS
from shared.api.auth import Principal, require
from shared.api.cursors import decode_cursor as decode_cursor  # re-exported
from shared.api.cursors import encode_cursor as encode_cursor
from shared.api.partner_view import Viewer
from shared.api.problems import Problem
from shared.eventlog import EventLog
from shared.positions import is_sealed, position_key, unseal
from shared.readmodel.waiter import PositionWaiter

READERS = ("integration", "partner", "rep", "owner", "channel_manager")
DEFAULT_POSITION_WAIT_SECONDS = 5.0

_TOKEN = re.compile(r"^\s*([A-Za-z0-9._-]+)/(\d{1,6})/(\d{1,19})\s*$")
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


async def viewer(principal: Annotated[Principal, Depends(require(*READERS))]) -> Viewer:
    return Viewer(principal.role, principal.subject_id)


def parse_positions(raw: str) -> dict[tuple[str, int], int]:
    """`topic/partition/offset[, ...]` (what commands return in `X-Log-Position`)."""
    wanted: dict[tuple[str, int], int] = {}
    for token in raw.split(","):
        if not token.strip():
            continue
        match = _TOKEN.match(token)
        if match is None:
            raise ValueError(token.strip())
        tp = (match.group(1), int(match.group(2)))
        wanted[tp] = max(wanted.get(tp, -1), int(match.group(3)))
    return wanted


def _unsealed(raw: str, key: bytes, partner: bool) -> str:
    """The positions `raw` names: sealed tokens opened; a partner may pass only sealed
    ones (the tokens its commands returned), so it cannot probe offsets."""
    out: list[str] = []
    for token in raw.split(","):
        if not token.strip():
            continue
        if is_sealed(token):
            try:
                out.append(unseal(token, key))
            except ValueError:
                raise ValueError("(not a token we issued)") from None
        elif partner:
            raise ValueError("(pass the X-Log-Position of a command unchanged)")
        else:
            out.append(token)
    return ",".join(out)


async def read_your_writes(
    request: Request,
    who: Annotated[Viewer, Depends(viewer)],
    min_position: Annotated[str | None, Query(
        max_length=2000,
        description="Wait until the read models applied this log position "
                    "(`topic/partition/offset`, as a command's `X-Log-Position`; several "
                    "comma-separated). Bounded by `Prefer: wait=N` (default 5 s); 503 "
                    "with `Retry-After` if not reached in time.")] = None,
    x_wait_for_position: Annotated[str | None, Header(
        max_length=2000, description="Same as `min_position`")] = None,
    prefer: Annotated[str | None, Header(max_length=200)] = None,
) -> Viewer:
    """Wait for the positions asked (if any); the viewer, for a route that takes it from
    here rather than solving `viewer` a second time (`/v1/ownership`)."""
    raw = ",".join(v for v in (min_position, x_wait_for_position) if v)
    if not raw:
        return who
    runtime = request.app.state.runtime
    partner = who.restricted
    try:
        wanted = parse_positions(_unsealed(raw, position_key(runtime.settings), partner))
    except ValueError as exc:
        raise Problem(422, "Validation failed",
                      "A position is the `X-Log-Position` a command returned.",
                      errors=[{"field": "min_position",
                               "message": "bad token" if partner else f"bad token {exc}"}]
                      ) from exc
    known = {runtime.topics.intake, runtime.topics.decisions}
    unknown = sorted({topic for topic, _ in wanted} - known)
    if unknown:
        raise Problem(422, "Validation failed", "Positions name the intake or decisions topic.",
                      errors=[{"field": "min_position", "message": f"unknown topic {unknown[0]}"}])
    ceiling = float(runtime.settings.max_wait_seconds)
    match = _WAIT.search(prefer or "")
    timeout = min(float(match.group(1)), ceiling) if match else min(
        DEFAULT_POSITION_WAIT_SECONDS, ceiling)
    worker = runtime.projection_worker
    waiter: PositionWaiter = (worker.position_waiter if worker is not None
                              else PositionWaiter(runtime.engine, MODELS))
    if await waiter.behind(wanted):
        await _reachable(runtime.eventlog, wanted, partner)
    if not await waiter.wait(wanted, timeout):
        behind = await waiter.behind(wanted)
        # Applied positions are offsets: a partner is told only that it must retry.
        raise Problem(
            503, "Read model behind",
            "The read models have not applied this position yet." if partner else
            "The read models have not applied these positions yet: "
            + ", ".join(f"{t}/{p} at {pos}" for (t, p), pos in sorted(behind.items())),
            headers={"Retry-After": "1"},
        )
    return who


async def _reachable(log: EventLog, wanted: dict[tuple[str, int], int],
                     partner: bool = False) -> None:
    """A position the log has not reached was never issued (commands answer with the
    offset of a record they appended): waiting for it can only time out, so it is a 422,
    not a 503. Asked only when the read models are behind, so a satisfied read costs
    nothing extra."""
    for topic in sorted({t for t, _ in wanted}):
        ends = {tp.partition: end for tp, end in (await log.end_positions(topic)).items()}
        for (t, partition), offset in sorted(wanted.items()):
            if t != topic:
                continue
            if partition not in ends:
                raise Problem(422, "Validation failed", "No such partition.", errors=[{
                    "field": "min_position",
                    "message": f"{topic} has no partition {partition}"}])
            if offset >= ends[partition]:
                raise Problem(422, "Validation failed",
                              "That position was never written: it cannot be waited for.",
                              errors=[{"field": "min_position", "message":
                                       "never written" if partner else
                                       f"{topic}/{partition}/{offset} is beyond the end of "
                                       f"the log ({topic}/{partition} ends at "
                                       f"{ends[partition]})"}])
