"""The real servers the suite runs against work as the services need them to."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.servers import REPO_ROOT, ServerHandle, create_database

PARTITIONS = 3


async def _create_topic(bootstrap: str, partitions: int = PARTITIONS) -> str:
    topic = f"test-servers-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=topic, num_partitions=partitions, replication_factor=1)]
        )
        # CreateTopics answers before every broker's metadata has the topic (KRaft propagates
        # it asynchronously; CI once described it with no partitions): ask until it shows,
        # as the product's own `create_topics` waits.
        deadline = time.monotonic() + 30.0
        while True:
            described = await admin.describe_topics([topic])
            if described and described[0]["partitions"]:
                break
            assert time.monotonic() < deadline, f"topic {topic} never showed its partitions"
            await asyncio.sleep(0.1)
        assert len(described[0]["partitions"]) == partitions
    finally:
        await admin.close()
    return topic


async def _read_to_end(bootstrap: str, topic: str, isolation_level: str) -> list[bytes]:
    """All values of ``topic`` up to its end (the last stable offset under read_committed)."""
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation_level,
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        values: list[bytes] = []

        async def positions_reached() -> bool:
            return all([await consumer.position(tp) >= end[tp] for tp in tps])

        while not await positions_reached():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                values.extend(r.value for r in records if r.value is not None)
        return values
    finally:
        await consumer.stop()


@pytest.mark.kafka
async def test_kafka_idempotent_produce_and_consume(kafka_server: ServerHandle) -> None:
    bootstrap = kafka_server.url
    topic = await _create_topic(bootstrap)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        sent = [f"record-{i}".encode() for i in range(60)]
        futures = [
            await producer.send(topic, value=v, key=f"key-{i % 7}".encode())
            for i, v in enumerate(sent)
        ]
        metadata = await asyncio.gather(*futures)
        assert {m.partition for m in metadata} == set(range(PARTITIONS))
    finally:
        await producer.stop()

    received = await asyncio.wait_for(_read_to_end(bootstrap, topic, "read_uncommitted"), 60)
    assert sorted(received) == sorted(sent)

    # A consumer group works too (needs the group coordinator and __consumer_offsets).
    group = f"test-servers-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen: list[bytes] = []
        async with asyncio.timeout(60):
            while len(seen) < len(sent):
                batches = await consumer.getmany(timeout_ms=500)
                seen.extend(r.value for rs in batches.values() for r in rs if r.value)
        await consumer.commit()
        committed = {tp: await consumer.committed(tp) for tp in consumer.assignment()}
        assert sum(o or 0 for o in committed.values()) == len(sent)
    finally:
        await consumer.stop()
    assert sorted(seen) == sorted(sent)


@pytest.mark.kafka
async def test_kafka_transactions_read_committed(kafka_server: ServerHandle) -> None:
    bootstrap = kafka_server.url
    topic = await _create_topic(bootstrap)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"test-servers-{uuid.uuid4().hex[:8]}",
        enable_idempotence=True,
        acks="all",
        transaction_timeout_ms=10_000,
    )
    await producer.start()
    committed = [f"committed-{i}".encode() for i in range(9)]
    aborted = [f"aborted-{i}".encode() for i in range(9)]
    try:
        async with producer.transaction():
            for i, v in enumerate(committed):
                await producer.send(topic, value=v, partition=i % PARTITIONS)

        await producer.begin_transaction()
        for i, v in enumerate(aborted):
            await producer.send(topic, value=v, partition=i % PARTITIONS)
        await producer.flush()  # the aborted records really reach the log
        await producer.abort_transaction()
    finally:
        await producer.stop()

    read_committed = await asyncio.wait_for(_read_to_end(bootstrap, topic, "read_committed"), 60)
    assert sorted(read_committed) == sorted(committed)

    read_uncommitted = await asyncio.wait_for(
        _read_to_end(bootstrap, topic, "read_uncommitted"), 60
    )
    assert sorted(read_uncommitted) == sorted(committed + aborted)


@pytest.mark.postgres
async def test_postgres_create_insert_select(postgres_server: ServerHandle) -> None:
    assert postgres_server.url.startswith("postgresql+asyncpg://")
    db_url = await create_database(postgres_server.url, "dealreg_test_servers")
    assert db_url.startswith("postgresql+asyncpg://")
    assert db_url.endswith("/dealreg_test_servers")

    dsn = db_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == "dealreg_test_servers"
        await conn.execute(
            "CREATE TABLE deals (id uuid PRIMARY KEY, partner text NOT NULL, amount numeric)"
        )
        rows = [(uuid.uuid4(), f"partner-{i}", i * 100) for i in range(5)]
        await conn.executemany("INSERT INTO deals VALUES ($1, $2, $3)", rows)
        fetched = await conn.fetch("SELECT id, partner, amount FROM deals ORDER BY amount")
        assert [(r["id"], r["partner"], int(r["amount"])) for r in fetched] == rows
    finally:
        await conn.close()

    # Recreating drops the old database (isolation between test modules).
    again = await create_database(postgres_server.url, "dealreg_test_servers")
    conn = await asyncpg.connect(again.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        assert await conn.fetchval("SELECT to_regclass('deals')") is None
    finally:
        await conn.close()


_OWNER = """
import sys, time
from tests.support.servers import start_postgres
handle = start_postgres()
print(handle.url, flush=True)
time.sleep(600)
"""


def _refuses(url: str) -> bool:
    """Nothing listens at the host:port of ``url`` any more."""
    host, port = url.rsplit("@", 1)[-1].split("/", 1)[0].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.mark.postgres
def test_a_server_started_by_a_killed_process_stops_with_it() -> None:
    """`kill -9` of the process that started a server from deploy/ (no atexit runs) stops
    the server within seconds: its watchdog (tests/support/watchdog.py) runs the stop
    script once the owner is gone. Without the watchdog the server ran on for good."""
    env = {**os.environ, "DEALREG_TEST_DATABASE_URL": "", "DEALREG_TEST_DOCKER": "0"}
    owner = subprocess.Popen([sys.executable, "-c", _OWNER], cwd=REPO_ROOT, env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        url = owner.stdout.readline().strip()
        assert url.startswith("postgresql+asyncpg://"), url
        assert not _refuses(url)  # it runs while its owner does
        time.sleep(1.0)
        assert not _refuses(url)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 30.0  # generous for a loaded CI machine; ~1 s here
    while not _refuses(url):
        assert time.monotonic() < deadline, f"{url} still served 30 s after its owner died"
        time.sleep(0.1)
