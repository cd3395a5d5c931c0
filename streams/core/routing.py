"""Co-partitioning (SPEC §3): views, enters and orders of one user meet in one partition's state.

An event that arrives on another partition than its user's (a producer keyed it
otherwise) is forwarded to the rekeyed topic on its user's partition and processed
there, never attributed where its user's state is not. The partition is Kafka's
default partitioner's, so it matches what any producer keying by ``user_id`` does.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

_PARTITION_CACHE: dict[tuple[str, int], int] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``Utils.murmur2``), bit for bit as kafka-python's: the 4-byte words come
    out of one ``struct.unpack_from`` instead of byte arithmetic."""
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        h = ((h * m) & 0xFFFFFFFF) ^ ((k * m) & 0xFFFFFFFF)
    tail = length & 3
    if tail:
        i = words << 2
        if tail == 3:
            h ^= data[i + 2] << 16
        if tail >= 2:
            h ^= data[i + 1] << 8
        h = ((h ^ data[i]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def partition_for_key(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2, as the Java and Python clients use it).

    Memoised: murmur2 is pure Python and the same users come back all day."""
    hit = _PARTITION_CACHE.get((key, partitions))
    if hit is None:
        if len(_PARTITION_CACHE) > 500_000:
            _PARTITION_CACHE.clear()
        hit = _PARTITION_CACHE[(key, partitions)] = (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
    return hit


class Rekeyed(NamedTuple):
    """A valid event that arrived on a partition other than its user's: forwarded to be processed there."""

    partition: int
    key: bytes
    value: bytes
    src: str


class RekeyRouter:
    """Which partition owns an event, and the forward for one that arrived elsewhere."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def owner(self, user_id: str | None, arrived_on: int) -> int:
        """The user's partition; an event without a user (live start/end) stays where it is."""
        return partition_for_key(user_id, self.partitions) if user_id else arrived_on

    @staticmethod
    def forward(owner: int, user_id: str, event_json: bytes, src: str) -> Rekeyed:
        return Rekeyed(owner, user_id.encode(), event_json, src)
