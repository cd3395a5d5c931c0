"""The member sweep (gmv.streams.membership): only this consumer's own former ids, only while listed,
only once left behind at two sweeps in a row."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from gmv.streams import membership
from gmv.streams.membership import AbandonedMembers


@pytest.fixture
def group(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The group as the coordinator lists it, and the LeaveGroup requests sent to it."""
    state: dict = {"listed": set(), "left": []}

    async def listed(consumer, name):
        return None if state["listed"] is None else set(state["listed"])

    async def leave(consumer, name, member):
        state["left"].append(member)
        state["listed"].discard(member)

    monkeypatch.setattr(membership, "group_member_ids", listed)
    monkeypatch.setattr(membership, "leave_group", leave)
    return state


def consumer(member: str) -> SimpleNamespace:
    return SimpleNamespace(_coordinator=SimpleNamespace(member_id=member))


def test_an_abandoned_id_of_ours_still_listed_is_left(group: dict):
    c = consumer("ours-1")
    sweep = AbandonedMembers(c, "g")
    sweep.note()
    c._coordinator.member_id = ""  # aiokafka dropped it (a refused commit) and joins again
    group["listed"] = {"ours-1", "other-9"}
    assert asyncio.run(sweep.sweep()) == []  # the first sweep that sees it left behind only notes it
    assert asyncio.run(sweep.sweep()) == ["ours-1"]
    assert group["left"] == ["ours-1"] and sweep.removed == ["ours-1"]


def test_an_id_dropped_and_taken_back_before_the_next_sweep_is_not_left(group: dict):
    c = consumer("ours-1")
    sweep = AbandonedMembers(c, "g")
    sweep.note()
    group["listed"] = {"ours-1"}
    c._coordinator.member_id = ""  # a refused commit while a SyncGroup was in flight ...
    assert asyncio.run(sweep.sweep()) == []
    c._coordinator.member_id = "ours-1"  # ... which succeeded: aiokafka takes the id back
    assert asyncio.run(sweep.sweep()) == [] and asyncio.run(sweep.sweep()) == []
    assert group["left"] == []


def test_an_error_reply_is_no_empty_group_and_the_abandoned_id_is_kept_for_the_next_sweep(group: dict):
    c = consumer("ours-1")
    sweep = AbandonedMembers(c, "g")
    sweep.note()
    c._coordinator.member_id = "ours-2"
    group["listed"] = None  # NOT_COORDINATOR: the group is moving
    asyncio.run(sweep.sweep())
    assert asyncio.run(sweep.sweep()) == [] and "ours-1" in sweep.used
    group["listed"] = {"ours-1", "ours-2"}
    assert asyncio.run(sweep.sweep()) == ["ours-1"]


def test_another_workers_member_and_our_current_one_are_never_left(group: dict):
    c = consumer("ours-2")
    sweep = AbandonedMembers(c, "g")
    group["listed"] = {"ours-2", "other-9"}
    assert asyncio.run(sweep.sweep()) == []
    assert group["left"] == []


def test_an_abandoned_id_no_longer_listed_is_forgotten_without_a_request(group: dict):
    c = consumer("ours-1")
    sweep = AbandonedMembers(c, "g")
    sweep.note()
    c._coordinator.member_id = "ours-2"
    group["listed"] = {"ours-2"}  # expired already (Apache Kafka), or replaced (a static member)
    assert asyncio.run(sweep.sweep()) == [] and asyncio.run(sweep.sweep()) == []
    assert group["left"] == [] and sweep.used == {"ours-2"}
