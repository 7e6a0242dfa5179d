"""The publisher never drops a record silently (a fake producer: a pure unit test; the
chaos suite restarts a real broker)."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import UnknownProducerIdError

from infq.bus.kafka import Message, Publisher
from infq.errors import PublishFailed


class Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error


class FakeProducer:
    """Fails every send once ``broken``, as an idempotent producer does after a broker
    restart, while ``flush()`` returns normally."""

    def __init__(self, broken: bool) -> None:
        self.broken = broken
        self.sent: list[Message] = []
        self.closed = False

    def send(self, topic: str, *, key: bytes | None, value: bytes) -> Future:
        if self.broken:
            return Future(UnknownProducerIdError())
        self.sent.append(Message(topic, key, value))
        return Future(None)

    def flush(self, timeout: float) -> None:
        return None

    def close(self, timeout: float) -> None:
        self.closed = True


def test_a_failed_send_is_reported_and_the_producer_replaced() -> None:
    made: list[FakeProducer] = []

    def factory() -> Any:
        made.append(FakeProducer(broken=not made))  # the first one is broken
        return made[-1]

    publisher = Publisher(factory)
    messages = [Message("t", b"k", b"v1"), Message("t", b"k", b"v2")]
    with pytest.raises(PublishFailed) as failed:
        publisher.send_or_raise(messages)
    assert (failed.value.failed, failed.value.total) == (2, 2)
    assert made[0].closed
    # The next send goes through a fresh producer (a new producer id)
    assert publisher.send(messages) == [True, True]
    assert made[1].sent == messages
