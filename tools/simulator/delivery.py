"""Delivery noise: how the world's events reach the topics (SPEC §2 producers, §5 bad input).

The world (``world.py``) says what happened; delivery decides how it is sent: each
event's time as ISO-8601 (Asia/Shanghai offset) or epoch milliseconds, re-sent
duplicates (same ``event_id``), late delivery (up to ``max_displacement`` messages
after its turn) and malformed messages. It draws from a random stream of its own, so
changing a noise rate never changes the world, and malformed messages are numbered
by their own counter.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from gmv.tools.sample import bad_line
from gmv.tools.simulator.scenarios import SHANGHAI, Rates

MALFORMED_KINDS = ("invalid_json", "wrong_type", "missing_field", "naive_timestamp", "negative_money",
                   "unknown_event_type", "not_an_object")
VIEW_MALFORMED_KINDS = ("invalid_json", "wrong_type", "naive_timestamp", "unknown_event_type", "not_an_object")
INCIDENT = "_incident"  # event_type of the world's delivery incidents (never sent as an event)


@dataclass(frozen=True)
class Emitted:
    """One message to send (or, ``kind`` pause, a pause of the sender)."""

    topic_type: str  # view | live_room | order (malformed: the topic it is sent to)
    key: str | None
    value: bytes
    kind: str  # valid | duplicate | malformed | pause (a marker: the sender stops for pause_s)
    event: dict[str, Any] | None = None
    pause_s: float = 0.0


class Delivery:
    def __init__(self, rates: Rates, seed: str, max_displacement: int = 40) -> None:
        self.rates = rates
        self.rng = random.Random(f"{seed}:delivery")
        self.max_displacement = max_displacement
        self._malformed_ids = itertools.count(1)
        self._ties = itertools.count()  # heap ties among delayed messages

    def format_time(self, t_ms: int) -> str | int:
        if self.rng.random() < self.rates.epoch_ms:
            return t_ms
        return datetime.fromtimestamp(t_ms / 1000, tz=SHANGHAI).isoformat(timespec="milliseconds")

    def messages(self, events: Iterable[dict[str, Any]]) -> Iterator[Emitted]:
        """The stream as sent: valid events (times formatted), plus duplicates, late delivery, malformed."""
        r, rng = self.rates, self.rng
        delayed: list[tuple[int, int, Emitted]] = []  # (release at message no., tie, message)
        n = 0
        for ev in events:
            if ev["event_type"] == INCIDENT:
                yield from self._incident(ev)
                continue
            ev = {**ev, "event_time": self.format_time(ev["event_time"])}
            msg = Emitted(ev["event_type"], ev.get("user_id") or ev.get("live_id"),
                          json.dumps(ev, ensure_ascii=False, separators=(",", ":")).encode(), "valid", ev)
            if rng.random() < r.late:
                heapq.heappush(delayed, (n + rng.randrange(1, self.max_displacement + 1), next(self._ties), msg))
            else:
                n += 1
                yield msg
            if rng.random() < r.duplicate:
                heapq.heappush(delayed, (n + rng.randrange(0, self.max_displacement + 1), next(self._ties),
                                         replace(msg, kind="duplicate")))
            if rng.random() < r.malformed:
                n += 1
                yield self._malformed()
            while delayed and delayed[0][0] <= n:
                n += 1
                yield heapq.heappop(delayed)[2]
        while delayed:
            yield heapq.heappop(delayed)[2]

    def _malformed(self, kinds: tuple[str, ...] = MALFORMED_KINDS) -> Emitted:
        kind = self.rng.choice(kinds)
        topic = "order" if kind in ("missing_field", "negative_money") else "view"
        return Emitted(topic, None, bad_line(kind, next(self._malformed_ids)), "malformed")

    def _incident(self, ev: dict[str, Any]) -> Iterator[Emitted]:
        """Delivery incidents the world scheduled (``incidents.Incidents``): a burst of malformed
        messages on the views topic, or a pause of the sender."""
        if ev["incident"] == "malformed_burst":
            for _ in range(ev["count"]):
                yield self._malformed(VIEW_MALFORMED_KINDS)
        elif ev["incident"] == "pause":
            yield Emitted("view", None, b"", "pause", pause_s=ev["seconds"])
