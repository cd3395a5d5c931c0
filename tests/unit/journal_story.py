"""A seeded story for the journal-compatibility tests (``test_journal_compat.py``).

Everything the batch processor journals: touches (views, live enters), paid orders (and a second
payment of one), attributions, refunds (applied, over-refunds, orphans, refunds before their
order), reviews (applied, a second one, another user's, orphans, before their order), customer
service messages, duplicates, replays, malformed messages, mis-keyed events forwarded through the
rekeyed topic, producer batches and epoch-ms times; short horizons, so entries expire. A writer
hands over to another half-way (a rebalance: it loads the changelog) and marks follow the batches
they confirm one batch late, as the pipelined worker writes them.

``python -m tests.unit.journal_story`` wrote ``data/journal_v1.json.gz`` from the code of commit
fcc3ea5 (before the partition state was split by domain): the journal as that code wrote it, a
digest of every batch's output, and the state and re-emitted rows a fresh processor rebuilt from
that journal. It is the changelog format's regression fixture: do not regenerate it unless the
format changes on purpose (then old changelogs must still load: keep the old file too).

Rows are compared in that code's shape (``v1_rows``): it wrote a ``funnel_events`` row per view and
live-room event itself, and its events rows had no ``engaged``; since migration 9 ClickHouse derives
the one from the other, and ``v1_rows`` does here what its materialized view does there.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from gmv.schemas.catalogue import EVENTS, FUNNEL_EVENTS
from gmv.streams.core.config import PipelineConfig
from gmv.streams.core.decode import SourceMessage
from gmv.streams.core.processor import BatchProcessor, BatchResult
from gmv.streams.core.routing import partition_for_key
from gmv.streams.core.rows import FUNNEL_EVENT_TYPES

FIXTURE = Path(__file__).parent / "data" / "journal_v1.json.gz"  # format 1, captured at fcc3ea5
FIXTURE_V2 = Path(__file__).parent / "data" / "journal_v2.json.gz"  # format 2, a record per key (5d39b92)
FIXTURE_BUCKETS = Path(__file__).parent / "data" / "journal_v2_buckets.json.gz"  # format 2, seen and touch by the bucket
PARTITIONS = 4
CONFIG = PipelineConfig(
    partitions=PARTITIONS, lookback_ms=3 * 3_600_000, half_life_ms=3_600_000, attribution_delay_ms=5000,
    dedup_horizon_ms=2 * 3_600_000, weights_retention_ms=4 * 3_600_000, orphan_refund_hold_ms=1_800_000,
    orphan_review_hold_ms=1_800_000, cs_unanswered_after_ms=1_800_000)
T0 = datetime(2026, 11, 25, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
BATCHES = 40
BATCH = 40
HANDOVER = 20  # the batch before which a new writer takes every partition over
FINAL = 36  # the batch whose attribution pass is final (an end of input); later ones leave work pending
Journal = list[tuple[str, bytes | None]]


class _Story:
    def __init__(self, seed: int = 20261125) -> None:
        self.rng = random.Random(seed)
        self.clock = T0_MS
        self.n = 0
        self.offsets: dict[tuple[str, int], int] = {}
        self.users = [f"u{i}" for i in range(24)]
        self.paid: list[tuple[str, str, int]] = []  # (order_id, user, amount)
        self.reviewed: list[str] = []
        self.sent: list[tuple[str, dict]] = []  # (topic, event) sent so far
        self.messages: list[SourceMessage] = []
        self.scheduled: list[tuple[int, str, dict]] = []  # (due step, topic, event)

    # -- events ------------------------------------------------------------------------------
    def _eid(self) -> str:
        self.n += 1
        return f"e{self.n}"

    def _time(self) -> str | int:
        t = self.clock - (self.rng.randrange(1_200_000) if self.rng.random() < 0.05 else 0)
        if self.rng.random() < 0.2:
            return t
        return datetime.fromtimestamp(t / 1000, UTC).isoformat(timespec="milliseconds")

    def _view(self, user: str) -> dict:
        r = self.rng
        v = r.randrange(12)
        doc = {"event_type": "view", "event_id": self._eid(), "event_time": self._time(), "user_id": user,
               "video_id": f"v{v}", "author_id": f"a{v % 4}", "kind": "short_video",
               "watch_ms": r.choice((500, 2500, 3000, 9000)), "traffic": r.choice(("public", "private"))}
        if v % 4:
            doc["shop_id"] = f"p{v % 3}"
        if r.random() < 0.3:
            doc.update(kind="clip", source_live_id=f"L{v % 4}")
        return doc

    def _live(self, user: str) -> dict:
        r = self.rng
        live = r.randrange(4)
        action = r.choices(("enter", "leave", "start", "end"), (14, 4, 1, 1))[0]
        doc = {"event_type": "live_room", "event_id": self._eid(), "event_time": self._time(), "live_id": f"L{live}",
               "anchor_id": f"a{live}", "action": action, "traffic": r.choice(("public", "private"))}
        if action in ("enter", "leave"):
            doc["user_id"] = user
            if r.random() < 0.5:
                doc["referrer_kind"] = r.choice(("short_video", "clip", "feed", "search"))
        if live != 3:
            doc["shop_id"] = f"p{live % 3}"
        return doc

    def _paid(self, user: str, order_id: str | None = None) -> dict:
        r = self.rng
        if order_id is None:
            order_id = f"o{self.n + 1}"
        channel = r.choice(("live", "short_video", "clip", "shelf"))
        seller = r.randrange(4)
        doc = {"event_type": "order", "event_id": self._eid(), "event_time": self._time(), "order_id": order_id,
               "user_id": user, "status": "paid", "shop_id": f"p{seller % 3}", "sku_id": f"k{r.randrange(5)}",
               "seller_id": f"a{seller}", "amount_fen": r.choice((990, 1990, 4990, 19990)), "channel": channel,
               "quantity": r.choice((1, 1, 2))}
        if channel == "shelf":
            doc.update(shelf_source=r.choice(("mall", "search", "store", "recommend")), seller_id="")
        else:
            doc["channel_id"] = f"L{seller}" if channel == "live" else f"v{r.randrange(12)}"
        self.paid.append((order_id, user, doc["amount_fen"]))
        return doc

    def _later_order(self, user: str) -> str:
        """An order paid a few steps from now (its refund or review arrives first)."""
        order_id = f"o-late{self.n}"
        self.scheduled.append((self.n + self.rng.randrange(3, 30), "orders", self._paid(user, order_id)))
        return order_id

    def _refund(self) -> dict:
        r = self.rng
        roll = r.random()
        if roll < 0.1 or not self.paid:
            order_id, user, amount = f"ox{self.n}", r.choice(self.users), 1000  # an orphan
        elif roll < 0.18:
            user = r.choice(self.users)
            order_id, amount = self._later_order(user), 990
        else:
            order_id, user, amount = r.choice(self.paid[-40:])
        fen = r.choice((amount, amount // 2 or 1, r.randrange(1, amount + 1), amount + 100))
        doc = {"event_type": "order", "event_id": self._eid(), "event_time": self._time(), "order_id": order_id,
               "user_id": user, "status": "refunded", "refund_fen": fen}
        reason = r.choice((None, "quality", "changed_mind", "damaged", "logistics"))
        if reason:
            doc["refund_reason"] = reason
        return doc

    def _review(self) -> dict:
        r = self.rng
        roll = r.random()
        if roll < 0.1 or not self.paid:
            order_id, user = f"ox{self.n}", r.choice(self.users)
        elif roll < 0.2:
            user = r.choice(self.users)
            order_id = self._later_order(user)
        elif roll < 0.3:
            order_id, user = r.choice(self.paid[-40:])[0], r.choice(self.users)  # often another user's
        elif roll < 0.4 and self.reviewed:
            order_id = r.choice(self.reviewed)
            user = next(u for o, u, _ in self.paid if o == order_id)
        else:
            order_id, user, _ = r.choice(self.paid[-40:])
        if any(o == order_id for o, _, _ in self.paid):
            self.reviewed.append(order_id)
        return {"event_type": "review", "event_id": self._eid(), "event_time": self._time(), "order_id": order_id,
                "user_id": user, "product_rating": r.randint(1, 5), "service_rating": r.randint(1, 5),
                "logistics_rating": r.randint(1, 5)}

    def _cs(self, user: str) -> dict:
        r = self.rng
        shop = f"p{r.randrange(3)}"
        return {"event_type": "cs_message", "event_id": self._eid(), "event_time": self._time(),
                "conversation_id": f"c-{user}-{shop}", "shop_id": shop, "user_id": user,
                "sender": r.choices(("buyer", "agent", "bot"), (10, 7, 3))[0]}

    # -- messages ----------------------------------------------------------------------------
    def _send(self, topic: str, value: bytes, key: str, partition: int | None = None) -> None:
        p = partition_for_key(key, PARTITIONS) if partition is None else partition
        offset = self.offsets.get((topic, p), 0)
        self.offsets[(topic, p)] = offset + 1
        self.messages.append(SourceMessage(f"gmv.{topic}", p, offset, key.encode(), value,
                                           f"gmv.{topic}:{p}:{offset}", 0, self.clock))

    def _event(self, topic: str, doc: dict) -> None:
        self.sent.append((topic, doc))
        key = doc.get("user_id") or doc["live_id"]
        wrong = None
        if self.rng.random() < 0.03:
            wrong = (partition_for_key(key, PARTITIONS) + 1) % PARTITIONS
        self._send(topic, json.dumps(doc).encode(), key, wrong)

    def step(self) -> None:
        r = self.rng
        self.clock += r.randrange(5_000, 40_000)
        for due in [s for s in self.scheduled if s[0] <= self.n]:
            self.scheduled.remove(due)
            self._event(due[1], due[2])
        user = r.choice(self.users)
        roll = r.random()
        if roll < 0.30:
            if r.random() < 0.08:  # a producer batch
                docs = [self._view(user) for _ in range(r.randint(2, 3))]
                self.sent.extend(("views", d) for d in docs)
                self._send("views", json.dumps(docs).encode(), user)
            else:
                self._event("views", self._view(user))
        elif roll < 0.45:
            self._event("live_rooms", self._live(user))
        elif roll < 0.58:
            if self.paid and r.random() < 0.05:  # a second payment of an order, under another event_id
                order_id, user, _ = r.choice(self.paid[-20:])
                self._event("orders", self._paid(user, order_id))
            else:
                self._event("orders", self._paid(user))
        elif roll < 0.66:
            self._event("orders", self._refund())
        elif roll < 0.74:
            self._event("reviews", self._review())
        elif roll < 0.87:
            self._event("service", self._cs(user))
        elif roll < 0.93 and self.sent:  # the same event in a new message: a duplicate
            topic, doc = r.choice(self.sent[-200:])
            self._send(topic, json.dumps(doc).encode(), doc.get("user_id") or doc["live_id"])
        elif roll < 0.97 and self.messages:  # the same message again: a replay
            self.messages.append(r.choice(self.messages[-100:]))
        else:
            self._send(r.choice(("views", "orders")), r.choice((b"{bad", b'{"event_type": "view"}', b"")), user)


def story() -> list[tuple[datetime, list[SourceMessage]]]:
    """The story's batches, each with the processing time it is processed at."""
    s = _Story()
    batches = []
    while len(batches) < BATCHES:
        start = len(s.messages)
        while len(s.messages) - start < BATCH:
            s.step()
        batches.append((datetime.fromtimestamp((s.clock + 2000) / 1000, UTC), s.messages[start:start + BATCH]))
        s.messages[start + BATCH:] = []
    return batches


