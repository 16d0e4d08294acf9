"""Stage ``site``: build the documentation site with ``mkdocs build --strict`` (MkDocs Material).

Reads the MkDocs source the report stage rendered (``reports/site``) and writes the static site to
``site/build``. Any warning (a broken link, a missing page or anchor) fails the build, and the previous site stays.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from pipelines.core.errors import PipelineError, stage_main
from pipelines.core.io import atomic_dir


@stage_main("site")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=Path("reports/site"))
    parser.add_argument("--out", type=Path, default=Path("site/build"))
    args = parser.parse_args(argv)
    config = args.source / "mkdocs.yml"
    if not config.is_file():
        raise PipelineError(f"{config} not found: run the report stage first (dvc repro report)")
    mkdocs = Path(sys.executable).parent / "mkdocs"
    with atomic_dir(args.out) as staging:
        proc = subprocess.run(
            [str(mkdocs), "build", "--strict", "--quiet", "-f", str(config), "-d", str(staging.resolve())],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
            raise PipelineError("mkdocs build --strict failed:\n  " + "\n  ".join(lines[-30:]))
    pages = sum(1 for _ in args.out.rglob("*.html"))
    print(f"[site] {pages} HTML pages -> {args.out}")


if __name__ == "__main__":
    main()
