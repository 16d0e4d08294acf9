"""Compose params.yaml from conf/ with Hydra, exactly as ``dvc exp run`` does (hydra.enabled).

Usage: ``python -m pipelines.compose [OVERRIDE ...] [--output FILE] [--check]``
Overrides use Hydra's grammar: ``<system>.split.seed=7``, ``experiment=quick``.
``--check`` exits 1 when the file on disk differs from a fresh composition (CI uses it to catch stale params).
A composition with a bad value anywhere is not written: the error names every dotted key at fault.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path

from pipelines.core.errors import ConfigError, stage_main

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"


def compose(output: Path, overrides: list[str] | None = None, conf_dir: Path = CONF_DIR) -> Path:
    """Write the composed config to ``output`` using DVC's own Hydra composition (same bytes as ``dvc exp run``)."""
    import yaml
    from dvc.utils.hydra import compose_and_dump
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from pipelines.core.yaml_lint import lint_tree

    problems = lint_tree(conf_dir)
    if problems:
        raise ConfigError(
            f"{conf_dir} holds YAML that would not mean what it says:\n  " + "\n  ".join(problems)
        )
    try:
        compose_and_dump(
            output, str(conf_dir.resolve()), None, "config", str(conf_dir.parent), overrides or []
        )
    except (HydraException, OmegaConfBaseException, yaml.YAMLError) as err:
        raise ConfigError(f"cannot compose {conf_dir}: {err}") from None
    return output


def composed_text(overrides: list[str] | None = None, conf_dir: Path = CONF_DIR) -> str:
    """The text ``compose`` would write, without touching params.yaml."""
    with tempfile.TemporaryDirectory() as tmp:
        return compose(Path(tmp) / "params.yaml", overrides, conf_dir).read_text(encoding="utf-8")


def stale_diff(params_file: Path, conf_dir: Path = CONF_DIR) -> str:
    """A unified diff between ``params_file`` and a fresh composition; empty when they match."""
    fresh = composed_text(conf_dir=conf_dir)
    current = params_file.read_text(encoding="utf-8") if params_file.exists() else ""
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        fresh.splitlines(keepends=True),
        str(params_file),
        "conf/ (composed)",
    )
    return "".join(diff)


@stage_main("compose")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. split.seed=7")
    parser.add_argument("--output", type=Path, default=ROOT / "params.yaml")
    parser.add_argument(
        "--check", action="store_true", help="fail if --output is stale instead of writing it"
    )
    args = parser.parse_args(argv)
    if args.check:
        if diff := stale_diff(args.output):
            sys.stderr.write(diff)
            raise ConfigError(f"{args.output} is stale: run `make params` and commit the result")
        if diff := stale_stage_params(args.output):
            from pipelines.core.config import STAGE_PARAMS_DIR

            sys.stderr.write(diff)
            raise ConfigError(
                f"{STAGE_PARAMS_DIR} is stale against {args.output}: run `make params` (it rewrites the folder) "
                "and commit the result"
            )
        print(f"{args.output} matches conf/")
        return
    with tempfile.TemporaryDirectory() as tmp:
        composed = compose(Path(tmp) / "params.yaml", args.overrides)
        check(composed)
        args.output.write_text(composed.read_text(encoding="utf-8"), encoding="utf-8")
    print(f"wrote {args.output} (every section valid)")
    if args.output.resolve() == (ROOT / "params.yaml").resolve():
        from pipelines.check_params import write_stage_params
        from pipelines.core.config import STAGE_PARAMS_DIR, load_params

        write_stage_params(load_params(args.output), ROOT / STAGE_PARAMS_DIR)
        print(
            f"wrote {STAGE_PARAMS_DIR}/<system>/ (what its stages read; dvc status names the stages it changes)"
        )
        for folder in production_folders(args.output):
            print(f"created {folder} (the window `make monitor` collects; a new system starts empty)")


def stale_stage_params(params_file: Path) -> str:
    """What differs between ``reports/params/`` beside ``params_file`` and what that file gives each system's
    stages ("" if nothing)."""
    from pipelines.core.config import STAGE_PARAMS_DIR, load_params, stage_params_files

    folder = params_file.parent / STAGE_PARAMS_DIR
    expected = stage_params_files(load_params(params_file))
    found = (
        {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        if folder.is_dir()
        else set()
    )
    missing = sorted(n for n in expected if not (folder / n).is_file())
    wrong = sorted(
        n for n in expected if n not in missing and (folder / n).read_text(encoding="utf-8") != expected[n]
    )
    extra = sorted(found - set(expected))
    problems = [
        f"{STAGE_PARAMS_DIR}/{n}: {what}"
        for names, what in (
            (missing, "missing"),
            (wrong, "differs from what params.yaml gives"),
            (extra, "not written from params.yaml (no key of any system's params names it)"),
        )
        for n in names
    ]
    return "".join(f"{p}\n" for p in problems)


def production_folders(params_file: Path) -> list[Path]:
    """Give every system its production-window folder with its README (the monitor stage depends on it);
    returns the folders created. A new system gets one when ``make params`` first composes it."""
    from pipelines.core.config import load_params, systems_of
    from pipelines.core.paths import PRODUCTION_README, SystemPaths

    created = []
    for system in systems_of(load_params(params_file)):
        readme = ROOT / SystemPaths(system).production / "README.md"
        if not readme.parent.exists():
            readme.parent.mkdir(parents=True)
            readme.write_text(PRODUCTION_README.format(system=system), encoding="utf-8")
            created.append(readme.parent.relative_to(ROOT))
    return created


def check(path: Path) -> None:
    """Validate a composed params file as a whole (pipelines.core.params); a bad value is a ConfigError."""
    from pipelines.core.config import load_params
    from pipelines.core.params import validate_params

    validate_params(load_params(path))


if __name__ == "__main__":
    main()
