"""Where a partition's state lives: a small key-value interface, with RocksDB behind it on disk and a
dict behind it in memory (unit tests, and a ``gmv`` run given no state directory).

A backend stores bytes under bytes, writes a batch of puts and deletes at once, reads one key, and
iterates a key range in order. It knows nothing of codecs, caches or changelogs
(``gmv.streams.state.store`` does).
"""

from __future__ import annotations

import bisect
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

# Per RocksDB store: memtables fill to this, then flush to level 0. Small, because a worker holds a
# store per partition and every memtable is memory outside the block cache (charged to it by the
# shared write-buffer manager, so the whole stays within GMV_STATE_CACHE_MB).
WRITE_BUFFER_BYTES = 8 * 1024 * 1024


class Backend(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def write(self, changes: Mapping[bytes, bytes | None], more: Mapping[bytes, bytes | None]) -> None:
        """Puts (bytes) and deletes (None) of both, atomically."""

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Keys in [start, stop), in order."""

    def disk_bytes(self) -> int: ...

    def memory_bytes(self) -> int: ...

    def index_bytes(self) -> int:
        """Memory held outside the shared cache for the lookups (RocksDB's index and filter blocks)."""

    def close(self) -> None: ...


class MemoryBackend:
    """A dict, with its keys kept sorted for range scans."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def write(self, changes: Mapping[bytes, bytes | None], more: Mapping[bytes, bytes | None]) -> None:
        for k, v in (*changes.items(), *more.items()):
            if v is None:
                if self.data.pop(k, None) is not None:
                    del self._keys[bisect.bisect_left(self._keys, k)]
            else:
                if k not in self.data:
                    bisect.insort(self._keys, k)
                self.data[k] = v

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        i = bisect.bisect_left(self._keys, start)
        keys = self._keys[i:bisect.bisect_left(self._keys, stop)]
        for k in keys:
            v = self.data.get(k)
            if v is not None:
                yield k, v

    def disk_bytes(self) -> int:
        return 0

    def memory_bytes(self) -> int:
        return sum(len(k) + len(v) for k, v in self.data.items())

    def index_bytes(self) -> int:
        return 0

    def close(self) -> None:
        pass


class RocksResources:
    """What every RocksDB store of one worker shares: one block cache and one write-buffer manager,
    both sized from ``GMV_STATE_CACHE_MB`` (as Kafka Streams bounds its stores)."""

    def __init__(self, cache_bytes: int) -> None:
        import rocksdict

        self.cache_bytes = cache_bytes
        self.cache = rocksdict.Cache(cache_bytes)
        # Memtables count against the same cache: RocksDB's memory is the cache's size, whatever the
        # number of partitions.
        self.write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            cache_bytes // 2, False, self.cache)

    def options(self):  # -> rocksdict.Options
        import rocksdict

        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_write_buffer_size(WRITE_BUFFER_BYTES)
        opts.set_max_write_buffer_number(2)
        opts.set_write_buffer_manager(self.write_buffers)
        opts.set_max_background_jobs(2)
        opts.set_keep_log_file_num(2)
        # A bloom filter in the memtables too: a new event id's lookup (most of them) skips the
        # memtables' skip lists. 0.55 -> 0.38 us a miss, for a tenth of the write buffer.
        opts.set_memtable_prefix_bloom_ratio(0.1)
        opts.set_memtable_whole_key_filtering(True)
        opts.set_compression_type(rocksdict.DBCompressionType.lz4())
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(self.cache)
        table.set_bloom_filter(10, False)  # a lookup of an unseen event id rarely reads a block
        # Index and filter blocks stay out of the block cache, held by each table: ~1.6 bytes a key
        # (7 MB for 4.3M keys) beyond GMV_STATE_CACHE_MB. In the cache, data blocks evicted them once
        # the store outgrew it, and every lookup read a file's whole filter back: 360 us a lookup
        # against 1.5 us (4M keys, a 32 MB cache), the soak down to 4k events/s after 2M events.
        table.set_cache_index_and_filter_blocks(False)
        opts.set_block_based_table_factory(table)
        return opts

    def memory_bytes(self) -> int:
        return int(self.cache.get_usage())


class RocksBackend:
    """One RocksDB database (a directory) through rocksdict."""

    def __init__(self, path: Path, resources: RocksResources) -> None:
        import rocksdict

        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._rocksdict = rocksdict
        self.db = rocksdict.Rdict(str(path), resources.options())
        self._write_opts = rocksdict.WriteOptions()
        self.get = self.db.get  # the hot path's last step: no call of ours around it

    def write(self, changes: Mapping[bytes, bytes | None], more: Mapping[bytes, bytes | None]) -> None:
        wb = self._rocksdict.WriteBatch(raw_mode=True)
        put, delete = wb.put, wb.delete
        for part in (changes, more):
            for k, v in part.items():
                if v is None:
                    delete(k)
                else:
                    put(k, v)
        self.db.write(wb, self._write_opts)

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        it = self.db.iter()
        it.seek(start)
        try:
            while it.valid():
                k = it.key()
                if k >= stop:
                    return
                yield k, it.value()
                it.next()
        finally:
            del it

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def memory_bytes(self) -> int:
        return int(self.db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0)

    def index_bytes(self) -> int:
        try:
            return int(self.db.property_int_value("rocksdb.estimate-table-readers-mem") or 0)
        except self._rocksdict.DbClosedError:  # closed under the metrics thread by a rebalance
            return 0

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def destroy(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
