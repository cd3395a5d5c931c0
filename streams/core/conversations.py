"""Customer-service conversations (SPEC §7), in one partition's state, and their turn rows.

Every message of a conversation is journalled (``cs``); its turns are derived from all the
messages known so far, again whenever one arrives, so a turn row written earlier (when fewer
messages were known) is superseded by a later ``version``.
"""

from __future__ import annotations

from typing import NamedTuple

from gmv.schemas.events import CsMessageEvent
from gmv.schemas.times import row_time
from gmv.schemas.trust import CsMessage, buyer_turns
from gmv.streams.core.batch import CARRIED, NOT_CARRIED, BatchContext, Handled
from gmv.streams.core.codec import decode_json, encode_json
from gmv.streams.core.decode import Accepted
from gmv.streams.core.dedup import DedupState
from gmv.streams.core.journal import Journal
from gmv.streams.core.kinds import Kind
from gmv.streams.core.rows import CsTurnRow
from gmv.streams.state.store import Codec, StoredMap

CS = "cs"


class CsMessageRec(NamedTuple):
    event_id: str
    src: str
    conversation_id: str
    shop_id: str
    user_id: str
    sender: str  # buyer | agent | bot
    t_ms: int


MESSAGES: Codec[dict[str, CsMessageRec]] = Codec(
    lambda messages: encode_json([tuple(m) for m in messages.values()]),
    lambda raw: {m[0]: CsMessageRec(*m) for m in decode_json(raw)})


class CsKind(Kind["ConversationState"]):
    name = CS
    derived = True

    def decode(self, raw: list) -> CsMessageRec:
        return CsMessageRec(*raw)

    def apply(self, rec: CsMessageRec) -> None:
        conversations = self.st.conversations
        messages = conversations.get(rec.conversation_id) or {}
        messages[rec.event_id] = rec
        conversations[rec.conversation_id] = messages
        self.st.dedup.remember(rec.event_id, rec.src)

    def unapply(self, rec: CsMessageRec) -> None:
        st = self.st
        messages = st.conversations.get(rec.conversation_id)
        if messages is not None and messages.pop(rec.event_id, None) is not None:
            if messages:
                st.conversations[rec.conversation_id] = messages
            else:
                del st.conversations[rec.conversation_id]
        st.dedup.forget(rec.event_id, rec.src)

    def reemit(self, rec: CsMessageRec, ctx: BatchContext) -> None:
        ctx.changed_conversations.add((self.journal.partition, rec.conversation_id))


class ConversationState:
    """One partition's customer-service conversations, and the message handler."""

    def __init__(self, journal: Journal, dedup: DedupState) -> None:
        self.journal = journal
        self.dedup = dedup
        self.conversations: StoredMap[dict[str, CsMessageRec]] = StoredMap(journal.store, "c|", MESSAGES)  # id -> event_id -> message
        self._cs = journal.register(self, CsKind)

    def on_message(self, item: Accepted, t_ms: int, ctx: BatchContext) -> Handled:
        event: CsMessageEvent = item.event  # type: ignore[assignment]
        carried = self.add(CsMessageRec(
            event_id=event.event_id, src=item.src, conversation_id=event.conversation_id, shop_id=event.shop_id,
            user_id=event.user_id, sender=event.sender, t_ms=t_ms))
        ctx.changed_conversations.add((self.journal.partition, event.conversation_id))
        return CARRIED if carried else NOT_CARRIED

    def add(self, message: CsMessageRec) -> bool:
        """True if journalled now (its record carries the event's de-duplication)."""
        known = self.conversations.get(message.conversation_id)
        if known is not None and message.event_id in known:
            return False
        self._cs.apply(message)
        self.journal.record(CS, message, message.t_ms)
        return True

    def turn_rows(self, conversation_id: str, ctx: BatchContext) -> bool:
        """The turn rows of a conversation that changed, from all its messages (False if it has none)."""
        messages = self.conversations.get(conversation_id)
        if not messages:
            return False
        ctx.out.rows[CsTurnRow.TABLE].extend(turn_rows(messages, ctx.config.cs_unanswered_after_ms, ctx.now_s))
        return True


def turn_rows(conversation: dict[str, CsMessageRec], unanswered_after_ms: int, now_s: float) -> list[CsTurnRow]:
    """One row per buyer message of the conversation: the turn it starts, or ``is_turn`` 0 (a row
    written earlier, when fewer messages were known, may have said it started one)."""
    messages = list(conversation.values())
    turns = {t.start_event_id: t for t in buyer_turns(
        (CsMessage(m.t_ms, m.event_id, m.sender, m.shop_id) for m in messages), unanswered_after_ms)}
    version = len(messages)
    rows = []
    for m in messages:
        if m.sender != "buyer":
            continue
        t = turns.get(m.event_id)
        if t is None:
            rows.append(CsTurnRow(
                conversation_id=m.conversation_id, start_event_id=m.event_id, shop_id=m.shop_id, user_id=m.user_id,
                is_turn=0, start_time=row_time(m.t_ms), answer_event_id="", answer_time=None, response_ms=None,
                answered=0, fast=0, within_3min=0, version=version, computed_at=now_s))
            continue
        rows.append(CsTurnRow(
            conversation_id=m.conversation_id, start_event_id=m.event_id, shop_id=t.shop_id, user_id=m.user_id,
            is_turn=1, start_time=row_time(t.start_ms), answer_event_id=t.answer_event_id,
            answer_time=None if t.answer_ms is None else row_time(t.answer_ms), response_ms=t.response_ms,
            answered=int(t.answered), fast=int(t.fast), within_3min=int(t.within_3min), version=version,
            computed_at=now_s))
    return rows
