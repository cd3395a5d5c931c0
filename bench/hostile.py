"""``python -m bench.hostile --count 10000``: hostile input (``gmv.tools.hostile``) through ``gmv run``.

Checks that every line is accounted for (accepted + duplicates + dead-lettered =
received), that every valid event was accepted, and that the run did not crash.
One JSON line of figures. The test suite runs the same check on a smaller count.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gmv.tools.hostile import write


def main() -> int:
    import subprocess
    import sys
    import tempfile
    import time

    ap = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=10_000)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gmv-hostile-"))
    expected = write(tmp / "hostile.jsonl", a.count)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gmv.tools.cli", "run", "--events", str(tmp / "hostile.jsonl"),
                           "--json", "--quiet", "--data-dir", str(tmp / "data")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    at = proc.stdout.rfind('{"lines"')
    counts = json.loads(proc.stdout[at:].splitlines()[0]) if at >= 0 else {}
    ok = (proc.returncode == 0 and counts.get("accepted") == expected["valid"]
          and counts.get("dead_lettered") == expected["hostile"] and counts.get("duplicates") == 0
          and counts.get("received") == expected["valid"] + expected["hostile"])
    print(json.dumps({"figure": "hostile_input", **expected, "exit": proc.returncode,
                      **{k: counts.get(k) for k in ("received", "accepted", "duplicates", "dead_lettered")},
                      "crashes": 0 if proc.returncode in (0, 3) else 1, "all_accounted": ok,
                      "seconds": round(time.monotonic() - t0, 1)}, ensure_ascii=False))
    if not ok:
        print(proc.stderr[-3000:], file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
