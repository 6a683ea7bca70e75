"""Moving an embedded program: `dealreg export` / `import` of its data directory, and
`dealreg migrate-to-kafka` into real Kafka + PostgreSQL, after which the distributed
services take over where the embedded one stopped."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sqlite3
import sys
import tarfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from dealreg.app import create_app
from dealreg.cli import app as cli
from dealreg.runtime import Component
from services.projections.domain.batch import MODELS
from shared.eventlog import EventLog, TopicPartition
from shared.eventlog.embedded import EmbeddedEventLog
from shared.eventlog.kafka import KafkaEventLog
from shared.readmodel.store import create_engine
from shared.settings import Settings
from tests.e2e.test_registration_slice import registration
from tests.integration.projections.projection_support import snapshot
from tests.support.servers import ServerHandle
from tests.support.topic_configs import retention_ms

REPO = Path(__file__).resolve().parents[2]
ADMIN = "move-admin"
DOMAINS = ("acme.com", "globex.com", "initech.com", "umbrella.com", "hooli.com")


@asynccontextmanager
async def serving(settings: Settings, *components: Component
                  ) -> AsyncIterator[dict[Component, httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        clients: dict[Component, httpx.AsyncClient] = {}
        for component in components:
            application = create_app(settings, frozenset({component})) \
                if settings.backend == "distributed" else create_app(settings)
            await stack.enter_async_context(application.router.lifespan_context(application))
            clients[component] = await stack.enter_async_context(httpx.AsyncClient(
                transport=httpx.ASGITransport(app=application), base_url="http://dealreg",
                headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30))
        yield clients


async def embedded_program(data_dir: Path, prefix: str) -> dict[str, Any]:
    """A few weeks of a small program: partners, registrations (some rivals), a key."""
    settings = Settings(backend="embedded", data_dir=data_dir, admin_token=ADMIN,
                        topic_prefix=prefix, topic_partitions=4)
    decided: dict[str, Any] = {}
    async with serving(settings, "registration") as clients:
        api = clients["registration"]
        assert (await api.put("/v1/partners/p-1", json={
            "name": "One", "type": "reseller", "tier": "gold"})).status_code == 201
        key = (await api.post("/v1/api-keys", json={"role": "partner", "subject_id": "p-1",
                                                    "name": "portal"})).json()
        for i, domain in enumerate(DOMAINS):
            for partner in ("p-1", "p-2") if i % 2 == 0 else ("p-1",):
                answer = await api.post("/v1/registrations", headers={"Prefer": "wait=10"},
                                        json=registration(partner, f"https://www.{domain}"))
                assert answer.status_code == 201, answer.text
                decided.setdefault(domain, answer.json())
        decided["key"] = key
    return decided


def records_of(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute('SELECT * FROM records ORDER BY topic, partition, "offset"').fetchall()
    finally:
        conn.close()


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"})
    return result.exit_code, " ".join(result.output.split())


async def test_export_then_import_gives_the_same_program_and_refuses_bad_archives(
        tmp_path: Path, unique: str) -> None:
    source = tmp_path / "source"
    await embedded_program(source, f"x-{unique}")
    archive = tmp_path / "program.tar.gz"
    code, out = invoke("export", str(archive), "--data-dir", str(source))
    assert code == 0, out
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["format_version"] == 1
    assert set(manifest["files"]) == {"eventlog.sqlite3", "readmodel.sqlite3"}
    intake = manifest["positions"][f"x-{unique}.intake"]
    assert sum(intake.values()) >= 8 and len(intake) == 4
    adjudicated = manifest["groups"]["dealreg-adjudicator"][f"x-{unique}.intake"]
    assert {p: n for p, n in adjudicated.items() if n} == {p: n for p, n in intake.items() if n}

    target = tmp_path / "target"
    code, out = invoke("import", str(archive), "--data-dir", str(target))
    assert code == 0, out
    assert records_of(target / "eventlog.sqlite3") == records_of(source / "eventlog.sqlite3")
    engines = [create_engine(f"sqlite+aiosqlite:///{d / 'readmodel.sqlite3'}")
               for d in (source, target)]
    try:
        assert await snapshot(engines[0]) == await snapshot(engines[1])
    finally:
        for engine in engines:
            await engine.dispose()

    # A non-empty target is refused, and left as it was.
    code, out = invoke("import", str(archive), "--data-dir", str(target))
    assert code == 2 and "is not empty" in out, out
    # A corrupt archive: a file changed after the manifest was written.
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(archive) as tar, tarfile.open(tampered, "w:gz") as out_tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "readmodel.sqlite3":
                data = data[:-1] + bytes([data[-1] ^ 1])
            member.size = len(data)
            out_tar.addfile(member, io.BytesIO(data))
    code, out = invoke("import", str(tampered), "--data-dir", str(tmp_path / "t2"))
    assert code == 1 and "checksum of readmodel.sqlite3 does not match" in out, out
    assert not (tmp_path / "t2").exists()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    code, out = invoke("import", str(truncated), "--data-dir", str(tmp_path / "t3"))
    assert code == 1 and "not a valid dealreg export" in out, out
    assert not (tmp_path / "t3").exists()
    assert [n for n in os.listdir(tmp_path) if n.startswith(".dealreg-import")] == []


async def test_export_refuses_a_data_directory_in_use(tmp_path: Path) -> None:
    log = EmbeddedEventLog(tmp_path / "d" / "eventlog.sqlite3")
    await log.start()
    try:
        code, out = invoke("export", str(tmp_path / "a.tar.gz"), "--data-dir",
                           str(tmp_path / "d"))
    finally:
        await log.close()
    assert code == 1 and "in use by another dealreg process" in out, out
    assert not (tmp_path / "a.tar.gz").exists()


def _comparable(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Rows as sorted canonical JSON: the two dialects order strings differently."""
    def canon(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value.normalize())
        if isinstance(value, float) and value.is_integer():
            return str(Decimal(int(value)))
        if isinstance(value, (int,)) and not isinstance(value, bool):
            return str(Decimal(value))
        return value
    return {table: sorted(json.dumps({k: canon(v) for k, v in row.items()}, sort_keys=True,
                                     default=str) for row in found)
            for table, found in rows.items()}


