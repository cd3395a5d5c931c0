"""The limits on a read a person or a dashboard asks for, and the one line a tripped limit becomes.

A limit is the operator's: a ``GMV_*`` setting of the process that runs the query (the worker
serving ``gmv sql`` and the dashboard, or ``gmv sql`` itself when it opens the embedded engine).
A query cannot raise one: its ``SETTINGS`` clause is refused before the engine (``sql_policy``)
and the session is ``readonly=1``, which refuses any change of a setting. The pipeline's own
statements (inserts, refreshes, alert evaluation) run on sessions of their own without these.

A result over a cap is an error, never a shorter answer passed off as whole: ClickHouse's
``result_overflow_mode='throw'``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """What one read may take; ``sources`` names the setting behind each limit, for messages."""

    max_execution_s: float
    max_memory_mb: int
    max_result_rows: int
    max_result_mb: int
    sources: dict[str, str] = field(default_factory=dict)
    max_threads: int = 0  # 0: the engine's own (as many as cores)
    # Niceness of the query's threads (Linux, 0-19): at 19 the pipeline's threads take the CPU first.
    # Measured on 2 cores: a 30 s cross join at nice 0 sent the demo's lag to ~5,700 messages.
    nice: int = 0

    def clickhouse_settings(self) -> dict[str, object]:
        """Session settings (applied before ``readonly``, which then freezes them)."""
        return {
            "max_execution_time": self.max_execution_s,
            "timeout_overflow_mode": "throw",
            "max_memory_usage": self.max_memory_mb * MIB,
            "max_result_rows": self.max_result_rows,
            "max_result_bytes": self.max_result_mb * MIB,
            "result_overflow_mode": "throw",
            # over HTTP: a client that hangs up cancels its query (the embedded path cancels itself)
            "cancel_http_readonly_queries_on_client_close": 1,
            **({"max_threads": self.max_threads} if self.max_threads else {}),
            **({"os_thread_priority": self.nice} if self.nice else {}),
        }

    def source(self, name: str) -> str:
        return self.sources.get(name) or f"GMV_SQL_{name.upper()}"

    def explain(self, clickhouse_text: str) -> str | None:
        """The one line for a tripped limit (which, its value, the setting, what to do), or None
        when ``clickhouse_text`` is no limit's error."""
        code = _code(clickhouse_text)
        if code == 159:  # TIMEOUT_EXCEEDED
            return (f"the query ran into its time limit of {self.max_execution_s:g} s "
                    f"({self.source('max_execution_s')}) and was stopped; narrow the time range "
                    "(WHERE minute >= ...), read a rollup (gmv.gmv_minute) instead of the facts, or ask the "
                    "operator for a higher limit")
        if code == 241:  # MEMORY_LIMIT_EXCEEDED
            return (f"the query needed more than its memory limit of {self.max_memory_mb:,} MiB "
                    f"({self.source('max_memory_mb')}) and was stopped; aggregate in fewer groups, "
                    "avoid groupArray over many rows, narrow the time range, or ask the operator for more")
        if code == 396:  # TOO_MANY_ROWS_OR_BYTES
            if "max bytes" in clickhouse_text:
                return (f"the result is over the cap of {self.max_result_mb:,} MiB "
                        f"({self.source('max_result_mb')}); nothing was printed: add LIMIT, select fewer "
                        "columns or aggregate")
            return (f"the result is over the cap of {self.max_result_rows:,} rows "
                    f"({self.source('max_result_rows')}); nothing was printed: add LIMIT or aggregate "
                    "(GROUP BY), or export in pieces by time range")
        if code == 394:  # QUERY_WAS_CANCELLED
            return "the query was cancelled: its client went away (Ctrl-C, a time-out or a closed connection)"
        if code == 202:  # TOO_MANY_SIMULTANEOUS_QUERIES (a server's profile)
            return "ClickHouse runs as many of your queries at once as your profile allows; retry in a moment"
        return None


def _code(text: str) -> int | None:
    found = re.search(r"Code: (\d+)\.", text)
    return int(found.group(1)) if found else None
