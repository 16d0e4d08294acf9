"""Stage ``check_params``: validate the whole of params.yaml before any other stage runs.

``dvc exp run -S key=value`` composes params.yaml itself (Hydra), so a bad override reaches the pipeline without
passing ``make params``. This stage reads every section (``pipelines.core.params``): types, ranges, the
references between sections (columns, splits, models, metrics, log fields) and the arguments of every
``_target_`` a stage will build. Any problem stops the run with one error listing each dotted key, the value and
a hint, before a model trains. It then writes each system's params to ``reports/params/<system>/``: a file per
section, which the stages read, and a file per key, on which dvc.yaml makes each stage depend (the keys it reads),
so it runs first in every ``dvc repro`` and a change reruns exactly the stages that read a changed key
(``make params`` writes the same files, so ``dvc status`` names those stages before the run).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipelines.core.config import STAGE_PARAMS_DIR, load_params, stage_params_files
from pipelines.core.errors import ConfigError, stage_main
from pipelines.core.io import atomic_dir
from pipelines.core.params import validate_params


@stage_main("check_params")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", type=Path, default=STAGE_PARAMS_DIR)
    args = parser.parse_args(argv)
    params = load_params(args.params)
    try:
        systems = validate_params(params, machine=True)
    except ConfigError as err:
        raise ConfigError(
            f"{err}\n{args.params} holds these values as written (`dvc exp run -S` writes its overrides there): fix "
            f"the override and run again, or run `make params` to compose {args.params} from conf/ as committed"
        ) from None
    write_stage_params(params, args.out)
    print(f"[check_params] {args.params}: every section of {', '.join(systems)} is valid -> {args.out}/")


def write_stage_params(params: dict[str, Any], out: Path) -> None:
    """``out/<system>/<section>.json`` for every system, and nothing else (a removed system's go), atomically."""
    with atomic_dir(out) as staging:
        for name, text in stage_params_files(params).items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
