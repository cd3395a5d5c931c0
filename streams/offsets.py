"""Source offsets: what this process processed, what it stored, and what the consumer group holds.

Three maps per (topic, partition), each the next offset after the messages it covers:
``handled`` (processed, stored or not), ``stored`` (their rows are in the sink; committed
next, ``Checkpoint`` step 3) and ``committed`` (what the group holds: read when the partition
is assigned, then as this process commits). Lag counts from the furthest of ``stored`` and
``committed``, so a worker restarted on a consumed topic reports 0, not the topic's length.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

log = logging.getLogger(__name__)

Key = tuple[str, int]


class Offsets:
    def __init__(self) -> None:
        self.consumer: AIOKafkaConsumer | None = None  # set by the ingest loop once it has one
        self.handled: dict[Key, int] = {}
        self.stored: dict[Key, int] = {}
        self.committed: dict[Key, int] = {}
        self.owed = False  # a commit failed (a rebalance) and nothing was committed since

    def processed(self, next_offsets: dict[Key, int]) -> None:
        for key, off in next_offsets.items():
            if off > self.handled.get(key, 0):
                self.handled[key] = off

    async def note_committed(self, assigned: list[TopicPartition]) -> None:
        """The group's committed offset of each newly assigned partition (none yet: nothing)."""
        c = self.consumer
        if c is None:
            return
        for tp in assigned:
            try:
                off = await c.committed(tp)
            except KafkaError as e:  # the coordinator moved under us: lag counts from 0 until a commit
                log.debug("could not read the committed offset of %s: %s", tp, e)
                continue
            key = (tp.topic, tp.partition)
            if off is not None and off > self.committed.get(key, -1):
                self.committed[key] = off

    async def commit(self, offsets: dict[Key, int]) -> None:
        """A batch these offsets close is stored: commit them (while the partitions are ours)."""
        for key, off in offsets.items():
            if off > self.stored.get(key, 0):
                self.stored[key] = off
        c = self.consumer
        if not offsets or c is None:
            return
        assigned = c.assignment()
        mine = {TopicPartition(t, p): off for (t, p), off in offsets.items() if TopicPartition(t, p) in assigned}
        if not mine:
            return
        try:
            await c.commit(mine)
            self.owed = False
            self.committed.update({(tp.topic, tp.partition): off for tp, off in mine.items()})
        except (CommitFailedError, KafkaError) as e:
            # The group rebalanced under this batch: if the partitions stay ours, the commit is
            # retried when the loop is next idle; if not, their new owner re-processes the batch.
            self.owed = True
            log.warning("offset commit failed (%s); retried when idle, or re-processed by the new owner", e)

    async def commit_owed(self) -> None:
        await self.commit(dict(self.stored))

    def uncommitted(self, first_read: dict[Key, int]) -> int:
        """Messages processed here whose offsets are not committed: what the next start re-processes
        (``first_read``: the first offset this process read of each partition)."""
        return sum(max(0, off - self.committed.get(key, first_read.get(key, off)))
                   for key, off in self.handled.items())

    def lag_per_partition(self) -> dict[Key, int]:
        """Messages not yet stored, per assigned (topic, partition) whose high watermark is known."""
        c = self.consumer
        out: dict[Key, int] = {}
        if c is None:
            return out
        for tp in list(c.assignment()):
            high = c.highwater(tp)
            if high is not None:
                key = (tp.topic, tp.partition)
                out[key] = max(0, high - max(self.stored.get(key, 0), self.committed.get(key, 0)))
        return out

    def lag(self) -> int:
        """Messages on the assigned partitions not yet stored (-1 while a high watermark is unknown)."""
        c = self.consumer
        if c is None or any(c.highwater(tp) is None for tp in c.assignment()):
            return -1
        return sum(self.lag_per_partition().values())

    def forget(self, partitions: set[int]) -> None:
        """Partitions gone elsewhere: their next owner reads from the committed offsets."""
        self.handled = {k: v for k, v in self.handled.items() if k[1] not in partitions}
