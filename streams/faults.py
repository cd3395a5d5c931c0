"""Crash points: the places in a batch's commit where a crash is tested (tests/integration/test_state_store.py;
``after_owed_marks``: test_owed_refresh.py).

``GMV_FAULT_CRASH_AT=<point>:<n>`` ends the process at once (``os._exit(99)``, as a kill -9 would:
nothing flushed, nothing closed) the ``n``-th time it reaches ``point``. Unset (always, but in those
tests), a point costs one dict lookup. The points, in a batch's order (``gmv.streams.checkpoint``):

``before_changelog``      the batch is processed; nothing of it has left the process
``before_store_write``    the broker has its changelog records; the local store does not
``before_clickhouse``     the local store has them (and the changelog offset); ClickHouse has no row
``before_offset_commit``  ClickHouse has its rows; its source offsets are not committed
``after_offset_commit``   its offsets are committed; its rollups and marks are not written
``after_owed_marks``      a fast refresh wrote its marks, the slow work they owe recorded (``refresh_owed``)
                          and not done
"""

from __future__ import annotations

import os

POINTS = ("before_changelog", "before_store_write", "before_clickhouse", "before_offset_commit",
          "after_offset_commit", "after_owed_marks")
EXIT_CODE = 99

_armed: list[str] = [p for p in [os.environ.get("GMV_FAULT_CRASH_AT", "")] if p]
_seen: dict[str, int] = {}


def crash_point(point: str) -> None:
    if not _armed:
        return
    name, _, nth = _armed[0].partition(":")
    if name != point:
        return
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] >= int(nth or 1):
        os._exit(EXIT_CODE)
