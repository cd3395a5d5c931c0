"""Time helpers and the business time zone, in one place for every package.

Event times travel as epoch milliseconds (UTC) through the pipeline and as *row times* (epoch
seconds carrying exactly the milliseconds) into ClickHouse. Business days are Asia/Shanghai days:
China has kept UTC+8 all year since 1991, so a day is also plain UTC+8 arithmetic on epoch ms
(``shanghai_day_ms``), which the zone database agrees with for every instant since.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")

_DAY_MS = 86_400_000
_SHANGHAI_OFFSET_MS = 8 * 3_600_000  # Asia/Shanghai has had no DST since 1991: UTC+8 all year
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def to_ms(when: datetime) -> int:
    # Event times are whole milliseconds (the contract truncates them), so rounding the float
    # timestamp is exact and much cheaper than timedelta arithmetic on the hot path.
    return round(when.timestamp() * 1000)


def row_time(ms: int) -> float:
    """A time column of a ClickHouse JSON row: epoch seconds carrying exactly the milliseconds.

    The shortest repr of ``ms / 1000`` is the exact decimal with at most 3 fractional digits
    (two such decimals in our range never share a double), and ClickHouse parses that text
    into ``DateTime64(3)`` exactly, at a fraction of the cost of ISO-8601 text."""
    return ms / 1000


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def shanghai_day(when: datetime) -> date:
    """The Asia/Shanghai calendar day of an aware instant."""
    return when.astimezone(SHANGHAI).date()


def shanghai_midnight(day: date) -> datetime:
    """The start of an Asia/Shanghai day, in UTC."""
    return datetime.combine(day, time(), SHANGHAI).astimezone(UTC)


def shanghai_day_ms(t_ms: int) -> date:
    """The Asia/Shanghai calendar day of an epoch-ms instant (floor division: right before 1970 too)."""
    return date.fromordinal(_EPOCH_ORDINAL + (t_ms + _SHANGHAI_OFFSET_MS) // _DAY_MS)
