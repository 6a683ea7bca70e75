"""What every command route shares: the process's `Commands`, `Prefer: wait`, and the
`Idempotency-Key` wrapper that stores and replays responses."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request, Response

from services.registration.adapters.policy_owners import check_policy_owners
from services.registration.domain.idempotency import (
    Verdict,
    command_seed,
    fingerprint,
    valid_key,
)
from services.registration.handlers import COMMAND, CommandIdentity, Commands, Outcome
from shared.api.auth import Principal
from shared.api.problems import Problem, problem_response
from shared.logging import get_logger
from shared.positions import position_key, seal

log = get_logger(__name__)

_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
REPLAYED_HEADERS = ("location", "x-log-position", "preference-applied", "content-type")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the runtime's lifespan (after migrations): the command side's adapters."""
    commands = Commands(app.state.runtime)
    await commands.start()
    await check_policy_owners(commands.reference,
                              seed=bool(app.state.runtime.settings.seed_default_owners))
    app.state.commands = commands
    runtime = app.state.runtime
    # The post-decision re-reporter's sweep (services/registration/rereports.py).
    runtime.supervise("re_reporter", lambda: commands.re_reporter.run(
        runtime.stopping, runtime.settings.re_report_recheck_seconds))
    try:
        yield
    finally:
        await commands.stop()


# Dependencies are `async def`: FastAPI runs a plain `def` one in a worker thread, two
# thread hand-offs per request for a dictionary look-up (seen in the profile under load).
async def get_commands(request: Request) -> Commands:
    commands: Commands = request.app.state.commands
    return commands


def requested_wait(prefer: str | None, ceiling: float) -> float:
    """Seconds asked for by `Prefer: wait=N` (RFC 7240), capped by the configured ceiling."""
    if not prefer:
        return 0.0
    match = _WAIT.search(prefer)
    return min(float(match.group(1)), ceiling) if match else 0.0


PreferHeader = Annotated[str | None, Header(
    description="RFC 7240 `wait=N`: wait up to N seconds for the effect to be decided",
    examples=["wait=5"])]


async def prefer_wait(request: Request, prefer: PreferHeader = None) -> float:
    return requested_wait(prefer, request.app.state.runtime.settings.max_wait_seconds)


IDEMPOTENCY_KEY_MAX = 255
"""The longest `Idempotency-Key` taken (FastAPI's check below; the registration route's
short path reads it too)."""
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=IDEMPOTENCY_KEY_MAX,
    description="Repeats with the same key and body return the first response; another "
    "body with the same key is 422. Remembered for 24 h (configurable).",
    examples=["4f6c5f0e-8d7a-4d7e-9d51-0b8e6f3a9c21"])]


def _sealing(run: Callable[[], Awaitable[Outcome]], key: bytes
             ) -> Callable[[], Awaitable[Outcome]]:
    """A partner's `X-Log-Position` is sealed (`shared.positions`): offsets would count
    the competitors' events on the partition."""
    async def sealed() -> Outcome:
        outcome = await run()
        position = outcome.headers.get("X-Log-Position")
        if position:
            outcome.headers["X-Log-Position"] = seal(position, key)
        return outcome
    return sealed


def _as_seen_by(principal: Principal, request: Request,
                run: Callable[[], Awaitable[Outcome]]) -> Callable[[], Awaitable[Outcome]]:
    if principal.role == "partner":
        return _sealing(run, position_key(request.app.state.runtime.settings))
    return run


def render(outcome: Outcome) -> Response:
    return Response(outcome.body.model_dump_json(), status_code=outcome.status_code,
                    media_type="application/json", headers=outcome.headers)


