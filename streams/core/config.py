"""What the pure core needs to know of the settings, as plain numbers (no environment, no I/O).

``gmv.streams.settings.Settings.pipeline_config()`` builds it; tests build it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gmv.schemas.events import TOPIC_NAMES


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    partitions: int = 4
    source_topics: dict[str, str] = field(default_factory=lambda: {
        f"gmv.{name}": event_type for event_type, name in TOPIC_NAMES.items()})  # topic -> event_type
    rekeyed_topic: str = "gmv.rekeyed"  # mis-keyed events forwarded to their user's partition
    unrouted_topic: str = "gmv.unrouted"  # lines `gmv run` could not route: dead-lettered here
    engaged_ms: int = 3000
    lookback_ms: int = 7 * 86_400_000
    half_life_ms: int = 86_400_000
    attribution_delay_ms: int = 5000
    dedup_horizon_ms: int = 86_400_000
    weights_retention_ms: int = 90 * 86_400_000
    orphan_refund_hold_ms: int = 3_600_000
    orphan_review_hold_ms: int = 3_600_000
    cs_unanswered_after_ms: int = 3_600_000
    max_future_skew_ms: int = 86_400_000
    max_message_bytes: int = 1024 * 1024
    max_batch_events: int = 1000

    @property
    def state_topics(self) -> tuple[str, ...]:
        """Topics whose events feed partition state (the sources, and forwards to their partition)."""
        return (*self.source_topics, self.rekeyed_topic)
