"""List the systems of params.yaml, or check that one exists (the Makefile's ``SYSTEM=`` goes through it).

Usage: ``python -m pipelines.systems`` prints the names, space-separated, in order;
``python -m pipelines.systems --check NAME`` prints NAME when it is a system and otherwise exits 1 with an
error that lists the systems there are, so ``make pipeline SYSTEM=nosuch`` never reaches DVC's "stage not found";
``--matrix [NAME]`` prints ``list=<JSON list>`` (every system, or NAME checked), a GitHub Actions job output.
"""

from __future__ import annotations

import argparse
import json

from pipelines.core.config import PARAMS_FILE, load_params, systems_of
from pipelines.core.errors import ConfigError, stage_main


@stage_main("systems")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", metavar="NAME", help="exit 1 unless NAME is a system of params.yaml")
    parser.add_argument(
        "--matrix", nargs="?", const="", metavar="NAME", help="print list=<JSON> for a job matrix"
    )
    parser.add_argument("--params", default=str(PARAMS_FILE), help="the composed params file")
    args = parser.parse_args(argv)
    names = systems_of(load_params(args.params))
    wanted = args.check if args.matrix is None else args.matrix  # --matrix with no name: every system
    if wanted is not None and wanted not in names and not (wanted == "" and args.matrix is not None):
        known = ", ".join(names)
        raise ConfigError(f"SYSTEM={wanted!r} is not a system of {args.params}; the systems are: {known}")
    if args.matrix is not None:
        print("list=" + json.dumps([args.matrix] if args.matrix else names))
    elif args.check is None:
        print(" ".join(names))
    else:
        print(args.check)


if __name__ == "__main__":
    main()
