"""Two aiokafka adjustments, applied once per process (``install_aiokafka_tuning``), and the
private attributes the group-membership sweep reads (``gmv.streams.membership``).

1. A client-side long poll for brokers that answer an empty fetch at once.

A Kafka broker holds a fetch with no new data for up to ``fetch.max.wait.ms``.
The embedded noida-db answers at once, so every idle aiokafka consumer re-fetches
in a tight loop, burning most of a core in the worker and a good part of one in
the broker with nothing to read (docs/performance.md). After an empty answer that
came back early, the fetcher now waits out the rest of ``fetch.max.wait.ms`` (at most
``EMPTY_FETCH_PAUSE_S``) before asking again. Against a broker that honours the
wait, an empty answer arrives late and nothing changes.

This wraps one private aiokafka method (``Fetcher._proc_fetch_request``). The
wrapper is installed only when that method exists with the signature it was
written for (``self, assignment, node_id, request``, a coroutine function); on
any other aiokafka it is skipped with a warning and only the CPU saving is lost.
``pyproject.toml`` bounds aiokafka below its next major version.

2. lz4 at its fast level. aiokafka compresses lz4 batches at level 9 (high
compression): an order of magnitude slower than level 1 on journal JSON, for a batch only a
third smaller; the records are the same
lz4 frames either way, so consumers and brokers see no difference.

3. A consumer's member id and group coordinator (``AIOKafkaConsumer._coordinator.member_id`` and
``.coordinator_id``), and requests to that coordinator on the client's default connection
(``AIOKafkaConsumer._client.send``: not the coordination connection, where JoinGroup and
SyncGroup may wait seconds): DescribeGroups and LeaveGroup. A unit test checks these exist.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

# Longest pause after an empty fetch: the extra latency a message can see on an idle
# partition. Small against the rollup interval and freshness budget (seconds).
EMPTY_FETCH_PAUSE_S = 0.05


def install_aiokafka_tuning() -> None:
    install_empty_fetch_pause()
    install_fast_lz4()


def install_fast_lz4(level: int = 1) -> bool:
    """Point aiokafka's record batch builders (Cython and pure Python) at a fast lz4 level."""
    import functools
    import importlib

    from aiokafka import codec

    fast = functools.partial(codec.lz4_encode, level=level)
    done = False
    for name in ("aiokafka.record._crecords.default_records", "aiokafka.record.default_records"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "lz4_encode"):
            module.lz4_encode = fast
            done = True
    return done


EXPECTED_PARAMETERS = ("self", "assignment", "node_id", "request")


def _expected_signature(method: Any) -> bool:
    if method is None or not inspect.iscoroutinefunction(method):
        return False
    try:
        return tuple(inspect.signature(method).parameters) == EXPECTED_PARAMETERS
    except (TypeError, ValueError):
        return False


def install_empty_fetch_pause(pause_s: float = EMPTY_FETCH_PAUSE_S) -> bool:
    """Patch aiokafka's fetcher once per process; True if the patch is in place."""
    try:
        from aiokafka.consumer.fetcher import Fetcher
    except ImportError:  # pragma: no cover - aiokafka is a hard dependency
        return False
    if getattr(Fetcher, "_gmv_empty_fetch_pause", False):
        return True
    original = getattr(Fetcher, "_proc_fetch_request", None)
    if not _expected_signature(original):
        log.warning("aiokafka's Fetcher._proc_fetch_request is not the coroutine (self, assignment, node_id, "
                    "request) this adjustment wraps; idle consumers will poll the broker in a tight loop "
                    "(more CPU, same results)")
        return False

    async def _proc_fetch_request(self: Any, assignment: Any, node_id: int, request: Any) -> bool:
        started = time.monotonic()
        has_new_data = await original(self, assignment, node_id, request)
        if not has_new_data:
            max_wait_s = getattr(self, "_fetch_max_wait_ms", 500) / 1000
            wait = min(pause_s, max_wait_s - (time.monotonic() - started))
            if wait > 0:
                try:
                    await asyncio.sleep(wait)
                except asyncio.CancelledError:
                    return False  # closed or unassigned meanwhile: as the original does on a cancelled send
        return has_new_data

    Fetcher._proc_fetch_request = _proc_fetch_request
    Fetcher._gmv_replaced_proc_fetch_request = original
    Fetcher._gmv_empty_fetch_pause = True
    return True


# -- the consumer group, as the membership sweep needs it (3.) ---------------------------------
def current_member_id(consumer: Any) -> str:
    """The member id the consumer's group coordinator holds now ('' while it (re)joins)."""
    coordinator = getattr(consumer, "_coordinator", None)
    return getattr(coordinator, "member_id", "") or ""


async def group_member_ids(consumer: Any, group: str) -> set[str] | None:
    """The member ids the group coordinator lists for ``group`` (None: no coordinator known yet, or
    it answered with an error, e.g. NOT_COORDINATOR while the group moves: that is no empty list)."""
    from aiokafka.protocol.admin import DescribeGroupsRequest

    node = getattr(getattr(consumer, "_coordinator", None), "coordinator_id", None)
    if node is None:
        return None
    response = await consumer._client.send(node, DescribeGroupsRequest([group]))
    # each group: (error_code, group_id, state, protocol_type, protocol, members); a member:
    # (member_id, client_id, client_host, member_metadata, member_assignment)
    groups = [g for g in response.groups if g[1] == group]
    if len(groups) != 1 or groups[0][0] != 0:
        return None
    return {member[0] for member in groups[0][5]}


async def leave_group(consumer: Any, group: str, member_id: str) -> None:
    from aiokafka.protocol.group import LeaveGroupRequest

    node = consumer._coordinator.coordinator_id
    await consumer._client.send(node, LeaveGroupRequest(group, member_id))
