"""The changelog's first format, read once to migrate it (``Journal`` writes format 2).

Format 1 kept one entry per (partition, kind, batch): key ``<partition>|<kind>|<nonce>|<seq>``, value
``{"k": kind, "t": t_max, "r": [record, ...]}`` (``None``: the entry expired), and a mark under
``<partition>|mark``: ``{"k": "mark", "n": nonce, "s": seq}`` — ClickHouse holds every row derived
from the writer ``nonce``'s entries up to ``seq`` and from every entry of another writer before the
mark.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gmv.streams.core.codec import decode_json

MARK = "mark"


@dataclass
class LegacyEntry:
    key: str
    kind: str
    t_max: int
    records: list  # wire arrays
    unconfirmed: bool = False  # its rows may not be in ClickHouse (no mark covers it)


@dataclass
class LegacyJournal:
    """The live entries of one partition's format-1 journal, in the order they were written."""

    entries: dict[str, LegacyEntry] = field(default_factory=dict)

    def read(self, items: Iterable[tuple[str, bytes | None]]) -> None:
        for key, raw in items:
            self.entries.pop(key, None)
            if raw is None:
                continue
            doc = decode_json(raw)
            if doc["k"] == MARK:
                nonce, upto = doc.get("n"), doc.get("s", 0)
                for k, e in self.entries.items():
                    if e.unconfirmed:
                        e_nonce, e_seq = writer_of(k)
                        # Everything before the mark is covered, but for the marking writer's own
                        # entries past ``upto`` (sent ahead while that batch was being written).
                        e.unconfirmed = nonce is not None and e_nonce == nonce and e_seq > upto
                continue
            self.entries[key] = LegacyEntry(key, doc["k"], doc["t"], doc["r"], True)


def writer_of(key: str) -> tuple[str, int]:
    """The (nonce, seq) of a format-1 entry's key; ("", 0) for a key without them."""
    _, _, nonce, seq = (key.split("|") + ["", "0"])[:4]
    return nonce, int(seq)


def is_legacy(key: str) -> bool:
    """A format-1 key: ``<partition>|...`` (format 2's are ``<partition>/...``)."""
    head = key.split("|", 1)[0]
    return head.isdigit() and len(head) < len(key)
