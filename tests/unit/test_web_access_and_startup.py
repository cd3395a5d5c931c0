"""Who may use the worker's web endpoints (``WebAccess``), and how start-up waits for its
dependencies (``wait_for``): pure decisions, checked without a server."""

from __future__ import annotations

import io

import pytest
from pydantic import SecretStr

from gmv.sinks.exceptions import SinkRejected, SinkUnavailable
from gmv.streams.settings import Settings
from gmv.streams.web import WebAccess, host_name
from gmv.tools.startup import DependencyUnavailable, clickhouse_retriable, wait_for

TOKEN = SecretStr("s3cret-token")


@pytest.mark.parametrize(("header", "name"), [
    ("127.0.0.1:6066", "127.0.0.1"), ("LocalHost", "localhost"), ("[::1]:6066", "::1"), ("::1", "::1"),
    ("worker:6066", "worker"), ("", "")])
def test_host_name_drops_the_port_and_case(header, name):
    assert host_name(header) == name


def test_loopback_hosts_are_allowed_and_any_other_is_refused():
    access = WebAccess(TOKEN)
    for host in ("127.0.0.1:6066", "localhost:6066", "[::1]:6066"):
        assert access.host_refusal(host, None) is None
    why = access.host_refusal("rebind.evil.example:6066", None)
    assert why and "rebind.evil.example" in why and "GMV_WEB_ALLOWED_HOSTS" in why
    assert access.host_refusal(None, None)


def test_a_foreign_origin_is_refused_even_with_an_allowed_host():
    access = WebAccess(TOKEN)
    assert access.host_refusal("127.0.0.1:6066", "http://127.0.0.1:6066") is None
    assert access.host_refusal("127.0.0.1:6066", "http://rebind.evil.example")


def test_configured_hosts_and_the_bind_address_are_allowed_and_star_allows_any():
    access = WebAccess(TOKEN, "gmv.internal, Dash.Example.com", bind_host="10.0.0.5")
    assert access.host_refusal("dash.example.com", None) is None
    assert access.host_refusal("10.0.0.5:6066", None) is None
    assert access.host_refusal("other.example", None)
    assert WebAccess(TOKEN, bind_host="0.0.0.0").host_refusal("0.0.0.0", None)  # the any-address is no name
    assert WebAccess(TOKEN, "*").host_refusal("anything.example", "http://else.example") is None


def test_the_token_must_be_the_bearer_token_exactly():
    access = WebAccess(TOKEN)
    assert access.token_refusal("Bearer s3cret-token") is None
    assert access.token_refusal("bearer s3cret-token") is None
    for wrong in (None, "", "Bearer", "Bearer s3cret-toke", "Basic s3cret-token", "Bearer s3cret-token2"):
        assert access.token_refusal(wrong), wrong


def test_without_a_configured_token_nobody_gets_in():
    access = WebAccess(None)
    assert access.token_refusal("Bearer ") and access.token_refusal("Bearer None")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def _settings(**kw: object) -> Settings:
    return Settings(startup_wait_s=10, startup_backoff_max_s=4, **kw)  # type: ignore[arg-type]


def test_start_up_retries_with_backoff_printing_one_line_per_attempt_naming_setting_and_address():
    clock, out, calls = FakeClock(), io.StringIO(), []

    def attempt() -> str:
        calls.append(clock.now)
        if len(calls) < 4:
            raise SinkUnavailable("cannot reach ClickHouse at http://ch:8123: [Errno 111] Connection refused; check X")
        return "client"

    got = wait_for("ClickHouse", "GMV_CLICKHOUSE_DSN", "http://ch:8123", attempt, _settings(),
                   clickhouse_retriable, out, clock, clock.sleep)
    assert got == "client"
    assert calls == [0.0, 0.5, 1.5, 3.5]  # 0.5 s, doubling
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert all("GMV_CLICKHOUSE_DSN" in ln and "http://ch:8123" in ln and "Connection refused" in ln for ln in lines)
    assert "; check X" not in out.getvalue()


def test_start_up_gives_up_after_the_budget_with_one_clear_error():
    clock, out = FakeClock(), io.StringIO()

    def attempt() -> None:
        raise SinkUnavailable("cannot reach ClickHouse at http://ch:8123: [Errno 111] Connection refused")

    with pytest.raises(DependencyUnavailable) as e:
        wait_for("ClickHouse", "GMV_CLICKHOUSE_DSN", "http://ch:8123", attempt, _settings(), clickhouse_retriable,
                 out, clock, clock.sleep)
    msg = str(e.value)
    assert "\n" not in msg and "GMV_CLICKHOUSE_DSN" in msg and "within 10s" in msg and "GMV_STARTUP_WAIT_S" in msg
    assert clock.now == pytest.approx(10.0)
    pauses = [float(ln.split("next in ")[1].split("s")[0]) for ln in out.getvalue().splitlines()]
    assert max(pauses) <= 4.0  # GMV_STARTUP_BACKOFF_MAX_S


def test_start_up_does_not_retry_a_refusal():
    clock, out, calls = FakeClock(), io.StringIO(), []

    def attempt() -> None:
        calls.append(1)
        raise SinkRejected("ClickHouse at http://ch:8123 refused the connection: Authentication failed")

    with pytest.raises(SinkRejected):
        wait_for("ClickHouse", "GMV_CLICKHOUSE_DSN", "http://ch:8123", attempt, _settings(), clickhouse_retriable,
                 out, clock, clock.sleep)
    assert calls == [1] and out.getvalue() == ""


def test_processes_starting_at_once_on_one_data_dir_agree_on_one_generated_token(tmp_path):
    """Two workers started together once read the other's token file while it was still empty."""
    import threading

    from gmv.tools.runtime import WEB_TOKEN_FILE, web_token

    settings = Settings(_env_file=None, data_dir=str(tmp_path))
    start, tokens = threading.Barrier(8), []

    def generate() -> None:
        start.wait()
        tokens.append(web_token(settings).get_secret_value())

    threads = [threading.Thread(target=generate) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tokens) == 8 and len(set(tokens)) == 1 and len(tokens[0]) >= 40
    token_file = tmp_path / WEB_TOKEN_FILE
    assert token_file.read_text().strip() == tokens[0] and token_file.stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == [WEB_TOKEN_FILE]  # no temporary file left behind
