"""Architecture is checked, not hoped for: pure domain cores and independent services."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("registration", "adjudication", "projections")
IO_MODULES = {
    "aiokafka", "sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "fastapi", "starlette",
    "httpx", "uvicorn", "socket", "asyncio", "time", "random", "secrets", "os", "subprocess",
    "alembic", "structlog", "logging", "aiosmtplib", "requests", "urllib.request",
    "http.client",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _modules(folder: Path) -> list[Path]:
    if folder.is_file():
        return [folder]
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


PURE = [ROOT / "services" / s / "domain" for s in SERVICES] + [
    ROOT / "shared" / "accounts", ROOT / "shared" / "events",
    ROOT / "shared" / "business_time.py", ROOT / "shared" / "policy_diff.py",
]


@pytest.mark.parametrize("folder", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_domain_cores_import_no_io_clock_or_randomness(folder: Path) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in _imports(path)
            if name in IO_MODULES or name.split(".")[0] in IO_MODULES
        )
        for path in _modules(folder)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_domain_cores_never_read_the_clock() -> None:
    calls = []
    for folder in PURE:
        for path in _modules(folder):
            text = path.read_text()
            for needle in ("datetime.now(", "datetime.utcnow(", "date.today(", "time.time("):
                if needle in text:
                    calls.append(f"{path.relative_to(ROOT)}: {needle}")
    assert calls == []


@pytest.mark.parametrize("service", SERVICES)
def test_services_do_not_import_each_other(service: str) -> None:
    others = {f"services.{s}" for s in SERVICES if s != service}
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(ROOT / "services" / service)
        for name in _imports(path)
        if any(name == o or name.startswith(o + ".") for o in others)
    ]
    assert offenders == []


def test_shared_does_not_depend_on_services() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(ROOT / "shared")
        for name in _imports(path)
        if name.split(".")[0] in ("services", "dealreg")
    ]
    assert offenders == []
