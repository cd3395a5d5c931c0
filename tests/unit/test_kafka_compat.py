"""aiokafka adjustments (streams/kafka_compat.py) that need no broker: lz4 at its fast level."""

from __future__ import annotations

import json

from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from gmv.streams.kafka_compat import install_fast_lz4

LZ4 = 0x03


def _batch(value: bytes) -> bytes:
    builder = DefaultRecordBatchBuilder(2, LZ4, False, -1, -1, -1, 2**22)
    builder.append(0, timestamp=None, key=b"k", value=value, headers=[])
    return bytes(builder.build())


def test_fast_lz4_batches_decode_to_the_same_records():
    value = json.dumps({"k": "touch", "r": [[i, f"e{i}", "short_video", f"a{i % 7}"] for i in range(5000)]}).encode()
    assert install_fast_lz4(level=9)  # aiokafka's own level (as if not yet installed)
    before = _batch(value)
    assert install_fast_lz4()
    after = _batch(value)
    assert len(after) > len(before)  # the fast level wrote it (level 9 packs this tighter)
    for raw in (before, after):
        records = list(DefaultRecordBatch(bytearray(raw)))
        assert [(r.key, r.value) for r in records] == [(b"k", value)]


def test_the_fetch_pause_wraps_only_the_method_it_was_written_for():
    from aiokafka.consumer.fetcher import Fetcher

    from gmv.streams.kafka_compat import _expected_signature

    # aiokafka's own method (kept aside once the pause is installed) is what the pause was written for
    assert _expected_signature(getattr(Fetcher, "_gmv_replaced_proc_fetch_request", Fetcher._proc_fetch_request))

    async def renamed(self, assignment, node, request):  # a future aiokafka changes the parameters
        return True

    def not_a_coroutine(self, assignment, node_id, request):
        return True

    assert not _expected_signature(renamed)
    assert not _expected_signature(not_a_coroutine)
    assert not _expected_signature(None)


def test_the_private_aiokafka_parts_the_membership_sweep_reads_exist_in_this_version():
    """gmv.streams.membership reads a consumer's member id and coordinator and sends DescribeGroups and
    LeaveGroup on its client: a new aiokafka that renamed any of them must fail here, not in a stuck group."""
    import inspect

    from aiokafka.client import AIOKafkaClient
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.protocol.admin import DescribeGroupsRequest
    from aiokafka.protocol.group import LeaveGroupRequest

    source = inspect.getsource(GroupCoordinator)
    assert "self.member_id" in source and "self.coordinator_id" in source
    assert callable(GroupCoordinator.reset_generation)  # what drops the member id on ILLEGAL_GENERATION
    assert list(inspect.signature(AIOKafkaClient.send).parameters)[:3] == ["self", "node_id", "request"]
    assert DescribeGroupsRequest(["g"]) is not None and LeaveGroupRequest("g", "m") is not None


def test_a_consumer_without_a_coordinator_has_no_member_id():
    from types import SimpleNamespace

    from gmv.streams.kafka_compat import current_member_id

    assert current_member_id(SimpleNamespace(_coordinator=None)) == ""
    assert current_member_id(SimpleNamespace(_coordinator=SimpleNamespace(member_id="m-1"))) == "m-1"


def test_a_group_description_with_an_error_code_is_no_member_list():
    import asyncio
    from types import SimpleNamespace

    from gmv.streams.kafka_compat import group_member_ids

    def consumer(*groups: tuple) -> SimpleNamespace:
        async def send(node, request):
            return SimpleNamespace(groups=list(groups))
        return SimpleNamespace(_coordinator=SimpleNamespace(coordinator_id=1), _client=SimpleNamespace(send=send))

    member = ("m-1", "gmv-w0", "/127.0.0.1", b"", b"")
    assert asyncio.run(group_member_ids(consumer((0, "g", "Stable", "consumer", "range", [member])), "g")) == {"m-1"}
    assert asyncio.run(group_member_ids(consumer((0, "g", "Empty", "consumer", "", [])), "g")) == set()
    assert asyncio.run(group_member_ids(consumer((16, "g", "", "", "", [])), "g")) is None  # NOT_COORDINATOR
    assert asyncio.run(group_member_ids(consumer(), "g")) is None
