"""Web views served by the worker (faust web, bound to loopback unless configured).

``/gmv/stats/`` — ingest counters and progress, as JSON.
``/gmv/sql/`` — read-only SQL (POST ``{"query": ..., "format": ...}``): how ``gmv sql``
reaches ClickHouse while this process owns the embedded engine.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from faust.web import Request, Response, View

if TYPE_CHECKING:
    from streams.app import GmvWorker


def register_views(worker: GmvWorker) -> None:
    app = worker.app

    @app.page("/gmv/stats/")
    class Stats(View):
        async def get(self, request: Request) -> Response:
            return self.json(worker.stats())

    @app.page("/gmv/sql/")
    class Sql(View):
        async def post(self, request: Request) -> Response:
            if worker.sql_runner is None:
                return self.json({"error": "this worker does not serve SQL"}, status=404)
            try:
                body = json.loads(await request.read())
                query, fmt = str(body["query"]), str(body.get("format", "tsv"))
                parameters = dict(body.get("parameters") or {})
            except (ValueError, KeyError, TypeError):
                return self.json({"error": 'POST a JSON body {"query": "SELECT ...", "format": "tsv"}'}, status=400)
            try:
                out = await asyncio.to_thread(worker.sql_runner, query, fmt, parameters)
            except Exception as e:  # the query's own error, e.g. READONLY: shown to the user as is
                return self.json({"error": str(e)}, status=400)
            return self.bytes(out, content_type="text/plain")
