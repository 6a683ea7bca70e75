"""A group member's requests outlast what the broker may make them wait for.

aiokafka sends JoinGroup with the client's request timeout (40 s by default), yet the broker
holds a JoinGroup until every member has rejoined or the rebalance timeout has passed, and
aiokafka's rebalance timeout is the session timeout (DEALREG_KAFKA_SESSION_TIMEOUT_MS, up to
300 s). With a session longer than the request timeout, a member whose peer is slow to
rejoin (finishing its batch, recovering a partition) gave up on its own JoinGroup, dropped
the connection and rejoined: the group could rebalance again and again. The Java client
waits rebalance timeout + 5 s for a JoinGroup; so do ours.
"""

from __future__ import annotations

import pytest

from shared.eventlog.kafka import KafkaEventLog


@pytest.mark.parametrize("session_ms", [6_000, 30_000, 45_000, 120_000, 300_000])
async def test_a_member_waits_for_a_join_longer_than_the_broker_may_hold_it(
        session_ms: int) -> None:
    log = KafkaEventLog("127.0.0.1:1", session_timeout_ms=session_ms)
    consumer = log._consumer("g")  # built, never started: no broker is contacted
    rebalance_ms = consumer._rebalance_timeout_ms
    assert rebalance_ms >= session_ms
    assert consumer._request_timeout_ms >= rebalance_ms + 5_000
    assert consumer._request_timeout_ms >= 40_000  # never shorter than aiokafka's own
    assert consumer._client._request_timeout_ms == consumer._request_timeout_ms
    await consumer.stop()
