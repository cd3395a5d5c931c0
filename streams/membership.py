"""Members this worker's consumer abandoned, removed from its consumer group.

When a commit or heartbeat is refused with ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID (a rebalance
started under it), aiokafka drops its member id and joins again under a new one
(``GroupCoordinator.reset_generation``). Apache Kafka expires the old member once its session
lapses. The embedded broker (noida-db 0.2.3) never expires a member: the old id stays listed, and
when it was the group's leader the group waits for its SyncGroup for ever (CompletingRebalance,
nothing assigned to anyone; measured: the bench's two workers hung 6+ minutes, and
docs/known-issues.md). Only a LeaveGroup naming the id removes it.

So the worker remembers every member id its consumer has used and, every ``interval_s``, asks the
group coordinator which members it lists (DescribeGroups); each of its own former ids still listed
gets a LeaveGroup. Only ids this process used itself, only while listed (a LeaveGroup for an
unlisted id would start a needless rebalance on noida-db), and only once an id has been left
behind at two sweeps in a row: aiokafka can drop its id on a refused commit while a SyncGroup is
in flight and take the same id back when that SyncGroup succeeds, and that id is not abandoned. On Apache Kafka the same requests are
harmless (it expires such a member anyway). A member id is ``<client_id>-<uuid>``, and the worker's
``client_id`` is ``gmv-<instance id>`` (``gmv-<host>-<pid>`` for a dynamic member), so a group's
description (``kafka-consumer-groups --describe``) shows whose member is whose.

The requests go through aiokafka's private client and coordinator attributes
(``gmv.streams.kafka_compat``, checked per version by a unit test).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from gmv.streams.kafka_compat import current_member_id, group_member_ids, leave_group

log = logging.getLogger(__name__)

# How often the group's member list is read while an id of ours is abandoned: about a heartbeat
# interval, so a stuck rebalance ends within seconds (one small request to the coordinator each time).
SWEEP_INTERVAL_S = 1.0
# How often the consumer's member id is looked at (an attribute read): an id must be known before
# aiokafka drops it, and a join can be followed by a refused commit within a fraction of a second.
NOTE_INTERVAL_S = 0.05


class AbandonedMembers:
    def __init__(self, consumer: AIOKafkaConsumer, group: str, interval_s: float = SWEEP_INTERVAL_S) -> None:
        self.consumer = consumer
        self.group = group
        self.interval_s = interval_s
        self.used: set[str] = set()  # every member id this consumer has had
        self.suspect: set[str] = set()  # ids of ours left behind at the last sweep (left at the next)
        self.removed: list[str] = []  # the ones this sweep had to remove, in order

    def note(self) -> None:
        member = current_member_id(self.consumer)
        if member:
            self.used.add(member)

    async def sweep(self) -> list[str]:
        """LeaveGroup for each former id of ours the coordinator still lists, left behind at this
        sweep and the one before; returns them."""
        self.note()
        abandoned = self.used - {current_member_id(self.consumer)}
        confirmed, self.suspect = abandoned & self.suspect, abandoned
        if not confirmed:
            return []
        listed = await group_member_ids(self.consumer, self.group)
        if listed is None:  # no coordinator known, or it could not describe the group now: next time
            return []
        if current_member_id(self.consumer) in confirmed:  # taken back while we asked
            return []
        stale = sorted(confirmed & listed)
        for member in stale:
            await leave_group(self.consumer, self.group, member)
            log.warning("left consumer group %s for member %s, which this worker's consumer had abandoned after "
                        "a refused commit or heartbeat (the broker still listed it; a stale leader would "
                        "stall the group's rebalance)", self.group, member)
        self.used -= confirmed  # gone from the group, or left now: never ours again
        self.suspect -= confirmed
        self.removed += stale
        return stale

    async def run(self, should_stop: Callable[[], bool]) -> None:
        last_sweep = 0.0
        while not should_stop():
            self.note()
            now = time.monotonic()
            if self.used - {current_member_id(self.consumer)} and now - last_sweep >= self.interval_s:
                last_sweep = now
                try:
                    await self.sweep()
                except KafkaError as e:  # the coordinator is moving: next time
                    log.debug("member sweep of %s failed: %s", self.group, e)
                except Exception:  # never end the sweep: a stale leader would stall the group again
                    log.warning("member sweep of %s failed; trying again in %.0fs", self.group, self.interval_s,
                                exc_info=True)
            await asyncio.sleep(NOTE_INTERVAL_S)
