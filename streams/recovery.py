"""Bringing a partition's state up to date when the worker is given the partition: one recovery
manager for every store.

The local store names the changelog offset it holds everything below (``Staged.persist``). So:

- **restart on the same disk**: read the changelog's tail, from that offset to its end;
- **an empty store** (a new machine, a partition moved here by a rebalance, a wiped state dir):
  read the whole partition, which compaction keeps close to the live records;
- **a store the changelog does not match** (its offset is past the partition's end: the topic was
  recreated; or before the partition's log start): wipe it and read the whole partition;
- **a changelog of the first format** (before 0.31): read it whole, migrate it once (every live
  record made again in format 2, every old key tombstoned), with a line saying so.

Reading goes in chunks (``CHUNK_RECORDS``); each chunk's store writes are made with the offset
after it, so a recovery cut short resumes where it stopped. A progress line every few seconds
says how far a long one is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from gmv.streams.changelog import StateChangelog
from gmv.streams.core.journal import is_current
from gmv.streams.core.processor import BatchProcessor, BatchResult
from gmv.streams.state.store import PartitionStore
from gmv.streams.state.stores import LOCK_WAIT_S, StoreLocked

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0


@dataclass
class Restore:
    """What the last recovery read (``/metrics``, the status snapshot)."""

    partitions: list[int] = field(default_factory=list)
    records_read: int = 0  # a bucket's records each
    records_live: int = 0
    seconds: float = 0.0
    migrated: int = 0


class Recovery:
    def __init__(self, processor: BatchProcessor) -> None:
        self.processor = processor
        self.last = Restore()

    async def recover(self, changelog: StateChangelog, partitions: list[int]) -> BatchResult:
        """Bring each partition's store up to the changelog's end; the rows of its pending records
        (ClickHouse may lack them) and a migration's changelog records come back to be written with
        the next batch."""
        t0 = time.monotonic()
        out = BatchResult()
        restore = Restore(partitions=list(partitions))
        bounds = await changelog.bounds(partitions)
        for p in partitions:
            out.merge(await self._recover_one(changelog, p, *bounds[p], restore))
        restore.seconds = time.monotonic() - t0
        restore.records_live = sum(sum(self.processor.partition_state(p).journal.counts.values()) for p in partitions)
        self.last = restore
        log.info("restored state of partitions %s: %d changelog records read, %d live, in %.2fs",
                 partitions, restore.records_read, restore.records_live, restore.seconds)
        return out

    async def _recover_one(self, changelog: StateChangelog, p: int, log_start: int, end: int,
                           restore: Restore) -> BatchResult:
        proc = self.processor
        store = await self._open(p)
        held = store.next_offset()
        if held > end or (0 < held < log_start):
            log.warning("the local state of partition %d holds changelog offsets to %d, but the changelog "
                        "runs %d-%d: it was recreated or truncated; restoring from the changelog", p, held,
                        log_start, end)
            proc.forget({p})
            proc.stores.wipe(p)
            held = 0
        proc.partition_state(p)
        start = max(held, log_start)
        log.debug("partition %d: the store holds the changelog below offset %d; it runs %d-%d", p, held, log_start, end)
        if start >= end:
            return proc.reemit(p, datetime.now(UTC))
        total, done, t0, shown = end - start, 0, time.monotonic(), time.monotonic()
        legacy: list[tuple[str, bytes | None]] = []
        async for chunk, next_offset in changelog.read(p, start, end):
            current = [kv for kv in chunk if is_current(kv[0])]
            if len(current) < len(chunk):
                legacy.extend(kv for kv in chunk if not is_current(kv[0]))
            restore.records_read += proc.apply_changelog(p, current) + len(chunk) - len(current)
            ps = proc.partition_state(p)
            ps.journal.stage().persist(None if legacy else next_offset)
            done = next_offset - start
            if time.monotonic() - shown >= PROGRESS_EVERY_S:
                shown = time.monotonic()
                rate = done / max(shown - t0, 1e-3)
                log.info("restoring partition %d from the changelog: %d of %d offsets, ~%.0f s left", p, done,
                         total, (total - done) / max(rate, 1e-3))
        out, migrated = proc.restored(p, legacy, datetime.now(UTC))
        if migrated:  # its writes, and the offset, go with the next batch's
            restore.migrated += 1
            log.warning("partition %d: migrated the state changelog from its first format (%d old records) to "
                        "format 2, once; its old keys are tombstoned", p, len(legacy))
        elif legacy:  # migrated before: only its tombstones were left to read
            proc.partition_state(p).journal.stage().persist(end)
        return out

    async def _open(self, p: int) -> PartitionStore:
        """The partition's store, once the process that had it (a worker losing it in this rebalance)
        has let go of it."""
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                return self.processor.stores.open(p)
            except StoreLocked:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


# The domain whose state each kind of record holds (``gmv_state_keys{domain}``).
DOMAINS = {"seen": "dedup", "touch": "touches", "order": "orders", "attr": "orders", "refund": "refunds",
           "settled": "refunds", "review": "reviews", "reviewed": "reviews", "cs": "conversations"}


def state_report(processor: BatchProcessor, last: Restore) -> dict[str, Any]:
    """What the status snapshot and ``/metrics`` show of the state (read from the metrics thread too:
    every map is copied first)."""
    keys: dict[str, int] = dict.fromkeys([*dict.fromkeys(DOMAINS.values()), "pending"], 0)
    for ps in list(processor.partitions.values()):
        for kind, n in list(ps.journal.counts.items()):
            keys[DOMAINS.get(kind, kind)] += n
        keys["pending"] += len(ps.journal.pending.mem)
    stores = processor.stores
    try:
        disk = stores.disk_bytes()
    except OSError:  # a store closed under the reader (a rebalance): next scrape
        disk = 0
    return {"keys": keys, "memory_bytes": stores.memory_bytes(), "disk_bytes": disk,
            "cache_bytes_limit": stores.cache_bytes, "cache_hit_ratio": stores.cache.hit_ratio(),
            "restore": asdict(last)}