# -- running it -----------------------------------------------------------------------------
def nonce_free(key: str, nonces: dict[str, str]) -> str:
    """A journal key with its writer's random nonce replaced by the writer's rank of appearance (format
    1's ``<p>|<kind>|<nonce>|<seq>``; format 2's buckets, ``<p>/bucket/<kind>/<end>/<n>.<writer>``)."""
    if "/bucket/" in key:
        head, n = key.rsplit("/", 1)
        seq, writer = n.split(".")
        return f"{head}/{seq}.{nonces.setdefault(writer, f'w{len(nonces)}')}"
    parts = key.split("|")
    if len(parts) == 4:
        parts[2] = nonces.setdefault(parts[2], f"w{len(nonces)}")
    return "|".join(parts)


def writers_ranked(journal: Journal) -> Journal:
    """The changelog with its buckets' writers named by their rank of appearance (comparable across runs)."""
    nonces: dict[str, str] = {}
    return [(nonce_free(k, nonces), v) for k, v in journal]


EventRowV1 = NamedTuple("EventRow", [(c, Any) for c in EVENTS.column_names if c != "engaged"])  # type: ignore[misc]
FunnelRowV1 = NamedTuple("FunnelRow", [(c, Any) for c in FUNNEL_EVENTS.column_names])  # type: ignore[misc]


