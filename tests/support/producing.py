"""Producing a JSONL file of valid events straight to the source topics, as an outside producer would
(kafka-python, keyed by user_id), without `gmv run`."""

from __future__ import annotations

import json
from pathlib import Path

from kafka import KafkaProducer

from gmv.schemas.events import TOPIC_NAMES


def produce_events(bootstrap: str, prefix: str, path: Path) -> int:
    """Every line (one valid event each) to ``<prefix><its topic>``; returns how many were sent."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    n = 0
    try:
        for line in path.read_bytes().splitlines():
            doc = json.loads(line)
            producer.send(f"{prefix}{TOPIC_NAMES[doc['event_type']]}", value=line, key=doc["user_id"].encode())
            n += 1
        producer.flush()
    finally:
        producer.close()
    return n
