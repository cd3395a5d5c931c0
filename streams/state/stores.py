"""The state stores of one worker: a RocksDB store per owned partition under ``<state dir>/<changelog
topic>/<partition>``, sharing one memory budget (``GMV_STATE_CACHE_MB``):

- half for RocksDB: one block cache, with every store's memtables charged to it;
- half for the hot cache of decoded values (``gmv.streams.state.store.HotCache``).

Given no directory (unit tests, tools that replay in memory), stores are dicts in memory.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gmv.streams.state.backends import MemoryBackend, RocksBackend, RocksResources
from gmv.streams.state.store import HotCache, PartitionStore

log = logging.getLogger(__name__)

MB = 1024 * 1024

# How long to wait for another process to let go of a store (a worker that lost the partition closes
# it as its rebalance revokes it; a killed one's lock goes with it).
LOCK_WAIT_S = 30.0


class StoreLocked(RuntimeError):
    """Another live process holds the store."""


class StateStores:
    def __init__(self, root: Path | None = None, cache_mb: int = 64) -> None:
        self.root = root
        self.cache_bytes = cache_mb * MB
        self.cache = HotCache(self.cache_bytes // 2)
        self._resources: RocksResources | None = None
        self.open_stores: dict[int, PartitionStore] = {}

    @property
    def on_disk(self) -> bool:
        return self.root is not None

    def path(self, partition: int) -> Path:
        assert self.root is not None
        return self.root / str(partition)

    def open(self, partition: int) -> PartitionStore:
        store = self.open_stores.get(partition)
        if store is not None:
            return store
        if self.root is None:
            backend: MemoryBackend | RocksBackend = MemoryBackend()
        else:
            if self._resources is None:
                self._resources = RocksResources(self.cache_bytes - self.cache.cache_bytes)
            backend = self._open_rocks(partition)
        store = self.open_stores[partition] = PartitionStore(partition, backend, self.cache)
        return store

    def _open_rocks(self, partition: int) -> RocksBackend:
        assert self._resources is not None
        try:
            return RocksBackend(self.path(partition), self._resources)
        except Exception as e:  # rocksdict raises a plain Exception ("IO error: lock ...")
            if "lock" in str(e).lower():
                raise StoreLocked(
                    f"the state store {self.path(partition)} is held by another process: is another worker "
                    "running with this GMV_DATA_DIR and GMV_APP_ID? Give each worker on a machine its own "
                    "GMV_STATE_DIR") from e
            raise

    def close(self, partition: int) -> None:
        store = self.open_stores.pop(partition, None)
        if store is None:
            return
        for key in [k for k in self.cache.entries if k[0] == partition]:
            self.cache.drop(key)
        store.close()

    def wipe(self, partition: int) -> None:
        """Forget what the local store holds (it is rebuilt from the changelog)."""
        self.close(partition)
        if self.root is not None:
            RocksBackend.destroy(self.path(partition))

    def close_all(self) -> None:
        for p in list(self.open_stores):
            self.close(p)

    # -- what /metrics shows ----------------------------------------------------------------------
    def memory_bytes(self) -> int:
        """The hot cache's estimate, plus RocksDB's block cache and memtables, and its index and filter
        blocks (outside the cache)."""
        rocks = self._resources.memory_bytes() if self._resources is not None else 0
        if self.root is None:
            rocks = sum(s.backend.memory_bytes() for s in self.open_stores.values())
        stores = list(self.open_stores.values())  # (the metrics thread reads while a rebalance closes)
        return self.cache.bytes + rocks + sum(s.backend.index_bytes() for s in stores)

    def disk_bytes(self) -> int:
        return sum(s.backend.disk_bytes() for s in list(self.open_stores.values()))  # (as memory_bytes)