def v1_funnel_row(row: tuple) -> tuple:
    """A views' or live-room event's funnel row, from its events row (what ``funnel_from_events`` does)."""
    e = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
    shop, traffic = e.get("shop_id") or "", e.get("traffic") or "public"
    if row.event_type == "view":
        return FunnelRowV1(row.event_id, row.event_time, e["kind"], "view", row.user_id, e["author_id"], e["video_id"],
                           shop, traffic, e["watch_ms"], row.engaged, "", e.get("source_live_id") or "")
    return FunnelRowV1(row.event_id, row.event_time, "live", e["action"], row.user_id, e["anchor_id"], e["live_id"],
                       shop, traffic, 0, row.engaged, e.get("referrer_kind") or "", "")


def v1_rows(rows: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """A batch's rows as the fixture's code wrote them (see the module's docstring)."""
    out = dict(rows)
    events = rows.get("events", [])
    out["events"] = [EventRowV1(*r[:-1]) for r in events]
    out["funnel_events"] = [v1_funnel_row(r) for r in events if r.event_type in FUNNEL_EVENT_TYPES]
    return out


def digest(out: BatchResult, nonces: dict[str, str], changelog: bool = True) -> str:
    """Everything a batch produced, the journal's nonces aside (``changelog=False``: but its changelog
    records, whose format changed from the first to the second)."""
    h = hashlib.sha256()
    rows = v1_rows(out.rows)
    # Without the changelog, the order rows come in is not compared: a restart re-emits pending
    # records in the order the store keeps them (format 1: in the order they were journalled).
    arranged = (lambda items: items) if changelog else (lambda items: sorted(items, key=repr))
    for name in sorted(rows):
        h.update(repr((name, arranged(rows[name]))).encode())
    h.update(repr(arranged([(d.msg, d.index, d.src, d.reason_code, d.reason, d.raw, d.event_id, d.event_type)
                            for d in out.dead_letters])).encode())
    h.update(repr(out.rekeyed).encode())
    h.update(repr(sorted(out.counters.by_topic.items())).encode())
    h.update(repr(sorted(out.next_offsets.items())).encode())
    h.update(repr((sorted(out.touched_partitions), out.watermark_ms)).encode())
    if changelog:
        h.update(repr([(nonce_free(k, nonces), v) for k, v in out.journal_puts]).encode())
        h.update(repr([nonce_free(k, nonces) for k in getattr(out, "journal_dels", ())]).encode())
    return h.hexdigest()[:24]


def run_story(batches: list[tuple[datetime, list[SourceMessage]]]) -> tuple[Journal, list[str], list[str]]:
    """The changelog a writer (then, from ``HANDOVER`` on, a second one) writes for the story, with
    the marks' tombstones a pipelined worker adds one batch late, and digests of every output: whole,
    and of its rows alone (the same as the first format's code gave)."""
    proc = BatchProcessor(CONFIG)
    journal: Journal = []
    digests: list[str] = []
    row_digests: list[str] = []
    nonces: dict[str, str] = {}
    marks_due: dict = {}
    forwarded: list[SourceMessage] = []

    def note(out: BatchResult) -> None:
        digests.append(digest(out, nonces))
        row_digests.append(digest(out, nonces, changelog=False))

    for i, (now, msgs) in enumerate(batches):
        if i == HANDOVER:  # a rebalance: another worker loads every partition from the changelog
            proc, marks_due = BatchProcessor(CONFIG), {}
            for p in range(PARTITIONS):
                note(proc.load(p, [kv for kv in journal if kv[0].startswith(f"{p}/")], now))
        out = proc.process([*forwarded, *msgs], now)
        # the last batch's orders are left waiting for their attribution delay
        last = i == len(batches) - 1
        out.merge(proc.attribute_due(now + timedelta(seconds=0 if last else 6), final=i == FINAL))
        proc.commit_journal(out)
        for staged in out.staged:
            staged.persist(None)
        journal += out.journal_puts
        # ClickHouse took the previous batch: its marks go out now (this batch's records are ahead of them)
        for _, confirmations in sorted(marks_due.items()):
            for c in confirmations:
                tombstones, changes = c.journal.confirm(c.pending_ids)
                journal += tombstones
                c.journal.store.write_now(changes)
        marks_due = proc.marks()
        forwarded = [SourceMessage("gmv.rekeyed", r.partition, 10_000 * i + n, r.key, r.value, r.src)
                     for n, r in enumerate(out.rekeyed)]
        note(out)
    return journal, digests, row_digests


def dump(ps) -> dict:
    """A partition state as plain data, every map in key order (what a store keeps)."""
    maps = state_maps(ps)
    return {
        "seen": sorted(maps["seen"].items()),
        "touches": sorted([u, sorted([e, list(t)] for e, t in ts.items())] for u, ts in maps["touches"].items()),
        "orders": sorted([e, list(o)] for e, o in maps["orders"].items()),
        "order_ids": sorted(maps["order_ids"].items()),
        "attrs": sorted([e, [list(t) for t in path]] for e, path in maps["attrs"].items()),
        "unattributed": sorted(maps["unattributed"]),
        "refunds": sorted([e, list(r)] for e, r in maps["refunds"].items()),
        "outcomes": sorted(maps["outcomes"].items()),
        "unsettled": sorted(maps["unsettled"]),
        "refunds_of": sorted([o, sorted(s)] for o, s in maps["refunds_of"].items()),
        "reviews": sorted([e, list(r)] for e, r in maps["reviews"].items()),
        "review_outcomes": sorted(maps["review_outcomes"].items()),
        "unjudged": sorted(maps["unjudged"]),
        "reviewed": sorted(maps["reviewed"].items()),
        "conversations": sorted([c, sorted([e, list(m)] for e, m in ms.items())]
                                for c, ms in maps["conversations"].items()),
        "watermark_ms": maps["watermark_ms"],
    }


def state_maps(ps) -> dict:
    return {name: getattr(ps, name) for name in (
        "seen", "touches", "orders", "order_ids", "attrs", "unattributed", "refunds", "outcomes", "unsettled",
        "refunds_of", "reviews", "review_outcomes", "unjudged", "reviewed", "conversations", "watermark_ms")}


def reload(journal: Journal, now: datetime) -> dict[str, dict]:
    """What a fresh processor rebuilds from the journal: per partition, its state and the digest of
    what it re-emits."""
    out = {}
    for p in range(PARTITIONS):
        proc = BatchProcessor(CONFIG)
        result = proc.load(p, [kv for kv in journal if kv[0].startswith((f"{p}|", f"{p}/"))], now)
        out[str(p)] = {"state": dump(proc.partition_state(p)), "reemitted": digest(result, {}, changelog=False),
                       "rows": {name: len(rows) for name, rows in v1_rows(result.rows).items()},
                       "dead_letters": len(result.dead_letters)}
    return out


def capture() -> None:
    batches = story()
    journal, digests, row_digests = run_story(batches)
    end = batches[-1][0] + timedelta(minutes=1)
    journal = writers_ranked(journal)
    doc = {"journal": [[k, None if v is None else v.decode()] for k, v in journal], "digests": digests,
           "row_digests": row_digests,
           "reloaded_at": end.isoformat(), "reloaded": reload(journal, end)}
    FIXTURE_BUCKETS.parent.mkdir(exist_ok=True)
    FIXTURE_BUCKETS.write_bytes(gzip.compress(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(), 9, mtime=0))


if __name__ == "__main__":
    capture()
