"""Command-line flags for settings, generated from the settings themselves.

Every setting is a ``GMV_*`` environment variable (``gmv.streams.settings.Settings``); some are also
flags. Each subcommand offers the flags of the setting groups it uses, and only those (``gmv sql``
reads ClickHouse: it has no ``--half-life``). A flag's help is its setting's description with its
variable and default, and ``docs/configuration.md`` is generated from the same descriptions
(``python -m gmv.tools.config_docs``), so the help, the docs and the code cannot drift apart.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from gmv.streams.settings import Settings, parse_duration


def duration(text: str) -> timedelta:
    """'5s', '7d', '24h', '1500ms' or plain seconds."""
    parsed = parse_duration(text)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 5s, 30m, 24h, 7d)")
    return parsed


@dataclass(frozen=True)
class Flag:
    setting: str  # the Settings field
    flag: str
    type: Callable[[str], Any]
    metavar: str


FLAGS: dict[str, Flag] = {f.setting: f for f in (
    Flag("data_dir", "--data-dir", Path, "DIR"),
    Flag("clickhouse_dsn", "--clickhouse-dsn", str, "DSN"),
    Flag("clickhouse_database", "--database", str, "NAME"),
    Flag("kafka_bootstrap_servers", "--kafka", str, "HOST:PORT[,...]"),
    Flag("partitions", "--partitions", int, "N"),
    Flag("engaged_ms", "--engaged-ms", int, "MS"),
    Flag("lookback", "--lookback", duration, "DURATION"),
    Flag("half_life", "--half-life", duration, "DURATION"),
    Flag("attribution_delay", "--attribution-delay", duration, "DURATION"),
    Flag("alert_rules", "--alert-rules", Path, "FILE"),
    Flag("web_port", "--web-port", int, "PORT"),
    Flag("log_level", "--log-level", str, "LEVEL"),
)}

# What each group of flags is for; a subcommand takes the groups it uses.
GROUPS: dict[str, tuple[str, ...]] = {
    "clickhouse": ("data_dir", "clickhouse_dsn", "clickhouse_database"),
    "kafka": ("kafka_bootstrap_servers", "partitions"),
    "attribution": ("engaged_ms", "lookback", "half_life", "attribution_delay"),
    "alerts": ("alert_rules",),
    "web": ("web_port",),
    "logging": ("log_level",),
}
PIPELINE = ("clickhouse", "kafka", "attribution", "alerts", "logging")


def show_default(value: Any) -> str:
    """A default as a user would type it."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            if seconds >= size * (2 if unit == "d" else 1) and seconds % size == 0:  # 24h, not 1d
                return f"{int(seconds // size)}{unit}"
        return f"{int(seconds * 1000)}ms"
    if value is None:
        return "unset"
    if isinstance(value, Path):
        return str(value)
    return str(value)


def help_for(setting: str) -> str:
    field = Settings.model_fields[setting]
    return f"{field.description} (GMV_{setting.upper()}; default {show_default(field.default)})"


def add_setting_flags(parser: argparse.ArgumentParser, groups: Iterable[str]) -> None:
    """The flags of these groups, under one heading; their values land in ``args.<setting>``."""
    names = [name for group in groups for name in GROUPS[group]]
    if not names:
        return
    g = parser.add_argument_group("settings (a flag overrides its GMV_* environment variable)")
    for name in names:
        f = FLAGS[name]
        g.add_argument(f.flag, dest=name, type=f.type, metavar=f.metavar, default=None, help=help_for(name))


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings with the flags the user gave on top; each remembers its flag."""
    given = {name: getattr(args, name) for name in FLAGS if getattr(args, name, None) is not None}
    return Settings(**given).from_flags({name: FLAGS[name].flag for name in given})
