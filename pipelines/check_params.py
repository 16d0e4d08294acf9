"""Stage ``check_params``: validate the whole of params.yaml before any other stage runs.

``dvc exp run -S key=value`` composes params.yaml itself (Hydra), so a bad override reaches the pipeline without
passing ``make params``. This stage reads every section (``pipelines.core.params``): types, ranges, the
references between sections (columns, splits, models, metrics, log fields) and the arguments of every
``_target_`` a stage will build. Any problem stops the run with one error listing each dotted key, the value and
a hint, before a model trains. ``ingest`` depends on its output, so it runs first in every ``dvc repro``; the output
holds no params, so a valid change reruns nothing else by itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.core.config import load_params
from pipelines.core.errors import stage_main
from pipelines.core.io import write_json_atomic
from pipelines.core.params import Params, validate_params


@stage_main("check_params")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, default=Path("reports/params.json"))
    args = parser.parse_args(argv)
    systems = validate_params(load_params(args.params), machine=True)
    write_json_atomic(args.out, {"valid": True, "sections": sorted(Params.model_fields)})
    print(f"[check_params] {args.params}: every section of {', '.join(systems)} is valid -> {args.out}")


if __name__ == "__main__":
    main()
