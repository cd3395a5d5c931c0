"""The limits on reads for people and dashboards (``gmv.sinks.query_limits``): the operator's, never the
query's; and where the worker's state lives. Bases of ``Settings`` (which supplies ``source``), kept apart
so each class stays one screenful."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings

from gmv.sinks.query_limits import QueryLimits


class StateSettings(BaseSettings):
    """Where the worker keeps its state and how much memory it may take (``gmv.streams.state``)."""

    state_cache_mb: Annotated[int, Field(ge=16)] = Field(
        512, description="memory for the worker's state, whatever its history: half RocksDB's block cache and "
                         "memtables, half decoded values in a hot cache; the rest of the state stays on disk "
                         "under GMV_STATE_DIR")
    state_dir: Path | None = Field(
        None, description="where the worker's state stores live (a RocksDB store per owned partition, rebuilt "
                          "from the state changelog if lost); unset = <data_dir>/state")

    def state_path(self, data_path: Path) -> Path:
        return self.state_dir.expanduser().resolve() if self.state_dir else data_path / "state"


class ReaderSettings(StateSettings):
    """The ``GMV_SQL_*`` and ``GMV_DASHBOARD_*`` knobs and the two sets of limits made of them."""

    sql_max_execution_s: Annotated[float, Field(gt=0)] = Field(
        30.0, description="an ad-hoc read (gmv sql, the web SQL endpoint, gmv alerts/scores/attribution/explain) "
                          "is stopped after this long, in the engine")
    sql_max_memory_mb: Annotated[int, Field(ge=16)] = Field(
        2048, description="memory one ad-hoc read may take in ClickHouse; with GMV_SQL_MAX_CONCURRENT it bounds "
                          "what analysts can take from the pipeline (2 x 2 GiB of a 24 GiB machine)")
    sql_max_result_rows: Annotated[int, Field(ge=1)] = Field(
        1_000_000, description="a result with more rows is an error (add LIMIT or aggregate), never a "
                               "truncated answer")
    sql_max_result_mb: Annotated[int, Field(ge=1)] = Field(
        256, description="a result larger than this (MiB, as ClickHouse holds it) is an error, never a "
                         "truncated answer")
    sql_max_threads: Annotated[int, Field(ge=0)] = Field(
        0, description="threads one ad-hoc read may use; 0 = half this machine's cores (at least 1), so the "
                       "pipeline keeps the rest (its threads also run first: ad-hoc ones at nice 19)")
    sql_max_concurrent: Annotated[int, Field(ge=1)] = Field(
        2, description="ad-hoc reads a process runs at once; more wait GMV_SQL_QUEUE_WAIT_S, then are told "
                       "it is busy")
    sql_queue_wait_s: Annotated[float, Field(ge=0)] = Field(
        5.0, description="how long an ad-hoc read waits for one of the GMV_SQL_MAX_CONCURRENT places")
    dashboard_max_execution_s: Annotated[float, Field(gt=0)] = Field(
        10.0, description="a dashboard read (the live page's data, the demo's own figures) is stopped after "
                          "this long")
    dashboard_max_memory_mb: Annotated[int, Field(ge=16)] = Field(
        1024, description="memory one dashboard read may take in ClickHouse")

    def source(self, name: str) -> str:
        """The flag or variable that set ``name`` (``Settings`` knows the flags)."""
        return f"GMV_{name.upper()}"

    @property
    def adhoc_limits(self) -> QueryLimits:
        """What one ad-hoc read may take; errors name the flag or variable that set each limit."""
        return QueryLimits(self.sql_max_execution_s, self.sql_max_memory_mb, self.sql_max_result_rows,
                           self.sql_max_result_mb, {name: self.source(f"sql_{name}") for name in
                                                    ("max_execution_s", "max_memory_mb", "max_result_rows",
                                                     "max_result_mb")},
                           max_threads=self.sql_max_threads or max(1, (os.cpu_count() or 2) // 2), nice=19)

    @property
    def dashboard_limits(self) -> QueryLimits:
        """What one dashboard read may take (its result caps are the ad-hoc ones)."""
        return QueryLimits(self.dashboard_max_execution_s, self.dashboard_max_memory_mb, self.sql_max_result_rows,
                           self.sql_max_result_mb, {"max_execution_s": self.source("dashboard_max_execution_s"),
                                                    "max_memory_mb": self.source("dashboard_max_memory_mb"),
                                                    "max_result_rows": self.source("sql_max_result_rows"),
                                                    "max_result_mb": self.source("sql_max_result_mb")})
