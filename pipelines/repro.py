"""``dvc repro`` for ``make pipeline`` and ``make repro``: DVC's own output as it comes, then a summary of which
stages ran, which were restored from DVC's run cache and which were up to date, with the time taken. First,
dvc.lock is kept to the stages dvc.yaml defines and the outputs of stages that no longer exist are deleted
(``pipelines.dvclock``), so that no stage hashes them in.

Usage: ``python -m pipelines.repro [TARGET ...]`` (any ``dvc repro`` target: ``report@adult``); exits with DVC's
status, and a failed run still prints what ran before the failure.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field

RAN = re.compile(r"^Running stage '([^']+)'")
CACHED = re.compile(r"^Stage '([^']+)' is cached - skipping run")
SKIPPED = re.compile(r"^Stage '([^']+)' didn't change, skipping")


@dataclass
class Summary:
    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def read(self, line: str) -> None:
        for pattern, names in ((RAN, self.ran), (CACHED, self.cached), (SKIPPED, self.skipped)):
            if m := pattern.match(line):
                if m.group(1) not in names:
                    names.append(m.group(1))
                return

    def lines(self, seconds: float, ok: bool) -> list[str]:
        ran = [s for s in self.ran if s not in self.cached]  # a cached stage is announced as running first
        out = [f"[pipeline] {'done' if ok else 'FAILED'} in {seconds:.1f} s: {len(ran)} ran, "
               f"{len(self.cached)} restored from the run cache, {len(self.skipped)} up to date"]  # fmt: skip
        if ran:
            out.append("  ran: " + ", ".join(ran))
        if self.cached:
            out.append("  restored: " + ", ".join(self.cached))
        if self.skipped:
            out.append("  up to date: " + ", ".join(self.skipped))
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="dvc repro targets (default: every stage)")
    args = parser.parse_args(argv)
    from pipelines import dvclock

    try:
        dvclock.main([])
    except (SystemExit, Exception):  # a dvc.yaml DVC cannot read: `dvc repro` below says why, in its words
        print("[dvclock] dvc.lock left as it is", file=sys.stderr)
    summary = Summary()
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["dvc", "repro", *args.targets],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        summary.read(line)
    code = proc.wait()
    print("\n".join(summary.lines(time.perf_counter() - start, code == 0)), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
