"""What a person's SQL may be, decided before any engine sees it (sinks/sql_policy.py), and the one
line a tripped limit becomes (sinks/query_limits.py)."""

from __future__ import annotations

import os

import pytest

from gmv.sinks.query_limits import QueryLimits
from gmv.sinks.sql_policy import SqlRefused, one_statement, read_statement


@pytest.mark.parametrize("query", [
    "SELECT 1", "select 1;", "  WITH x AS (SELECT 1) SELECT * FROM x", "SHOW TABLES FROM gmv", "DESCRIBE gmv.events",
    "DESC gmv.events", "EXPLAIN SELECT 1", "EXISTS TABLE gmv.events", "(SELECT 1) UNION ALL (SELECT 2)",
    "-- what sold\nSELECT 1", "/* note */ SELECT 1",
    "SELECT name FROM system.settings WHERE name = 'max_memory_usage'",  # a table named settings, after a dot
    "SELECT `settings`, 'kill' FROM (SELECT 1 AS `settings`)",  # quoted words are data
    "SELECT URLHash('https://shop.example/x'), fileSize", "SELECT 'file(1)' AS file",
])
def test_reads_pass_as_they_are_written(query):
    assert read_statement(query) == one_statement(query)


@pytest.mark.parametrize(("query", "said"), [
    ("KILL QUERY WHERE 1", "KILL is not a read"),
    ("kill query where query_id = 'x'", "KILL is not a read"),
    ("SYSTEM STOP MERGES", "SYSTEM is not a read"),
    ("SET max_memory_usage = 0", "SET is not a read"),
    ("INSERT INTO gmv.dim_accounts VALUES ('x')", "INSERT is not a read"),
    ("OPTIMIZE TABLE gmv.events FINAL", "OPTIMIZE is not a read"),
    ("DROP TABLE gmv.events", "DROP is not a read"),
    ("SELECT 1 SETTINGS max_execution_time = 3600", "SETTINGS clause is not taken from a query"),
    ("SELECT 1 settings max_memory_usage=0", "SETTINGS clause is not taken from a query"),
    ("SELECT * FROM gmv.events INTO OUTFILE '/tmp/x'", "INTO OUTFILE is refused"),
    ("SELECT file('/etc/passwd')", "file() reaches outside the database"),
    ("SELECT * FROM url('http://127.0.0.1/', 'CSV', 'a String')", "url() reaches outside"),
    ("SELECT * FROM s3('https://b/k', 'CSV')", "s3() reaches outside"),
    ("SELECT * FROM remote('127.0.0.1', system.one)", "remote() reaches outside"),
    ("SELECT * FROM executable('x.sh', 'TSV', 'a String')", "executable() reaches outside"),
    ("SELECT * FROM MySQL('h:3306', 'db', 't', 'u', 'p')", "MySQL() reaches outside"),
    ("SELECT * FROM file ('/etc/passwd', 'LineAsString')", "file() reaches outside"),
    ("SELECT 1; SELECT 2", "one statement per request"),
    ("  ;  ", "the query is empty"),
])
def test_anything_but_one_read_is_refused_with_a_line_that_says_what_is_allowed(query, said):
    with pytest.raises(SqlRefused) as refused:
        read_statement(query)
    assert said in str(refused.value) and "\n" not in str(refused.value)


LIMITS = QueryLimits(30, 2048, 1_000_000, 256, {"max_memory_mb": "--sql-max-memory-mb"})


@pytest.mark.parametrize(("error", "said"), [
    ("Code: 159. DB::Exception: Timeout exceeded: elapsed 30000.5 ms, maximum: 30000 ms. (TIMEOUT_EXCEEDED)",
     "time limit of 30 s (GMV_SQL_MAX_EXECUTION_S)"),
    ("Code: 241. DB::Exception: Query memory limit exceeded: would use 2.10 GiB. (MEMORY_LIMIT_EXCEEDED)",
     "memory limit of 2,048 MiB (--sql-max-memory-mb)"),
    ("Code: 396. DB::Exception: Limit for result exceeded, max rows: 1.00 million, current rows: 1.05 million. "
     "(TOO_MANY_ROWS_OR_BYTES)", "cap of 1,000,000 rows (GMV_SQL_MAX_RESULT_ROWS); nothing was printed: add LIMIT"),
    ("Code: 396. DB::Exception: Limit for result exceeded, max bytes: 256.00 MiB, current bytes: 300.00 MiB. "
     "(TOO_MANY_ROWS_OR_BYTES)", "cap of 256 MiB (GMV_SQL_MAX_RESULT_MB)"),
    ("Code: 394. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)", "its client went away"),
])
def test_a_tripped_limit_is_one_line_naming_the_limit_its_value_and_its_setting(error, said):
    line = LIMITS.explain(error)
    assert line is not None and said in line and "\n" not in line


def test_an_error_that_is_no_limit_is_left_to_clickhouses_words():
    assert LIMITS.explain("Code: 62. DB::Exception: Syntax error: failed at position 8. (SYNTAX_ERROR)") is None


def test_the_session_settings_raise_on_overflow_rather_than_truncate():
    settings = LIMITS.clickhouse_settings()
    assert settings["result_overflow_mode"] == "throw" and settings["timeout_overflow_mode"] == "throw"
    assert settings["max_memory_usage"] == 2048 * 1024 * 1024 and settings["max_execution_time"] == 30


def test_ad_hoc_reads_take_half_the_cores_at_the_lowest_priority_and_dashboard_reads_do_not():
    from gmv.streams.settings import Settings
    s = Settings()
    adhoc, dashboard = s.adhoc_limits.clickhouse_settings(), s.dashboard_limits.clickhouse_settings()
    assert adhoc["os_thread_priority"] == 19 and 1 <= adhoc["max_threads"] <= max(1, (os.cpu_count() or 2) // 2)
    assert "os_thread_priority" not in dashboard and "max_threads" not in dashboard
    assert Settings(sql_max_threads=3).adhoc_limits.clickhouse_settings()["max_threads"] == 3


def test_readers_whose_limits_together_could_crowd_out_the_pipeline_are_warned_about_at_start(capsys):
    from gmv.streams.settings import Settings
    from gmv.tools.runtime import _warn_if_readers_may_crowd_the_pipeline
    if os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >= 12 << 30:  # such as the 24 GiB ones here
        _warn_if_readers_may_crowd_the_pipeline(Settings())
        assert capsys.readouterr().err == ""  # the defaults (6 GiB in all) leave the pipeline its room
    _warn_if_readers_may_crowd_the_pipeline(Settings(sql_max_concurrent=8, sql_max_memory_mb=1 << 20))
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and "GMV_SQL_MAX_CONCURRENT x GMV_SQL_MAX_MEMORY_MB" in said and "lower them" in said
