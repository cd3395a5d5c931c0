"""Faust tables of the pipeline."""

from __future__ import annotations

from typing import Any

from faust.tables.table import Table


class JournalTable(Table):
    """A faust Table whose keys carry their partition (``<partition>|...``).

    State is written once per batch (outside per-event stream iteration), so
    faust cannot take the partition from the current event; the key says which
    source partition the entry belongs to, and its changelog record goes to
    that same partition. Recovery therefore restores to each worker the state
    of exactly the partitions it was assigned.
    """

    def partition_for_key(self, key: Any) -> int | None:
        text = key.decode() if isinstance(key, bytes) else str(key)
        return int(text.split("|", 1)[0])

    def partition_items(self, partition: int) -> list[tuple[str, bytes]]:
        prefix = f"{partition}|"
        out = []
        for key, value in self.data.items():
            k = key.decode() if isinstance(key, bytes) else str(key)
            if k.startswith(prefix) and value is not None:
                out.append((k, value))
        return out
