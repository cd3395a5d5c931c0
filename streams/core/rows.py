"""Typed rows, one record type per fact table, derived from the catalogue (``gmv.schemas.catalogue``).

Each is a NamedTuple whose fields are the table's columns, in the table's order, with ``TABLE`` its
name: the sink writes a row as it is (a tuple is a ``JSONCompactEachRow`` array), and code reads its
fields by name. Time fields carry row times: epoch seconds with exactly the event's milliseconds
(``gmv.schemas.times.row_time``). A table's shape is stated once, in the catalogue; these follow it.

Rows are built by keyword, but for the one built for every event (``EventRow``): the hot loop
builds it with ``build(RowType, values)``, values in field order (a keyword build measured ~3% of
the processing time), and a unit test checks it field by field. The sink hands pydantic-core
plain tuples (``json_rows``). ``funnel_events`` has no row type: ClickHouse derives its rows from
the events rows (migration 9, materialized view ``funnel_from_events``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from gmv.schemas.catalogue import (
    ATTRIBUTED_GMV,
    CS_TURNS,
    DEAD_LETTERS,
    EVENTS,
    INGEST_LOG,
    REFUNDS,
    REVIEWS,
)

R = TypeVar("R", bound=tuple)
# build(RecordType, values): a NamedTuple from its values in field order, with no Python-level
# call: it is tuple.__new__ itself (rows and journal records are built per event).
build: Callable[[type[R], tuple], R] = tuple.__new__  # type: ignore[assignment]

EventRow = EVENTS.row_type("EventRow")  # payload: the JSON text as received; a batch element as the parsed object
IngestLogRow = INGEST_LOG.row_type("IngestLogRow")  # outcome: accepted | duplicate | dead_letter | rekeyed
DeadLetterRow = DEAD_LETTERS.row_type("DeadLetterRow")  # received_at: a datetime (native binary insert)
CreditRow = ATTRIBUTED_GMV.row_type("CreditRow")
RefundRow = REFUNDS.row_type("RefundRow")
ReviewRow = REVIEWS.row_type("ReviewRow")
CsTurnRow = CS_TURNS.row_type("CsTurnRow")  # answer_time, response_ms: None while no agent answered

# The event types whose events rows ClickHouse flattens into funnel_events (migration 9's
# materialized view funnel_from_events): the minutes of funnel_minute a batch changes follow them.
FUNNEL_EVENT_TYPES = frozenset({"view", "live_room"})

ROW_TYPES: tuple[type[tuple], ...] = (EventRow, IngestLogRow, DeadLetterRow, CreditRow, RefundRow, ReviewRow,
                                      CsTurnRow)

