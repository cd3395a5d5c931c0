"""Where alerts go: ``gmv.alerts`` (table and topic), Alertmanager's API v2, a plain webhook.

Each receiver has an ``Outlet``: a queue of state changes (every change, or for
Alertmanager the latest state per ``alert_id``) drained by its own task, with a timeout per attempt and exponential backoff after a
failure (``DeliveryError.retriable``; a payload a receiver rejects is dropped with an
error, since sending it again cannot help). Nothing waits for a receiver: the evaluator
only puts changes in the queues, so a receiver that is down or slow never stalls
evaluation, and ingest never waits for alerting at all. What a receiver has not taken
stays queued and goes out when it is back.

Alertmanager forgets a firing alert at its ``endsAt``, so every firing alert is re-sent
every ``resend_s`` with ``endsAt`` a few periods ahead (a worker that dies stops
paging once those pass); a resolved alert goes out once more with ``endsAt`` set to
when it resolved.

An alert that fired and resolved before Alertmanager heard of it as firing (one evaluation
judged both, as a worker catching up after an outage does; or Alertmanager was down while
it fired) would reach Alertmanager resolved only, and Alertmanager notifies nobody of an alert
it never saw firing: on-call would miss the incident. Such an alert is sent once as firing,
with ``endsAt`` ``min_firing_s`` ahead (``GMV_ALERT_MIN_FIRING_S``, 60 s by default; longer
than the route's ``group_wait``, 30 s by default): Alertmanager pages for it, then resolves
it by itself when that time passes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aiohttp

from gmv.alerts.exceptions import DeliveryError
from gmv.alerts.model import Alert, webhook_payload

log = logging.getLogger("gmv.alerts")

# Queued changes per receiver before the oldest resolved ones are dropped (a receiver down for
# days must not grow the worker without bound; firing alerts are never dropped).
MAX_QUEUED = 10_000
MAX_PER_ATTEMPT = 500  # alert changes per POST (a receiver back after a long outage gets them in parts)


class Receiver:
    """Takes a list of alert changes, or raises ``DeliveryError``."""

    name = "receiver"
    resend_s: float | None = None  # re-send firing alerts this often (Alertmanager); None = changes only
    # True: only an alert's latest state matters (Alertmanager keeps state: firing then resolved while
    # it was down is just resolved). False: every change is delivered, in order (a webhook, the topic).
    latest_only = False

    async def deliver(self, alerts: list[Alert]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class _Http(Receiver):
    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        parts = urlsplit(url)
        # What logs and errors show: a webhook's path, query or user part may carry its token.
        self.shown_url = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, body: object) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.post(self.url, json=body) as resp:
                if resp.status < 300:
                    return
                text = (await resp.text())[:300]
                retriable = resp.status >= 500 or resp.status == 429
                raise DeliveryError(f"{self.name} at {self.shown_url} answered {resp.status}: {text}", retriable)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            # aiohttp's own message names the host and port only
            raise DeliveryError(f"{self.name} at {self.shown_url} unreachable: {type(e).__name__}: {e}", True) from e

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class AlertmanagerReceiver(_Http):
    """``POST {url}/api/v2/alerts``: labels, annotations, startsAt, endsAt, generatorURL."""

    name = "Alertmanager"
    latest_only = True

    def __init__(self, base_url: str, generator_url: str, resend_s: float = 60.0, timeout_s: float = 5.0,
                 min_firing_s: float = 60.0) -> None:
        super().__init__(base_url.rstrip("/") + "/api/v2/alerts", timeout_s)
        self.generator_url = generator_url
        self.resend_s = resend_s
        self.min_firing = timedelta(seconds=min_firing_s)
        self.announced: set[str] = set()  # alert ids Alertmanager has had as firing from this process

    def payload(self, alerts: list[Alert], now: datetime) -> list[dict]:
        """Each alert as Alertmanager takes it; one it never had as firing, resolved already, goes as
        firing until ``min_firing_s`` from now (see the module's docstring)."""
        ttl = timedelta(seconds=4 * (self.resend_s or 60.0))
        out = []
        for a in alerts:
            body = a.alertmanager(now, ttl, self.generator_url)
            if a.resolved_at is not None and a.alert_id not in self.announced:
                body["endsAt"] = (now + self.min_firing).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            out.append(body)
        return out

    async def deliver(self, alerts: list[Alert]) -> None:
        await self._post(self.payload(alerts, datetime.now(UTC)))
        for a in alerts:
            if a.resolved_at is None:
                self.announced.add(a.alert_id)
            else:
                self.announced.discard(a.alert_id)


class WebhookReceiver(_Http):
    """A plain webhook in Alertmanager's webhook JSON: one POST per rule and status."""

    name = "webhook"

    def __init__(self, url: str, external_url: str, timeout_s: float = 5.0) -> None:
        super().__init__(url, timeout_s)
        self.external_url = external_url

    async def deliver(self, alerts: list[Alert]) -> None:
        groups: dict[tuple[str, str], list[Alert]] = {}
        for a in alerts:
            groups.setdefault((a.rule, a.state), []).append(a)
        for group in groups.values():
            await self._post(webhook_payload(group, "gmv", self.external_url))


class CallableReceiver(Receiver):
    """A receiver from a coroutine function: the alerts table and the alerts topic."""

    def __init__(self, name: str, send: Callable[[list[Alert]], Awaitable[None]], timeout_s: float = 10.0) -> None:
        self.name = name
        self._send = send
        self.timeout_s = timeout_s

    async def deliver(self, alerts: list[Alert]) -> None:
        try:
            await asyncio.wait_for(self._send(alerts), self.timeout_s)
        except DeliveryError:
            raise
        except Exception as e:  # the table or the broker: down or slow (retry), whatever the client raised
            raise DeliveryError(f"{self.name}: {type(e).__name__}: {e}", True) from e


class Outlet:
    """One receiver's queue, retries and re-sends."""

    def __init__(self, receiver: Receiver, max_backoff_s: float = 60.0) -> None:
        self.receiver = receiver
        self.queued: dict[str | tuple[str, str], Alert] = {}  # changes not yet delivered (see ``_key``)
        self.firing: dict[str, Alert] = {}  # re-sent while firing (receivers with resend_s)
        self.delivered = 0
        self.failures = 0
        self.last_error = ""
        self._backoff = 0.0
        self._next_try = 0.0
        self._next_resend = 0.0
        self._max_backoff = max_backoff_s
        self._wake = asyncio.Event()

    def _key(self, a: Alert) -> str | tuple[str, str]:
        return a.alert_id if self.receiver.latest_only else (a.alert_id, a.state)

    def put(self, alerts: list[Alert]) -> None:
        for a in alerts:
            self.queued[self._key(a)] = a
            if self.receiver.resend_s is not None:
                if a.resolved_at is None:
                    self.firing[a.alert_id] = a
                else:
                    self.firing.pop(a.alert_id, None)
        if len(self.queued) > MAX_QUEUED:
            for aid in [k for k, a in self.queued.items() if a.resolved_at is not None][:len(self.queued) - MAX_QUEUED]:
                del self.queued[aid]
            log.error("%s: over %d alert changes undelivered; dropped the oldest resolved ones",
                      self.receiver.name, MAX_QUEUED)
        self._wake.set()

    def _due(self, now: float) -> list[Alert]:
        if now < self._next_try:
            return []
        out = dict(self.queued)
        if self.receiver.resend_s is not None and now >= self._next_resend:
            for a in self.firing.values():
                out.setdefault(self._key(a), a)
        return list(out.values())[:MAX_PER_ATTEMPT]

    async def attempt(self) -> bool:
        """Send what is due; True when there was nothing to send or it went through."""
        now = time.monotonic()
        due = self._due(now)
        if not due:
            return True
        try:
            await self.receiver.deliver(due)
        except DeliveryError as e:
            self.failures += 1
            self.last_error = str(e)
            if not e.retriable:
                log.error("%s rejected %d alert(s), not retrying: %s", self.receiver.name, len(due), e)
                for a in due:
                    self.queued.pop(self._key(a), None)
                return False
            self._backoff = min(max(self._backoff * 2, 1.0), self._max_backoff)
            self._next_try = now + self._backoff
            log.warning("%s: %s; %d alert change(s) kept, retrying in %.0fs", self.receiver.name, e, len(due),
                        self._backoff)
            return False
        for a in due:
            if self.queued.get(self._key(a)) is a:
                del self.queued[self._key(a)]
        self.delivered += len(due)
        self._backoff = 0.0
        self._next_try = 0.0
        if self.receiver.resend_s is not None:
            self._next_resend = now + self.receiver.resend_s
        return True

    async def run(self, should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            if await self.attempt() and self.queued and time.monotonic() >= self._next_try:
                continue  # more than one attempt's worth was queued: on with the rest
            wait = 1.0 if self.queued or self.firing else 5.0
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    async def flush(self, timeout_s: float) -> bool:
        """Try until the queue is empty or the time is up (end of a bounded run)."""
        deadline = time.monotonic() + timeout_s
        self._next_try = min(self._next_try, time.monotonic())  # try at once, then back off as usual
        while self.queued and time.monotonic() < deadline:
            wait = self._next_try - time.monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, 0.5))
                continue
            await self.attempt()
        return not self.queued
