"""Reading a topic's configuration back from a real broker."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType


async def retention_ms(bootstrap: str, names: list[str]) -> dict[str, str]:
    """`retention.ms` of each topic as the broker reports it ("-1": kept forever)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs([
            ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
    finally:
        await admin.close()
    retention = {}
    for response in described:
        for resource in response.resources:
            # (error_code, error_message, resource_type, resource_name, config_entries)
            name, entries = resource[3], resource[4]
            retention[name] = {e[0]: e[1] for e in entries}["retention.ms"]
    return retention
