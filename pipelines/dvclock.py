"""Keep dvc.lock to the stages dvc.yaml defines: DVC never drops the entry of a stage that was renamed or removed.

Usage: ``python -m pipelines.dvclock`` drops such entries and deletes the outputs they record that no defined stage
writes (``make pipeline`` and ``make repro`` run it before ``dvc repro``): a renamed model's old evaluation left
in ``reports/<system>/eval`` would otherwise be hashed into ``select``'s deps here and missing on a fresh clone,
so the lock would flip between machines. ``--check`` exits 1 naming the entries. Measured on main before this existed: 4,400 of dvc.lock's 14,798
lines were the entries of stages renamed when a second system came, and DVC parses the whole file on every
``dvc status`` and rewrites it after every stage it runs.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path, PurePosixPath

import yaml

from pipelines.core.errors import PipelineError, stage_main

LOCK = Path("dvc.lock")
STAGE_LINE = re.compile(r"^  (\S+):\s*$")  # a stage's key, two spaces in under `stages:`


def defined_stages(root: Path = Path(".")) -> set[str]:
    """Every stage name dvc.yaml defines, foreach expanded (``ingest@adult``), as DVC itself resolves them."""
    return set(defined(root))


def defined(root: Path = Path(".")) -> dict[str, list[str]]:
    """Stage name -> the paths of its outputs (metrics and plots included), as DVC resolves dvc.yaml."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {s.addressing.split(":")[-1]: [str(o.def_path) for o in s.outs] for s in repo.index.stages}


def orphan_outputs(text: str, stale: list[str], outs: list[str]) -> list[str]:
    """The outputs recorded for the ``stale`` entries of lock ``text`` that are not, and are not inside or above,
    an output of a defined stage (``outs``): nothing a stage still writes is ever listed."""
    recorded = (yaml.safe_load(text) or {}).get("stages", {})
    live = [PurePosixPath(o) for o in outs]
    orphans = []
    for name in stale:
        for out in (recorded.get(name) or {}).get("outs", []):
            path = PurePosixPath(out["path"])
            if not any(path == o or path in o.parents or o in path.parents for o in live):
                orphans.append(str(path))
    return sorted(set(orphans))


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
    stages = defined()
    stale = stale_entries(text, set(stages))
    if args.check and stale:
        raise PipelineError(
            f"{LOCK} holds entries of stages dvc.yaml does not define: {stale}; run `python -m pipelines.dvclock` "
            "(make pipeline does) and commit dvc.lock"
        )
    if stale:
        orphans = orphan_outputs(text, stale, [o for outs in stages.values() for o in outs])
        LOCK.write_text(prune(text, set(stale_entries(text, set())) - set(stale)), encoding="utf-8")
        print(
            f"[dvclock] dropped {len(stale)} entries of stages dvc.yaml no longer defines: {', '.join(stale)}"
        )
        for path in map(Path, orphans):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            print(
                f"[dvclock] deleted {path}: the output of a stage that no longer exists (DVC's cache keeps it)"
            )


if __name__ == "__main__":
    main()