async def _all(log: EventLog, topic: str) -> list[tuple[int, int, str, bytes, int]]:
    out = []
    for tp, end in sorted((await log.end_positions(topic)).items()):
        async for batch in log.read(TopicPartition(topic, tp.partition), 0, end):
            out.extend((r.partition, r.offset, r.key, r.value, r.timestamp_ms) for r in batch)
    return out


async def test_migrate_to_kafka_moves_the_history_and_the_distributed_services_take_over(
        tmp_path: Path, unique: str, kafka_server: ServerHandle, fresh_database: str) -> None:
    prefix = f"mv-{unique}"
    data = tmp_path / "program"
    decided = await embedded_program(data, prefix)
    group = f"adj-{unique}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALREG_")}
    env.update(DEALREG_KAFKA_BOOTSTRAP_SERVERS=kafka_server.url,
               DEALREG_DATABASE_URL=fresh_database, DEALREG_TOPIC_PREFIX=prefix,
               DEALREG_DATA_DIR=str(data), PYTHONPATH=str(REPO), COLUMNS="250")
    # The embedded log's group is `dealreg-adjudicator`; the Kafka deployment keeps the name.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dealreg", "migrate-to-kafka", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output = (await asyncio.wait_for(proc.communicate(), 300))[0].decode()
    assert proc.returncode == 0, output
    assert "read models rebuilt from Kafka" in output

    embedded = EmbeddedEventLog(data / "eventlog.sqlite3")
    kafka = KafkaEventLog(kafka_server.url)
    await embedded.start()
    await kafka.start()
    try:
        for topic in (f"{prefix}.intake", f"{prefix}.decisions", f"{prefix}.reference"):
            assert await kafka.partitions(topic) == await embedded.partitions(topic)
            ours, theirs = await _all(embedded, topic), await _all(kafka, topic)
            assert theirs == ours and ours, topic  # same partition, offset, key, event, time
            assert await kafka.committed("dealreg-adjudicator", topic) == \
                await embedded.committed("dealreg-adjudicator", topic)
        # History is kept forever on Kafka too (not the broker's default seven days).
        copied = [f"{prefix}.{name}" for name in ("intake", "decisions", "reference")]
        assert await retention_ms(kafka_server.url, copied) == dict.fromkeys(copied, "-1")
    finally:
        await kafka.close()
        await embedded.close()

    # A second run refuses: the topics hold records now.
    again = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dealreg", "migrate-to-kafka", "--no-database", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out2 = " ".join((await again.communicate())[0].decode().split())
    assert again.returncode == 2 and "already holds records" in out2, out2

    engines = [create_engine(f"sqlite+aiosqlite:///{data / 'readmodel.sqlite3'}"),
               create_engine(fresh_database)]
    try:
        live, rebuilt = [_comparable(await snapshot(e, MODELS)) for e in engines]
        assert rebuilt == live
        assert sum(len(rows) for rows in live.values()) > 10
    finally:
        for engine in engines:
            await engine.dispose()

    # The distributed deployment takes over: the API key still works, and a rival for an
    # account taken in the embedded history conflicts with the embedded registration.
    settings = Settings(backend="distributed", admin_token=ADMIN, topic_prefix=prefix,
                        kafka_bootstrap_servers=kafka_server.url, database_url=fresh_database,
                        projections_group=f"proj-{group}")
    async with serving(settings, "projections", "adjudication", "registration") as clients:
        api = clients["registration"]
        partner = httpx.Headers({"Authorization": f"Bearer {decided['key']['token']}"})
        assert (await api.get("/v1/partners/p-1", headers=partner)).status_code == 200
        rival = await api.post("/v1/registrations", headers={"Prefer": "wait=20"},
                               json=registration("p-3", "https://www.hooli.com"))
        assert rival.status_code == 201, rival.text
        conflicts = rival.json()["decision"]["conflicts"]
        assert [c["registration_id"] for c in conflicts] == [decided["hooli.com"]["id"]]
        listed = await clients["projections"].get(f"/v1/registrations/{decided['acme.com']['id']}")
        assert listed.status_code == 200 and listed.json()["status"] == "approved"