async def idempotent(request: Request, principal: Principal, commands: Commands,
                     key: str | None, run: Callable[[], Awaitable[Outcome]],
                     remember: Callable[[Outcome], Outcome] | None = None) -> Response:
    """Run a command at most once per `Idempotency-Key`, and append it at most once.

    2xx answers are remembered, and so is a 4xx given after the command was appended (a
    contest adjudication refused). Another 4xx appended nothing and a 5xx may be retried,
    so their reservations are dropped and a retry runs the command again -- unless the
    command may have reached the log already, then the reservation stays until its lease
    lapses. The command runs with its identity (`CommandIdentity`): its event id derives
    from the caller, the key, the request and the key's first use, so a retry that takes
    over a reservation stranded by a dead process first looks for that event in the log
    and, if it is there, answers from it instead of appending again. `remember` turns the
    answer into what is stored for replays (to keep secrets out of the store)."""
    sealed = _as_seen_by(principal, request, run)
    if key is None:
        return render(await sealed())
    if not valid_key(key):
        raise Problem(422, "Validation failed", "The Idempotency-Key header is invalid.",
                      errors=[{"field": "Idempotency-Key",
                               "message": "1-255 printable ASCII characters, no spaces"}])
    body = await request.body()
    print_ = fingerprint(request.method, request.url.path, body)
    store = commands.idempotency
    scope = principal.scope
    claim = await store.claim(scope, key, print_)
    if claim.verdict is Verdict.REPLAY and claim.response is not None:
        stored = claim.response
        return Response(stored.body, status_code=stored.status_code,
                        headers={**stored.headers, "Idempotent-Replayed": "true"})
    if claim.verdict is Verdict.MISMATCH:
        raise Problem(422, "Idempotency key reused",
                      "This Idempotency-Key was used with a different request.",
                      errors=[{"field": "Idempotency-Key",
                               "message": "already used with another request body"}])
    if claim.verdict is Verdict.IN_PROGRESS or claim.first_used is None or claim.lease is None:
        raise Problem(409, "Conflict",
                      "A request with this Idempotency-Key is still being processed.",
                      headers={"Retry-After": "1"})
    first_used, held = claim.first_used, claim.lease
    # A stranded reservation's command may be in the log whatever this attempt does: its
    # reservation is never dropped (a retry after a failed look-up must look again).
    command = CommandIdentity(command_seed(scope, key, print_, first_used),
                              int(first_used.timestamp() * 1000), attempted=claim.stranded,
                              holds_key=lambda: store.holds(held))
    lease = asyncio.create_task(store.keep_leased(scope, key, held),
                                name="idempotency-lease")
    bound = COMMAND.set(command)
    try:
        found = await commands.appended_command(command) if claim.stranded else None
        if found is not None:
            command.attempted = True
            log.warning("command_recovered", event_id=command.event_id,
                        position=f"{found.topic}/{found.partition}/{found.offset}")
            wait = requested_wait(request.headers.get("prefer"),
                                  request.app.state.runtime.settings.max_wait_seconds)
            outcome = await _as_seen_by(
                principal, request, lambda: commands.recovered(principal, found, wait))()
        else:
            outcome = await sealed()
    except Problem as problem:
        if command.attempted and problem.status < 500:
            # The command is in the log and this is its answer (adjudication refused a
            # contest within the wait): remembered like a 2xx, so a retry replays it
            # instead of appending the command again.
            refused = problem_response(problem)
            with contextlib.suppress(Exception):
                await store.complete(scope, key, problem.status, bytes(refused.body).decode(),
                                     {k: v for k, v in refused.headers.items()
                                      if k.lower() in REPLAYED_HEADERS}, held)
        elif not command.attempted:
            with contextlib.suppress(Exception):
                await store.release(scope, key, held)
        raise
    except BaseException:
        if not command.attempted:
            with contextlib.suppress(Exception):
                await store.release(scope, key, held)
        raise
    finally:
        COMMAND.reset(bound)
        lease.cancel()
    response = render(outcome)
    kept = render(remember(outcome)) if remember is not None else response
    headers: dict[str, Any] = {k: v for k, v in kept.headers.items()
                               if k.lower() in REPLAYED_HEADERS}
    try:
        await store.complete(scope, key, outcome.status_code, bytes(kept.body).decode(),
                             headers, held)
    except Exception as exc:
        # The event is durable; failing to remember the answer must not turn it into an
        # error. The reservation stays pending: once its lease lapses, a retry finds the
        # event in the log and answers from it.
        log.warning("idempotency_answer_not_stored", error=type(exc).__name__)
    return response
