"""Topic provisioning on a real broker: the system-of-record topics are kept forever."""

from __future__ import annotations

from shared.eventlog.kafka import KafkaEventLog
from shared.eventlog.topics import Topics
from tests.support.servers import ServerHandle
from tests.support.topic_configs import retention_ms


async def test_intake_and_decisions_are_created_with_infinite_retention(
    kafka_server: ServerHandle, unique: str
) -> None:
    topics = Topics.named(f"prov-{unique}")
    log = KafkaEventLog(kafka_server.url)
    await log.start()
    try:
        await log.create_topics(topics.specs(4))
        await log.create_topics(topics.specs(8))  # existing topics are kept as they are
        assert await log.partitions(topics.intake) == 4
    finally:
        await log.close()
    assert await retention_ms(kafka_server.url, [topics.intake, topics.decisions]) == {
        topics.intake: "-1", topics.decisions: "-1"}
