"""Topic provisioning on a real broker: the system-of-record topics are kept forever."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.eventlog.kafka import KafkaEventLog
from shared.eventlog.topics import Topics
from tests.support.servers import ServerHandle


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
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_server.url)
    await admin.start()
    try:
        described = await admin.describe_configs([
            ConfigResource(ConfigResourceType.TOPIC, name)
            for name in (topics.intake, topics.decisions)
        ])
    finally:
        await admin.close()
    retention = {}
    for response in described:
        for resource in response.resources:
            # (error_code, error_message, resource_type, resource_name, config_entries)
            name, entries = resource[3], resource[4]
            retention[name] = {e[0]: e[1] for e in entries}["retention.ms"]
    assert retention == {topics.intake: "-1", topics.decisions: "-1"}
