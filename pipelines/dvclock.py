"""Keep dvc.lock to the stages dvc.yaml defines: DVC never drops the entry of a stage that was renamed or removed.

Usage: ``python -m pipelines.dvclock`` drops such entries (``make pipeline`` and ``make repro`` run it after
``dvc repro``); ``--check`` exits 1 naming them. Measured on main before this existed: 4,400 of dvc.lock's 14,798
lines were the entries of stages renamed when a second system came, and DVC parses the whole file on every
``dvc status`` and rewrites it after every stage it runs.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from pipelines.core.errors import PipelineError, stage_main

LOCK = Path("dvc.lock")
STAGE_LINE = re.compile(r"^  (\S+):\s*$")  # a stage's key, two spaces in under `stages:`


def defined_stages(root: Path = Path(".")) -> set[str]:
    """Every stage name dvc.yaml defines, foreach expanded (``ingest@adult``), as DVC itself resolves them."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {stage.addressing.split(":")[-1] for stage in repo.index.stages}


def stale_entries(text: str, stages: set[str]) -> list[str]:
    return [
        m.group(1) for line in text.splitlines() if (m := STAGE_LINE.match(line)) and m.group(1) not in stages
    ]


def prune(text: str, stages: set[str]) -> str:
    """``text`` without the entries of stages not in ``stages``, every other line as it was."""
    out, keep = [], True
    for line in text.splitlines(keepends=True):
        if m := STAGE_LINE.match(line):
            keep = m.group(1) in stages
        if keep:
            out.append(line)
    return "".join(out)


@stage_main("dvclock")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if dvc.lock holds entries of no stage")
    args = parser.parse_args(argv)
    if not LOCK.is_file():
        return
    text = LOCK.read_text(encoding="utf-8")
    stale = stale_entries(text, defined_stages())
    if args.check and stale:
        raise PipelineError(
            f"{LOCK} holds entries of stages dvc.yaml does not define: {stale}; run `python -m pipelines.dvclock` "
            "(make pipeline does) and commit dvc.lock"
        )
    if stale:
        LOCK.write_text(prune(text, set(stale_entries(text, set())) - set(stale)), encoding="utf-8")
        print(
            f"[dvclock] dropped {len(stale)} entries of stages dvc.yaml no longer defines: {', '.join(stale)}"
        )


if __name__ == "__main__":
    main()
