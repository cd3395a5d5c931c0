"""Web views served by the worker (faust web, bound to loopback unless configured).

``/gmv/stats/`` — ingest counters and progress, as JSON.
``/gmv/sql/`` — read-only SQL (POST ``{"query": ..., "format": ...}``): how ``gmv sql``
reaches ClickHouse while this process owns the embedded engine.
``/dashboard/`` — the live dashboard page; ``/gmv/dashboard/data/?model=`` its figures as JSON;
``/dashboard/static/<file>`` its script, style and the charting library (served from the
package, never a CDN: the machines it runs on may have no internet).

Access (``WebAccess``): every request must name an allowed Host (loopback names, the bind
address, ``GMV_WEB_ALLOWED_HOSTS``), or it gets 403: a page on another site that re-points its
own name at 127.0.0.1 (DNS rebinding) still sends its own name, and a browser that sends an
``Origin`` must send one of those hosts too. The data endpoints (``/gmv/sql/``,
``/gmv/dashboard/data/``) also need ``Authorization: Bearer <GMV_WEB_TOKEN>``, or get 401.
The page and its static files carry no data and need no token: the page takes it from the
``#token=`` fragment of the link the worker prints (a fragment never leaves the browser) and
sends it with each request. ``/gmv/stats/`` (pipeline counters, no GMV figures) needs none,
for healthchecks. SQL stays read-only (``readonly=1`` sessions) whoever asks, under the operator's
limits (``GMV_SQL_*`` for ``/gmv/sql/``, ``GMV_DASHBOARD_*`` for the page's data); a ``/gmv/sql/``
request whose client hangs up has its query cancelled in the engine.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import faust
from faust.web import Request, Response, View
from pydantic import SecretStr

from gmv.schemas.outputs import MARKOV
from gmv.sinks.readonly import Readers, ReadonlyClients, SqlBusy
from gmv.sinks.sql_formats import as_requested, engine_format
from gmv.streams.groups import WebSettings
from gmv.streams.status import StatusSource

log = logging.getLogger(__name__)
STATIC = Path(str(resources.files("gmv.dashboards") / "static"))
STATIC_TYPES = {"index.html": "text/html", "dashboard.js": "application/javascript",
                "dashboard.css": "text/css", "chart.umd.min.js": "application/javascript"}


Handler = Callable[[View, Request], Awaitable[Response]]
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})


def host_name(value: str) -> str:
    """'Example.COM:6066' -> 'example.com'; '[::1]:6066' -> '::1'."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.index("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class WebAccess:
    """Who may use the web endpoints: an allowed Host (and Origin, if sent) for every request,
    and the bearer token for the data endpoints. Decisions are pure: ``refusal`` returns
    (status, message) or None."""

    def __init__(self, token: SecretStr | None, allowed_hosts: str = "", bind_host: str = "127.0.0.1") -> None:
        # No token configured (a worker built without a Runtime, as the bench does): a random one
        # nobody knows, so the data endpoints are closed rather than open.
        self._token = (token.get_secret_value() if token else secrets.token_urlsafe(32)).encode()
        names = {host_name(h) for h in allowed_hosts.split(",") if h.strip()}
        self.any_host = "*" in names
        self.hosts = frozenset(LOOPBACK_HOSTS | (names - {"*"}) |
                               ({host_name(bind_host)} if bind_host not in ANY_ADDRESS else set()))

    def host_refusal(self, host: str | None, origin: str | None) -> str | None:
        if self.any_host:
            return None
        name = host_name(host or "")
        if name not in self.hosts:
            return (f"Host {name or '(none)'!r} is not allowed here; open the page by one of "
                    f"{', '.join(sorted(self.hosts))}, or add the name to GMV_WEB_ALLOWED_HOSTS")
        if origin and origin != "null" and host_name(urlsplit(origin).netloc) not in self.hosts:
            return f"Origin {origin!r} is not allowed here (add its host to GMV_WEB_ALLOWED_HOSTS)"
        return None

    def token_refusal(self, authorization: str | None) -> str | None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            return None
        return ("a bearer token is needed (Authorization: Bearer <token>): the dashboard link printed at start "
                "carries it, `gmv sql` reads it from the data dir, and GMV_WEB_TOKEN sets it")

    def refusal(self, request: Request, needs_token: bool) -> tuple[int, str] | None:
        why = self.host_refusal(request.headers.get("Host"), request.headers.get("Origin"))
        if why:
            return 403, why
        if needs_token and (why := self.token_refusal(request.headers.get("Authorization"))):
            return 401, why
        return None


# How often a running query checks that its client is still there: a client that went away (Ctrl-C,
# its time-out, a closed connection) has its query cancelled in the engine within this and a KILL.
CLIENT_CHECK_S = 0.2


