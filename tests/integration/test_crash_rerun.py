"""``gmv run`` killed with SIGKILL mid-run, then run again: every credit of every model, the markov
model, every trust score and every customer-service turn equal those of a run that was never
killed; a plain replay after that changes none of them either.

One input covers all of it: a 20,000-event sample with bad and duplicate messages, the §3
attribution scenarios (orders, refunds, markov journeys) and the §7 trust scenario (reviews,
quality refunds, conversations); their users, shops and ids do not overlap.
"""

from __future__ import annotations

import json

import pytest

from gmv.tools.sample import write_sample
from tests.integration.conftest import (
    fresh_env,
    gmv_batch,
    own_engine,
    parse_run_json,
    run_counts,
    sql_rows,
)
from tests.integration.test_attribution_scenarios import MARKOV_SNAPSHOT, SNAPSHOT, scenario_events
from tests.integration.test_trust_scores import EXPECTED, SCORES, TURNS, TURNS_SQL, scenario
from tests.support.killing import kill_gmv_run_mid_way

pytestmark = pytest.mark.integration
SNAPSHOTS = {"credits": SNAPSHOT, "markov": MARKOV_SNAPSHOT, "scores": SCORES, "turns": TURNS_SQL}


def _queries(db: str) -> list[tuple[str, ...]]:
    return [("sql", q.format(db=db), "--format", "json") for q in SNAPSHOTS.values()]


def _snapshots(done: list) -> dict[str, list[dict]]:
    return {name: sql_rows(d.stdout) for name, d in zip(SNAPSHOTS, done, strict=True)}


def test_killing_gmv_run_mid_way_then_rerunning_changes_no_credit_model_score_or_turn(backend, tmp_path):
    path = tmp_path / "events.jsonl"
    write_sample(path, events=20_000, bad_per_kind=1, duplicates=30)
    with path.open("a") as fh:
        fh.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in [*scenario_events(), *scenario()]))

    clean = fresh_env(backend)
    run_counts(clean, path)
    expected = _snapshots(gmv_batch(clean, *_queries(clean["GMV_CLICKHOUSE_DATABASE"])))
    assert {r["model"] for r in expected["credits"]} >= {"markov", "linear"} and len(expected["markov"]) > 8
    assert expected["scores"] and expected["turns"]

    env = own_engine(fresh_env(backend), tmp_path / "killed")  # the killed process opens its engine itself
    kill_gmv_run_mid_way(env, path)
    run = ("run", "--events", str(path), "--json", "--quiet")
    queries = _queries(env["GMV_CLICKHOUSE_DATABASE"])
    # the rerun, what it stored, then a plain replay of the whole file and what is stored after it
    done = gmv_batch(env, run, *queries, run, *queries)
    rerun, after_rerun, after_replay = done[0], done[1:len(queries) + 1], done[len(queries) + 2:]
    counts = parse_run_json(rerun.stdout)
    assert counts["received"] == counts["accepted"] + counts["duplicates"] + counts["dead_lettered"]
    assert _snapshots(after_rerun) == expected
    assert _snapshots(after_replay) == expected
    # what both equal is right, not only alike: the hand-worked scores and turns (the sample's shops
    # and SKUs have other names)
    got = {(r["day"], r["subject_kind"], r["subject_id"]): r["score"] for r in expected["scores"]}
    for (day, kind, subject), value in EXPECTED.items():
        assert got[(day.isoformat(), kind, subject)] == pytest.approx(value, abs=1e-9)
    assert [tuple(r.values()) for r in expected["turns"]] == TURNS
