"""The catalogue: every table and view the pipeline keeps in ClickHouse, each stated once.

``base`` says what a table is and what is derived from it (row types, INSERT column lists, the DDL
of a new migration); ``facts``, ``rollups`` and ``other`` hold the tables themselves. Frozen
migrations (``gmv.sinks.migrations``) keep the DDL exactly as it shipped; the migration test checks
that they build exactly what the catalogue says, column by column, comments included.
"""

from __future__ import annotations

from gmv.schemas.catalogue.base import Column, Table, View
from gmv.schemas.catalogue.facts import (
    ATTRIBUTED_GMV,
    CS_TURNS,
    DEAD_LETTERS,
    EVENTS,
    FACTS,
    FUNNEL_EVENTS,
    INGEST_LOG,
    REFUNDS,
    REVIEWS,
    TS,
)
from gmv.schemas.catalogue.markov import MARKOV_CREDITS, MARKOV_DAILY, MARKOV_MODEL, MARKOV_TABLES
from gmv.schemas.catalogue.other import ALERTS, DIM_ACCOUNTS, DIM_SKUS, REFRESH_OWED, VIEWS
from gmv.schemas.catalogue.rollups import (
    CONTENT_MINUTE,
    FAMILIES,
    FUNNEL_MINUTE,
    GMV_MINUTE,
    ROLLUPS,
    TRUST_DAILY,
    TRUST_SCORES,
    Family,
)

DIMENSIONS: tuple[Table, ...] = (DIM_ACCOUNTS, DIM_SKUS)
TABLES: tuple[Table, ...] = (*FACTS, *ROLLUPS, *DIMENSIONS, ALERTS, *MARKOV_TABLES, REFRESH_OWED)
BY_NAME: dict[str, Table | View] = {t.name: t for t in (*TABLES, *VIEWS)}

__all__ = ["ALERTS", "ATTRIBUTED_GMV", "BY_NAME", "CONTENT_MINUTE", "CS_TURNS", "DEAD_LETTERS", "DIMENSIONS",
           "DIM_ACCOUNTS", "DIM_SKUS", "EVENTS", "FACTS", "FAMILIES", "FUNNEL_EVENTS", "FUNNEL_MINUTE", "GMV_MINUTE",
           "INGEST_LOG", "MARKOV_CREDITS", "MARKOV_DAILY", "MARKOV_MODEL", "MARKOV_TABLES", "REFRESH_OWED", "REFUNDS", "REVIEWS", "ROLLUPS", "TABLES", "TRUST_DAILY", "TRUST_SCORES", "TS", "VIEWS",
           "Column", "Family", "Table", "View"]