async def run_while_connected(request: Request, pool: ReadonlyClients, query: str, fmt: str,
                              parameters: dict) -> bytes:
    """Run ``query`` on ``pool`` in a thread; while it runs, a client that hangs up (or this
    handler being cancelled) cancels it in the engine: the embedded engine has no HTTP session
    that would notice by itself. A query still waiting for a place is cancelled as it starts."""
    tag = uuid.uuid4().hex
    job = asyncio.ensure_future(asyncio.to_thread(pool.run, query, fmt, parameters, tag))
    try:
        while not job.done():
            await asyncio.wait({job}, timeout=CLIENT_CHECK_S)
            transport = request.transport
            if not job.done() and (transport is None or transport.is_closing()):
                await asyncio.to_thread(pool.cancel, tag)
        return job.result()
    except asyncio.CancelledError:
        await asyncio.shield(asyncio.to_thread(pool.cancel, tag))
        raise


def register_views(app: faust.App, web: WebSettings, database: str, status: StatusSource,
                   readers: Readers | None) -> None:
    """The views of one worker: its status (``status``), and its read-only SQL (``readers``, None:
    this worker serves no SQL) for ``gmv sql`` (the ad-hoc pool) and the dashboard (its own)."""
    access = WebAccess(web.token, web.allowed_hosts, web.host)

    def guarded(needs_token: bool) -> Callable[[Handler], Handler]:
        """Wrap a view method: refused requests get 403 or 401 with the reason as JSON."""
        def wrap(method: Handler) -> Handler:
            async def checked(self: View, request: Request) -> Response:
                refused = access.refusal(request, needs_token)
                if refused is not None:
                    status, why = refused
                    headers = {"WWW-Authenticate": 'Bearer realm="gmv"'} if status == 401 else None
                    return self.json({"error": why}, status=status, headers=headers)
                return await method(self, request)
            return checked
        return wrap

    @app.page("/gmv/stats/")
    class Stats(View):
        @guarded(needs_token=False)
        async def get(self, request: Request) -> Response:
            return self.json(status().as_json())

    @app.page("/gmv/sql/")
    class Sql(View):
        @guarded(needs_token=True)
        async def post(self, request: Request) -> Response:
            if readers is None:
                return self.json({"error": "this worker does not serve SQL"}, status=404)
            try:
                body = json.loads(await request.read())
                query, fmt = str(body["query"]), str(body.get("format", "tsv"))
                parameters = dict(body.get("parameters") or {})
            except (ValueError, KeyError, TypeError):
                return self.json({"error": 'POST a JSON body {"query": "SELECT ...", "format": "tsv"}'}, status=400)
            try:
                out = as_requested(fmt, await run_while_connected(request, readers.adhoc, query, engine_format(fmt),
                                                                  parameters))
            except SqlBusy as e:
                return self.json({"error": str(e)}, status=503, headers={"Retry-After": "1"})
            except Exception as e:  # the query's own error, e.g. READONLY: shown to the user as is
                return self.json({"error": str(e)}, status=400)
            return self.bytes(out, content_type="text/plain")

    @app.page("/dashboard/")
    class Dashboard(View):
        @guarded(needs_token=False)
        async def get(self, request: Request) -> Response:
            return self.bytes((STATIC / "index.html").read_bytes(), content_type=STATIC_TYPES["index.html"])

    for name in STATIC_TYPES:
        if name == "index.html":
            continue

        def static_view(filename: str) -> type[View]:
            class Static(View):
                @guarded(needs_token=False)
                async def get(self, request: Request) -> Response:
                    return self.bytes((STATIC / filename).read_bytes(), content_type=STATIC_TYPES[filename])

            Static.__name__ = f"Static_{filename.replace('.', '_')}"
            return Static

        app.page(f"/dashboard/static/{name}")(static_view(name))

    @app.page("/gmv/dashboard/data/")
    class DashboardData(View):
        @guarded(needs_token=True)
        async def get(self, request: Request) -> Response:
            from gmv.dashboards.queries import dashboard_data, json_rows

            if readers is None:
                return self.json({"error": "this worker does not serve SQL"}, status=404)
            runner = readers.dashboard.run
            model = request.query.get("model", "last_touch")

            def run(query: str, params: dict) -> list[dict]:
                return json_rows(runner(query, "jsonl", params))

            try:
                # markov credits are restated by the slow refresh: its panels end where that got to
                st = status()
                watermark = st.scored_up_to_ms if model == MARKOV else st.rolled_up_to_ms
                data = await asyncio.to_thread(dashboard_data, run, database, model, watermark)
            except ValueError as e:
                return self.json({"error": str(e)}, status=400)
            except Exception as e:  # ClickHouse busy or down: the page shows it and retries
                log.warning("dashboard query failed: %s", e)
                return self.json({"error": f"ClickHouse query failed: {str(e).splitlines()[0]}"}, status=503)
            return self.json(data)
