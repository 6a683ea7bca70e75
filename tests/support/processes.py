"""Helpers for tests and benchmarks that run dealreg or a server as a real process."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess

import httpx


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 20.0) -> None:
    """SIGTERM `proc` (a graceful stop), SIGKILL it if it is still running after `timeout`."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def wait_ready(url: str, timeout: float = 30.0, path: str = "/readyz") -> None:
    """Wait until `url``path` answers 200 (`/readyz`: the service started its workers;
    `/healthz`: the process serves, whatever its dependencies)."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as client:
        while asyncio.get_running_loop().time() < deadline:
            try:
                if (await client.get(f"{url}{path}")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} never became ready within {timeout} s")
