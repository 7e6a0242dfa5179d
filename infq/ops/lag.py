"""Kafka lag of the dispatcher group, from the fetch high watermark.

Lag is ``high watermark - committed offset`` per partition. The high watermark comes
from a fetch response, not from ``ListOffsets``: Tansu (the local broker) answers
``ListOffsets`` with the base offset of the last record batch + 1, which undercounts
after batched produces (see docs/operations.md). A fetch near the end of each partition carries
the true high watermark on Tansu and on real Kafka alike, and reads at most the last
record batch.
"""

from __future__ import annotations

import logging
import threading
import time

from kafka import KafkaConsumer, TopicPartition

from infq.bus.kafka import RECONNECT_BACKOFF_MAX_MS
from infq.settings import Settings

log = logging.getLogger("infq.ops")

FETCH_WAIT_S = 2.0


class LagProbe:
    """A consumer outside the group (manual assignment, never commits) that reads the
    group's committed offsets and each partition's high watermark."""

    def __init__(self, settings: Settings, *, group_id: str | None = None) -> None:
        self._consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka,
            group_id=group_id or settings.consumer_group,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            # One record batch per partition is enough to carry the high watermark.
            max_partition_fetch_bytes=max(64 * 1024, settings.max_record_bytes),
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
            request_timeout_ms=10_000,
        )

    def lag(self, topic: str) -> int:
        """Records of ``topic`` the group has not committed yet."""
        return sum(self.lag_by_partition(topic).values())

    def lag_by_partition(self, topic: str) -> dict[int, int]:
        """Per partition: high watermark minus committed offset (0 if not committed)."""
        parts = self._consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return {}
        self._consumer.assign(tps)
        try:
            committed = {tp: self._consumer.committed(tp) or 0 for tp in tps}
            listed = self._consumer.end_offsets(tps)
            for tp in tps:
                # ListOffsets may be short (Tansu), never long: from just before it, a
                # fetch returns the tail and the real high watermark.
                self._consumer.seek(tp, max(0, int(listed[tp]) - 1))
            highwater = self._highwater(tps)
        finally:
            # A fresh assignment next time: no high watermark left over from this one.
            self._consumer.unsubscribe()
        return {
            tp.partition: max(0, highwater.get(tp, int(listed[tp])) - committed[tp]) for tp in tps
        }

    def _highwater(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        deadline = time.monotonic() + FETCH_WAIT_S
        seen: dict[TopicPartition, int] = {}
        while time.monotonic() < deadline:
            self._consumer.poll(timeout_ms=100, max_records=1000, update_offsets=False)
            for tp in tps:
                hw = self._consumer.highwater(tp)
                if hw is not None:
                    seen[tp] = int(hw)
            if len(seen) == len(tps):
                break
        if len(seen) < len(tps):
            log.debug("no fetch answer for %d partitions; using ListOffsets", len(tps) - len(seen))
        return seen

    def close(self) -> None:
        """Close the consumer (never commits)."""
        self._consumer.close(autocommit=False)


class LagWatcher:
    """Probes the lag every ``interval_s`` on a thread of its own and keeps the last
    answer, so a slow or absent broker never delays a scaling decision."""

    def __init__(self, settings: Settings, *, interval_s: float = 2.0) -> None:
        self._settings = settings
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.value: int | None = None
        self._thread = threading.Thread(target=self._run, name="infq-lag", daemon=True)

    def start(self) -> LagWatcher:
        """Start probing; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop probing (returns at once; the thread is a daemon)."""
        self._stop.set()

    def _run(self) -> None:
        probe: LagProbe | None = None
        while not self._stop.is_set():
            try:
                probe = probe or LagProbe(self._settings)
                self.value = probe.lag(self._settings.jobs_topic)
            except Exception:
                log.warning("Kafka lag unavailable", exc_info=log.isEnabledFor(logging.DEBUG))
                self.value = None
                if probe is not None:
                    probe.close()
                probe = None
            self._stop.wait(self._interval_s)
        if probe is not None:
            probe.close()
