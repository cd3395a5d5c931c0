"""The SQL cookbook (docs/sql-cookbook.md) on the session's serving `gmv demo` data set.

Every ```sql block of the cookbook runs as written (database ``gmv``) through `gmv sql` and
returns rows; the answers marked ``<!-- truth: NAME -->`` (一店多号, 川流, 动销率) equal the
simulator's ground truth for what it sent (``expected_cookbook`` in the demo's truth file),
to the fen. `gmv load-dim` refuses a file with bad rows whole.
"""

from __future__ import annotations

import re

import pytest

from tests.integration.conftest import ROOT, gmv, sql

pytestmark = pytest.mark.integration
COOKBOOK = ROOT / "docs" / "sql-cookbook.md"
BLOCK = re.compile(r"(?:<!-- truth: (\w+) -->\n)?```sql\n(.*?)\n```", re.S)


def cookbook_queries() -> list[tuple[str, str]]:
    """(truth name or '', SQL) of every ```sql block, in order."""
    return [(m.group(1) or "", m.group(2)) for m in BLOCK.finditer(COOKBOOK.read_text(encoding="utf-8"))]


def test_the_cookbook_has_ten_questions_each_in_chinese_and_english():
    text = COOKBOOK.read_text(encoding="utf-8")
    headings = re.findall(r"^## \d+\. (.+)$", text, re.M)
    assert len(headings) == len(cookbook_queries()) >= 10
    assert all(re.search(r"[\u4e00-\u9fff]", h) for h in headings)  # the question in Chinese...
    english = re.findall(r"^\*\*([A-Za-z0-9\u4e00-\u9fff][^*]+)[.?]\*\*", text, re.M)
    assert len(english) == len(headings)  # ... and in English
    assert text.count("Sample result:") == len(headings)
    assert {name for name, _ in cookbook_queries() if name} == {"store_gmv", "chuanliu", "sell_through"}


def test_every_cookbook_query_returns_rows_on_demo_data(demo_data):
    empty = []
    for _, query in cookbook_queries():
        if not sql(demo_data["env"], query):
            empty.append(query.splitlines()[0])
    assert not empty, f"queries without rows: {empty}"


def _answer(env: dict, query: str, columns: list[str]) -> list[list]:
    return sorted([r[c] if isinstance(r[c], str) and not c.endswith(("_fen", "_skus")) else int(r[c])
                   for c in columns] for r in sql(env, query))


def test_store_chuanliu_and_sell_through_answers_equal_the_simulators_truth(demo_data):
    env, truth = demo_data["env"], demo_data["truth"]
    queries = dict(q for q in cookbook_queries() if q[0])
    assert truth["store_gmv"] and truth["chuanliu"] and truth["sell_through"]
    store = _answer(env, queries["store_gmv"],
                    ["day", "shop_id", "self_net_fen", "distributor_net_fen", "unbound_net_fen", "net_fen"])
    assert store == truth["store_gmv"]
    assert any(row[3] != 0 for row in store) and any(row[4] != 0 for row in store)  # distributors and unbound sold
    rows = sql(env, queries["chuanliu"])
    got = sorted([r["day"], r["brand_id"], int(r["self_gmv_fen"]), int(r["assisted_gmv_fen"])] for r in rows)
    assert got == sorted([d, b, gmv_, assisted] for d, b, gmv_, _, assisted, _ in truth["chuanliu"])
    assert any(assisted > 0 for *_, assisted in got)  # distributor content did assist self-broadcast sales
    net = sql(env, "SELECT day, brand_id, self_net_fen, assisted_net_fen FROM gmv.chuanliu_daily")
    assert sorted([r["day"], r["brand_id"], int(r["self_net_fen"]), int(r["assisted_net_fen"])] for r in net) == \
        sorted([d, b, n, a] for d, b, _, n, _, a in truth["chuanliu"])
    through = _answer(env, queries["sell_through"], ["day", "shop_id", "listed_skus", "sold_skus"])
    assert through == truth["sell_through"]
    assert any(listed > sold for *_, listed, sold in through)  # long-tail SKUs listed and unsold


def test_load_dim_with_bad_rows_names_each_line_and_loads_nothing(gmv_env, tmp_path):
    good = tmp_path / "accounts.csv"
    good.write_text("account_id,shop_id,brand_id,role,brand_name\nacc1,shop1,B1,self,One\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("account_id,shop_id,brand_id,role,brand_name\n"
                   "acc2,shop1,B1,distributor,One\n"  # good
                   ",shop1,B1,self,One\n"  # line 3: no account
                   "acc3,shop1,B1,boss,One\n"  # line 4: no such role
                   "acc2,shop1,B1,distributor,One\n"  # line 5: the same binding again
                   "acc4,shop1\n", encoding="utf-8")  # line 6: a short row
    gmv(gmv_env, "load-dim", "accounts", str(good))
    proc = gmv(gmv_env, "load-dim", "accounts", str(bad), check=False)
    assert proc.returncode != 0
    for line, what in ((3, "account_id"), (4, "role"), (5, "again"), (6, "role")):
        assert re.search(rf"bad\.csv:{line}: .*{what}", proc.stderr), (line, proc.stderr)
    assert f"{bad}:2:" not in proc.stderr and "nothing was loaded" in proc.stderr
    db = gmv_env["GMV_CLICKHOUSE_DATABASE"]
    assert sql(gmv_env, f"SELECT account_id FROM {db}.dim_accounts ORDER BY account_id") == [{"account_id": "acc1"}]
    skus = tmp_path / "skus.jsonl"
    skus.write_text('{"day": "2026-11-30", "shop_id": "shop1", "sku_id": "k1", "price_fen": 4990}\n'
                    '{"day": "2026-11-31", "shop_id": "shop1", "sku_id": "k2"}\n'
                    '{"day": "2026-11-30", "shop_id": "shop1", "sku_id": "k3", "price_fen": 49.9}\n'
                    'not json\n', encoding="utf-8")
    proc = gmv(gmv_env, "load-dim", "skus", str(skus), check=False)
    assert proc.returncode != 0
    for line, what in ((2, "day"), (3, "price_fen"), (4, "not JSON")):
        assert re.search(rf"skus\.jsonl:{line}: .*{what}", proc.stderr), (line, proc.stderr)
    assert int(sql(gmv_env, f"SELECT count() AS n FROM {db}.dim_skus")[0]["n"]) == 0
