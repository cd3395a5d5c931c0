"""Kafka read progress of the ingest loop: how far each topic of each partition has been read.

Attribution waits for it (``BatchProcessor.attribute_due``'s ``read_to``): an order is
due only once every topic feeding its partition's state has been read past the order's
own Kafka timestamp plus the delay, or is caught up to its high watermark.
"""

from __future__ import annotations

from collections.abc import Iterable

from gmv.streams.core.decode import SourceMessage

# A topic read to its high watermark counts as read to this long before that watermark was learned:
# a message stamped earlier may still be on its way (producer linger, a batch waiting in a producer's
# full buffer, the append, a long poll). 5 s was seen short: an order stamped before its review reached
# the log 5.7 s after it (gmv demo catching up at 20k/s). Cost: a review without its order is judged an
# orphan this much later in wall time (its hold is event time).
IN_FLIGHT_MS = 30_000


class ReadProgress:
    def __init__(self, state_topics: Iterable[str]) -> None:
        self.state_topics = tuple(state_topics)
        self.read_ts: dict[tuple[str, int], int] = {}  # newest Kafka timestamp read (processed)
        self.first_offset: dict[tuple[str, int], int] = {}  # the first offset this process read
        self.caught_up: set[tuple[str, int]] = set()  # read to the high watermark (last look)
        # When each caught-up pair's high watermark was learned (wall clock ms, the consumer's last poll).
        self.polled_ms: dict[tuple[str, int], int] = {}
        # Next offset after the records the consumer returned: a fetch is processed in pieces, and
        # the consumer's position runs ahead of what the pieces so far held.
        self.returned: dict[tuple[str, int], int] = {}

    def returned_by_consumer(self, msgs: Iterable[SourceMessage]) -> None:
        for m in msgs:
            key = (m.topic, m.partition)
            if m.offset >= self.returned.get(key, 0):
                self.returned[key] = m.offset + 1

    def is_caught_up(self, key: tuple[str, int], high: int | None, position: int, processed: int) -> bool:
        """Read to the high watermark: the consumer's position is there and every record it returned
        is processed (``processed``: the next offset after them). Counting a later piece of the same
        fetch as read let a review be judged an orphan while its order waited in that piece."""
        return high is not None and position >= high and processed >= self.returned.get(key, 0)

    def note(self, msgs: Iterable[SourceMessage]) -> None:
        """Processed messages: how far each topic of each partition is read."""
        read, first = self.read_ts, self.first_offset
        for m in msgs:
            key = (m.topic, m.partition)
            if key not in first:
                first[key] = m.offset
            if m.timestamp_ms > read.get(key, -1):
                read[key] = m.timestamp_ms

    def forget(self, partitions: set[int]) -> None:
        """Partitions that went elsewhere: a later owner of them reads from the committed offsets again."""
        self.read_ts = {k: v for k, v in self.read_ts.items() if k[1] not in partitions}
        self.returned = {k: v for k, v in self.returned.items() if k[1] not in partitions}
        self.polled_ms = {k: v for k, v in self.polled_ms.items() if k[1] not in partitions}

    def reading(self, partitions: Iterable[int]) -> set[tuple[str, int]]:
        """The (topic, partition) pairs feeding these partitions' state not read to their high watermark."""
        return {(t, p) for p in partitions for t in self.state_topics if (t, p) not in self.caught_up}

    def read_to(self, partition: int) -> int | None:
        """How far (Kafka time) every topic feeding a partition's state has been read; None once
        all of them are caught up."""
        lagging = [self.read_ts.get((t, partition), 0) for t in self.state_topics
                   if (t, partition) not in self.caught_up]
        return min(lagging) if lagging else None

    def read_past(self, partition: int) -> int:
        """How far (Kafka time) every topic feeding a partition's state is surely read: a lagging
        topic to its newest record processed, a caught-up one to ``IN_FLIGHT_MS`` before its high
        watermark was learned. Unlike ``read_to``, never "all of it": a topic caught up at its last
        look may have been sent more since (a review's order sent a moment before the review)."""
        def past(key: tuple[str, int]) -> int:
            read = self.read_ts.get(key, 0)
            return max(read, self.polled_ms.get(key, 0) - IN_FLIGHT_MS) if key in self.caught_up else read
        return min(past((t, partition)) for t in self.state_topics)
