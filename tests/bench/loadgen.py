"""An HTTP load generator that is not the bottleneck of the benchmark it drives.

- **Its own processes**: `processes` worker processes (fork), each with its own event loop
  (uvloop when installed) and a minimal HTTP/1.1 keep-alive client on raw asyncio streams
  (no connection-pool scans: a connection is taken from a free list in O(1)).
- **Open loop at a fixed arrival rate**: request k is due at `t0 + k / rate` whatever the
  earlier requests are doing; worker w sends the k with `k % processes == w`.
- **Coordinated-omission correction**: every latency is measured from the request's
  *intended* send time (as wrk2 does), so a stalled server is charged for the requests that
  queued behind the stall, not only the one that stalled. The uncorrected service time (from
  the moment the bytes went out) is kept beside it. Both go into HdrHistograms
  (microseconds, 3 significant digits) merged over the workers.
- **Bounded concurrency**: at most `concurrency` requests in flight per worker (one per
  connection); a due request waits for a free connection, and that wait counts in its
  corrected latency.
- **It watches itself**: each worker reports its CPU time and how late its scheduler woke
  for due requests. The run is *client-saturated* (the numbers describe the client, not the
  server) when a worker used more than `CPU_LIMIT` of a core, or more than `BUSY` with its
  scheduler lag p99 over `LAG_LIMIT_MS`; `Result.valid` is then False and the bench marks
  itself invalid.

`closed_loop()` is the other mode, for ceilings: every connection sends back-to-back for a
duration; the achieved rate is the ceiling of that endpoint for this client and machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hdrh.histogram import HdrHistogram

CPU_LIMIT = 0.85
"""A worker above this share of one core is saturated: its clock readings are late."""
LAG_LIMIT_MS = 20.0
"""A busy client (above `BUSY` of a core) whose scheduler woke more than this late (p99)
for due requests is saturated."""
BUSY = 0.5
LOWEST_US, HIGHEST_US, DIGITS = 1, 120_000_000, 3

Extract = Callable[[int, int, bytes], Any]
"""(request index, status, response body) -> something small to send back (or None)."""


def histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def record(hist: HdrHistogram, seconds: float) -> None:
    hist.record_value(min(HIGHEST_US, max(LOWEST_US, round(seconds * 1e6))))


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Result:
    """Merged over the worker processes."""

    target_rate: float
    seconds: float
    sent: int = 0
    completed: int = 0
    timeouts: int = 0
    errors: int = 0
    """Transport failures (connection refused/reset), not HTTP statuses."""
    statuses: dict[int, int] = field(default_factory=dict)
    corrected: HdrHistogram = field(default_factory=histogram)
    """From the intended send time: what a caller on schedule experienced."""
    service: HdrHistogram = field(default_factory=histogram)
    """From the actual send time (not corrected; shown for contrast)."""
    lag: HdrHistogram = field(default_factory=histogram)
    """How late the scheduler woke for due requests (client health)."""
    cpu_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    extracts: dict[int, Any] = field(default_factory=dict)
    retry_after: int = 0
    """503 answers that carried `Retry-After`."""

    @property
    def achieved_rate(self) -> float:
        return self.completed / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def client_cpu_per_process(self) -> float:
        """The busiest worker's share of one core."""
        if not self.cpu_seconds or not self.wall_seconds:
            return 0.0
        return max(self.cpu_seconds) / self.wall_seconds

    @property
    def client_cores(self) -> float:
        return sum(self.cpu_seconds) / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def lag_p99_ms(self) -> float:
        return self.lag.get_value_at_percentile(99) / 1000 if self.lag.total_count else 0.0

    @property
    def saturated(self) -> str | None:
        """Why the client (not the server) limited this run, or None."""
        return client_saturation(self.client_cpu_per_process, self.lag_p99_ms)

    @property
    def valid(self) -> bool:
        return self.saturated is None

    def ms(self, p: float, corrected: bool = True) -> float:
        hist = self.corrected if corrected else self.service
        return hist.get_value_at_percentile(p) / 1000 if hist.total_count else float("nan")

    def summary(self, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {
            "target_rate_per_s": self.target_rate,
            "achieved_rate_per_s": round(self.achieved_rate, 1),
            "sent": self.sent, "completed": self.completed, "timeouts": self.timeouts,
            "transport_errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "p50_ms": self.ms(50), "p90_ms": self.ms(90), "p99_ms": self.ms(99),
            "p999_ms": self.ms(99.9), "max_ms": self.ms(100),
            "uncorrected_p50_ms": self.ms(50, False), "uncorrected_p99_ms": self.ms(99, False),
            "client_processes": len(self.cpu_seconds),
            "client_cpu_busiest_process": round(self.client_cpu_per_process, 3),
            "client_cores_used": round(self.client_cores, 3),
            "client_scheduler_lag_p99_ms": round(self.lag_p99_ms, 2),
            "client_saturated": self.saturated or "no",
            "valid": self.valid,
        }
        return {f"{prefix}{k}": v for k, v in out.items()}

    def cdf(self) -> list[tuple[float, float]]:
        """(latency ms, cumulative fraction) of the corrected histogram, for charts."""
        points = []
        total = self.corrected.total_count
        if not total:
            return points
        seen = 0
        for item in self.corrected.get_recorded_iterator():
            seen += item.count_added_in_this_iter_step
            points.append((item.value_iterated_to / 1000, seen / total))
        return points


def client_saturation(cpu_busiest: float, lag_p99_ms: float) -> str | None:
    """Why the client was the bottleneck (None: it was not).

    A late scheduler in a client process that was mostly idle was starved by the rest of
    the machine, not saturated by its own work: that is noise the server suffered too
    (reported as `client_scheduler_lag_p99_ms`), not an invalid run."""
    if cpu_busiest > CPU_LIMIT:
        return f"a client process used {cpu_busiest:.0%} of a core (limit {CPU_LIMIT:.0%})"
    if lag_p99_ms > LAG_LIMIT_MS and cpu_busiest > BUSY:
        return f"the client's scheduler woke {lag_p99_ms:.0f} ms late at p99 " \
               f"(limit {LAG_LIMIT_MS:.0f} ms) while it used {cpu_busiest:.0%} of a core"
    return None


# --- the HTTP/1.1 client ---------------------------------------------------------------


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    async def exchange(self, raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            body = await self.reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            body = b"".join(parts)
        else:
            body = b""
        return status, headers, body


def encode(host: str, request: Request, extra: Sequence[tuple[str, str]]) -> bytes:
    lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: {host}",
             f"Content-Length: {len(request.body)}"]
    if request.body:
        lines.append("Content-Type: application/json")
    lines += [f"{k}: {v}" for k, v in (*extra, *request.headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + request.body


@dataclass(frozen=True)
class Plan:
    url: str
    requests: Sequence[Request]
    """Request k of the run is `requests[k % len(requests)]`."""
    rate: float = 0.0
    """Arrivals per second (open loop); 0: closed loop."""
    seconds: float = 10.0
    processes: int = 2
    concurrency: int = 64
    """In-flight requests (= connections) per process."""
    timeout: float = 10.0
    headers: tuple[tuple[str, str], ...] = ()
    extract: Extract | None = None


async def _worker(plan: Plan, index: int, t0: float) -> dict[str, Any]:
    parts = urlsplit(plan.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    corrected, service, lag = histogram(), histogram(), histogram()
    statuses: dict[int, int] = {}
    extracts: dict[int, Any] = {}
    counts = {"sent": 0, "completed": 0, "timeouts": 0, "errors": 0, "retry_after": 0}
    free: list[Connection] = []
    slots = asyncio.Semaphore(plan.concurrency)
    clock = time.perf_counter  # uvloop's loop.time() ticks in whole milliseconds
    cpu0 = time.process_time()

    async def exchange(conn: Connection | None, raw: bytes
                       ) -> tuple[Connection, tuple[int, dict[bytes, bytes], bytes]]:
        if conn is not None:
            try:
                return conn, await conn.exchange(raw)
            except (OSError, asyncio.IncompleteReadError):
                # A kept-alive connection the server closed while idle (its keep-alive
                # timeout): nothing was answered on it; once more on a new connection.
                conn.close()
        conn = Connection(*await asyncio.open_connection(host, port))
        return conn, await conn.exchange(raw)

    async def one(k: int, intended: float) -> None:
        async with slots:
            # Oldest first: every connection stays in use, none idles into the server's
            # keep-alive timeout.
            conn = free.pop(0) if free else None
            raw = encode(host, plan.requests[k % len(plan.requests)], plan.headers)
            sent = clock()
            counts["sent"] += 1
            try:
                conn, (status, headers, body) = await asyncio.wait_for(exchange(conn, raw),
                                                                       plan.timeout)
            except TimeoutError:
                counts["timeouts"] += 1
                record(corrected, clock() - intended)
                if conn is not None:
                    conn.close()
                return
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                counts["errors"] += 1
                if conn is not None:
                    conn.close()
                return
            done = clock()
            record(corrected, done - intended)
            record(service, done - sent)
            counts["completed"] += 1
            statuses[status] = statuses.get(status, 0) + 1
            if status == 503 and b"retry-after" in headers:
                counts["retry_after"] += 1
            if headers.get(b"connection", b"").lower() == b"close":
                conn.close()
            else:
                free.append(conn)
            if plan.extract is not None:
                value = plan.extract(k, status, body)
                if value is not None:
                    extracts[k] = value

    tasks: set[asyncio.Task[None]] = set()
    # t0 is wall-clock (shared by the processes); the schedule runs on perf_counter.
    start = clock() + (t0 - time.time())
    if plan.rate > 0:
        total = int(plan.rate * plan.seconds)
        for k in range(index, total, plan.processes):
            due = start + k / plan.rate
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            record(lag, max(0.0, clock() - due))
            task = asyncio.create_task(one(k, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=plan.timeout * 2 + 1)
    else:
        await asyncio.sleep(max(0.0, start - clock()))
        stop_at = start + plan.seconds
        counter = iter(range(index, 1 << 62, plan.processes))

        async def pump() -> None:
            while clock() < stop_at:
                await one(next(counter), clock())

        await asyncio.gather(*(pump() for _ in range(plan.concurrency)))
    wall = clock() - start
    for conn in free:
        conn.close()
    return {"corrected": corrected.encode(), "service": service.encode(), "lag": lag.encode(),
            "statuses": statuses, "extracts": extracts, "cpu": time.process_time() - cpu0,
            "wall": wall, **counts}


def _process_main(plan: Plan, index: int, start: Any, t0: Any, out: Any) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        out.put((index, "ready"))
        start.wait()  # every process is up: the schedule starts at the same instant
        out.put((index, asyncio.run(_worker(plan, index, t0.value))))
    except BaseException as exc:  # reported, never a silent hang of the parent
        out.put((index, {"failed": repr(exc)}))


def run(plan: Plan) -> Result:
    """Drive `plan` from `plan.processes` processes; blocks until they report."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start, t0 = ctx.Event(), ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_process_main, args=(plan, i, start, t0, out), daemon=True)
             for i in range(plan.processes)]
    for proc in procs:
        proc.start()
    result = Result(target_rate=plan.rate, seconds=plan.seconds)
    reports = []
    try:
        for _ in procs:  # forking on a loaded machine can take a while: wait for all
            out.get(timeout=60)
        t0.value = time.time() + 0.05
        start.set()
        deadline = time.time() + plan.seconds + plan.timeout * 3 + 10
        for _ in procs:
            reports.append(out.get(timeout=max(1.0, deadline - time.time()))[1])
    finally:
        for proc in procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()
    for report in reports:
        if "failed" in report:
            raise RuntimeError(f"a load-generator process failed: {report['failed']}")
        result.corrected.add(HdrHistogram.decode(report["corrected"]))
        result.service.add(HdrHistogram.decode(report["service"]))
        result.lag.add(HdrHistogram.decode(report["lag"]))
        for status, n in report["statuses"].items():
            result.statuses[status] = result.statuses.get(status, 0) + n
        result.extracts.update(report["extracts"])
        result.cpu_seconds.append(report["cpu"])
        result.wall_seconds = max(result.wall_seconds, report["wall"])
        for key in ("sent", "completed", "timeouts", "errors", "retry_after"):
            setattr(result, key, getattr(result, key) + report[key])
    return result


def closed_loop(plan: Plan) -> Result:
    """Every connection sends back-to-back for `plan.seconds`: the endpoint's ceiling."""
    return run(Plan(**{**plan.__dict__, "rate": 0.0}))


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its waited-for children (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def process_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")
