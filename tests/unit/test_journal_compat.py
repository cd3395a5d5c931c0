"""The changelog format does not drift: a journal written by the code before the partition state was
split by domain loads into today's state identically and re-emits the same rows, and today's code,
fed the same story, writes the same journal bytes and the same rows, dead letters and counters
(``journal_story.py`` tells the story and how the fixture was captured)."""

from __future__ import annotations

import gzip
import json
from datetime import datetime

import pytest

from tests.unit.journal_story import FIXTURE, PARTITIONS, nonce_free, reload, run_story, story


@pytest.fixture(scope="module")
def fixture() -> dict:
    return json.loads(gzip.decompress(FIXTURE.read_bytes()))


def _journal(doc: dict) -> list[tuple[str, bytes | None]]:
    return [(k, None if v is None else v.encode()) for k, v in doc["journal"]]


def test_a_journal_written_before_the_split_rebuilds_the_same_state_and_re_emits_the_same_rows(fixture):
    rebuilt = reload(_journal(fixture), datetime.fromisoformat(fixture["reloaded_at"]))
    for p in map(str, range(PARTITIONS)):
        want, got = fixture["reloaded"][p], json.loads(json.dumps(rebuilt[p]))
        for name in want["state"]:
            assert got["state"][name] == want["state"][name], (p, name)
        assert (got["rows"], got["dead_letters"]) == (want["rows"], want["dead_letters"]), p
        assert got["reemitted"] == want["reemitted"], p


def test_the_same_story_writes_the_same_journal_bytes_rows_dead_letters_and_counters(fixture):
    journal, digests = run_story(story())
    want_nonces: dict[str, str] = {}
    got_nonces: dict[str, str] = {}

    def marks_free(value: bytes | None, nonces: dict[str, str]) -> bytes | None:
        if value is None or not value.startswith(b'{"k":"mark"'):
            return value
        doc = json.loads(value)
        doc["n"] = nonces.setdefault(doc["n"], f"w{len(nonces)}")
        return json.dumps(doc).encode()

    want = [(nonce_free(k, want_nonces), marks_free(v, want_nonces)) for k, v in _journal(fixture)]
    got = [(nonce_free(k, got_nonces), marks_free(v, got_nonces)) for k, v in journal]
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, i
    assert digests == fixture["digests"]
