"""``python -m gmv.tools.config_docs > docs/configuration.md``: the settings table, from the settings.

Every row comes from a field of ``gmv.streams.settings.Settings`` (its variable, the flag that sets
it where there is one, its default and its description); a unit test fails when the committed file
and this output differ, so the docs say what the code does.
"""

from __future__ import annotations

import sys

from gmv.streams.settings import Settings
from gmv.tools.flags import FLAGS, show_default

HEADER = """# Configuration

Every setting is an environment variable with the `GMV_` prefix; the ones with a flag can also be
given on the command line of the subcommands that use them (`gmv <command> --help` lists those).
A flag wins over its variable. Durations take `1500ms`, `5s`, `30m`, `24h`, `7d` or plain seconds.
Secrets (`SecretStr`) are never printed or logged.

Generated from the settings' own descriptions by `python -m gmv.tools.config_docs > docs/configuration.md`;
do not edit by hand.

| variable | flag | default | meaning |
|---|---|---|---|
"""


def table() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        flag = f"`{FLAGS[name].flag}`" if name in FLAGS else ""
        description = (field.description or "").replace("|", "\\|")
        if "SecretStr" in str(field.annotation):
            description += " (secret)"
        rows.append(f"| `GMV_{name.upper()}` | {flag} | `{show_default(field.default)}` | {description} |")
    return HEADER + "\n".join(rows) + "\n"


def main() -> int:
    sys.stdout.write(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
