"""An alert (SPEC §8), its row in ``gmv.alerts``, and its shapes for Alertmanager and webhooks.

Identity: ``alert_id`` = the first 16 hex digits of SHA-256 over ``rule``, ``subject_kind``,
``subject_id`` and the window it fired in (start and end, epoch ms), joined by ``|``. A
business rule's window is in event time, so a replay fires the same ids; a row written
again (a retry, a restart) collapses in the ReplacingMergeTree behind the ``alerts`` view,
where ``version`` makes a resolved row win over a firing one.

On ``gmv.alerts`` (the topic), each state change is one JSON message, key ``alert_id``:
the alert's fields (times ISO-8601 UTC, ``resolved_at`` null while firing). A consumer keeps
the latest message per key; a restart may send one again (at-least-once, like every topic).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from gmv.schemas.catalogue import ALERTS
from gmv.schemas.times import SHANGHAI

_RESOLVED_RANK = 1 << 42  # above any epoch-ms write time (2^42 ms is the year 2109)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def alert_id(rule: str, subject_kind: str, subject_id: str, window_start: datetime, window_end: datetime) -> str:
    key = "|".join((rule, subject_kind, subject_id, str(_ms(window_start)), str(_ms(window_end))))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


AlertRow = ALERTS.row_type("AlertRow")  # one row of gmv.alerts_store, its columns as the catalogue states them


@dataclass(frozen=True)
class Evidence:
    """The query behind an alert: SQL with ``{name:Type}`` placeholders and its parameters."""

    sql: str
    params: dict[str, str] = field(default_factory=dict)
    stored: str = ""  # the command as read back from gmv.alerts
    # The flags naming the data it came from (``--data-dir``, ``--clickhouse-dsn``): run from any
    # directory or shell, the command reads the ClickHouse the alert was judged on.
    where: tuple[str, ...] = ()

    def command(self) -> str:
        """A ready-to-run ``gmv sql`` command line (values as parameters, never in the SQL)."""
        if self.stored:
            return self.stored
        args = ["gmv", "sql", " ".join(self.sql.split()), *self.where, "--format", "pretty"]
        for k, v in self.params.items():
            args += ["--param", f"{k}={v}"]
        return shlex.join(args)


@dataclass(frozen=True)
class Alert:
    rule: str
    severity: str
    subject_kind: str  # live | shop | account | pipeline
    subject_id: str
    value: float
    threshold: float
    window_start: datetime
    window_end: datetime
    clock: str  # event | wall
    fired_at: datetime
    message: str
    evidence: Evidence
    labels: tuple[tuple[str, str], ...] = ()  # extra labels for receivers, e.g. shop_id of a live
    resolved_at: datetime | None = None
    resolved_window_end: datetime | None = None

    @cached_property
    def alert_id(self) -> str:
        return alert_id(self.rule, self.subject_kind, self.subject_id, self.window_start, self.window_end)

    @property
    def state(self) -> str:
        return "firing" if self.resolved_at is None else "resolved"

    def resolved(self, at: datetime, window_end: datetime) -> Alert:
        return replace(self, resolved_at=at, resolved_window_end=window_end)

    def row(self, written_at: datetime) -> tuple:
        version = _ms(written_at) + (_RESOLVED_RANK if self.resolved_at is not None else 0)
        return AlertRow(alert_id=self.alert_id, rule=self.rule, severity=self.severity, subject_kind=self.subject_kind,
                        subject_id=self.subject_id, state=self.state, value=float(self.value),
                        threshold=float(self.threshold), window_start=self.window_start, window_end=self.window_end,
                        clock=self.clock, fired_at=self.fired_at, resolved_at=self.resolved_at,
                        resolved_window_end=self.resolved_window_end, message=self.message,
                        query=self.evidence.command(), version=version)

    def to_json(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "rule": self.rule, "severity": self.severity,
                "subject_kind": self.subject_kind, "subject_id": self.subject_id, "state": self.state,
                "value": self.value, "threshold": self.threshold, "window_start": _iso(self.window_start),
                "window_end": _iso(self.window_end), "clock": self.clock, "fired_at": _iso(self.fired_at),
                "resolved_at": _iso(self.resolved_at), "resolved_window_end": _iso(self.resolved_window_end),
                "message": self.message, "query": self.evidence.command(), "labels": dict(self.labels)}

    def topic_message(self) -> tuple[bytes, bytes]:
        return self.alert_id.encode(), json.dumps(self.to_json(), ensure_ascii=False).encode()

    # -- receivers ---------------------------------------------------------------------------
    def labels_for_receivers(self) -> dict[str, str]:
        return {"alertname": self.rule, "severity": self.severity, "subject_kind": self.subject_kind,
                "subject_id": self.subject_id, "alert_id": self.alert_id, "service": "gmv-pipeline",
                **dict(self.labels)}

    def annotations(self) -> dict[str, str]:
        return {"summary": self.message, "value": f"{self.value:g}", "threshold": f"{self.threshold:g}",
                "window_start": _iso(self.window_start) or "", "window_end": _iso(self.window_end) or "",
                "clock": self.clock, "query": self.evidence.command()}

    def alertmanager(self, now: datetime, firing_ttl: timedelta, generator_url: str) -> dict[str, Any]:
        """One element of Alertmanager's ``POST /api/v2/alerts``: a firing alert ends ``firing_ttl``
        from now unless re-sent (so a worker that dies stops paging); a resolved one ends when resolved."""
        ends = self.resolved_at if self.resolved_at is not None else now + firing_ttl
        return {"labels": self.labels_for_receivers(), "annotations": self.annotations(),
                "startsAt": _iso(self.fired_at), "endsAt": _iso(ends), "generatorURL": generator_url}

    def webhook_alert(self, generator_url: str) -> dict[str, Any]:
        """One element of ``alerts`` in Alertmanager's webhook payload (version 4)."""
        return {"status": self.state, "labels": self.labels_for_receivers(), "annotations": self.annotations(),
                "startsAt": _iso(self.fired_at),
                "endsAt": _iso(self.resolved_at) if self.resolved_at else "0001-01-01T00:00:00Z",
                "generatorURL": generator_url, "fingerprint": self.alert_id}


def webhook_payload(alerts: list[Alert], receiver: str, external_url: str) -> dict[str, Any]:
    """Alertmanager's webhook JSON (version 4) for alerts of one rule and one status."""
    first = alerts[0]
    labels = [a.labels_for_receivers() for a in alerts]
    common = {k: v for k, v in labels[0].items() if all(other.get(k) == v for other in labels)}
    return {"version": "4", "groupKey": f'{{}}:{{alertname="{first.rule}"}}', "truncatedAlerts": 0,
            "status": first.state, "receiver": receiver, "groupLabels": {"alertname": first.rule},
            "commonLabels": common, "commonAnnotations": {}, "externalURL": external_url,
            "alerts": [a.webhook_alert(external_url) for a in alerts]}


def as_utc(t: datetime) -> datetime:
    """A time read back from ClickHouse (naive means UTC there) as an aware UTC datetime."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def shanghai_minute(t: datetime) -> str:
    return t.astimezone(SHANGHAI).strftime("%m-%d %H:%M")


def _ms(t: datetime) -> int:
    """Epoch milliseconds, sub-millisecond dropped as DateTime64(3) stores it: an id recomputed from
    a stored alert must match the one it was fired with."""
    return (t - _EPOCH) // _ONE_MS


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
