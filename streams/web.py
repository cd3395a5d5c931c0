"""Web views served by the worker (faust web, bound to loopback unless configured).

``/gmv/stats/`` — ingest counters and progress, as JSON.
``/gmv/sql/`` — read-only SQL (POST ``{"query": ..., "format": ...}``): how ``gmv sql``
reaches ClickHouse while this process owns the embedded engine.
``/dashboard/`` — the live dashboard page; ``/gmv/dashboard/data/?model=`` its figures as JSON;
``/dashboard/static/<file>`` its script, style and the charting library (served from the
package, never a CDN: the machines it runs on may have no internet).
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import faust
from faust.web import Request, Response, View

if TYPE_CHECKING:
    from gmv.streams.worker import GmvWorker

log = logging.getLogger(__name__)
STATIC = Path(str(resources.files("gmv.dashboards") / "static"))
STATIC_TYPES = {"index.html": "text/html", "dashboard.js": "application/javascript",
                "dashboard.css": "text/css", "chart.umd.min.js": "application/javascript"}


def register_views(app: faust.App, worker: GmvWorker) -> None:
    @app.page("/gmv/stats/")
    class Stats(View):
        async def get(self, request: Request) -> Response:
            return self.json(worker.stats_snapshot())

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

    @app.page("/dashboard/")
    class Dashboard(View):
        async def get(self, request: Request) -> Response:
            return self.bytes((STATIC / "index.html").read_bytes(), content_type=STATIC_TYPES["index.html"])

    for name in STATIC_TYPES:
        if name == "index.html":
            continue

        def static_view(filename: str) -> type[View]:
            class Static(View):
                async def get(self, request: Request) -> Response:
                    return self.bytes((STATIC / filename).read_bytes(), content_type=STATIC_TYPES[filename])

            Static.__name__ = f"Static_{filename.replace('.', '_')}"
            return Static

        app.page(f"/dashboard/static/{name}")(static_view(name))

    @app.page("/gmv/dashboard/data/")
    class DashboardData(View):
        async def get(self, request: Request) -> Response:
            from gmv.dashboards.queries import dashboard_data, json_rows

            if worker.sql_runner is None:
                return self.json({"error": "this worker does not serve SQL"}, status=404)
            runner = worker.sql_runner
            model = request.query.get("model", "last_touch")

            def run(query: str, params: dict) -> list[dict]:
                return json_rows(runner(query, "json", params))

            try:
                data = await asyncio.to_thread(dashboard_data, run, worker.settings.clickhouse_database, model,
                                               worker.scheduler.rolled_up_to_ms)
            except ValueError as e:
                return self.json({"error": str(e)}, status=400)
            except Exception as e:  # ClickHouse busy or down: the page shows it and retries
                log.warning("dashboard query failed: %s", e)
                return self.json({"error": f"ClickHouse query failed: {str(e).splitlines()[0]}"}, status=503)
            return self.json(data)
