"""Serve a system's packaged bento on 127.0.0.1 without touching the build:
``python -m services.serve --system NAME [--port N]``.

``make serve SYSTEM=<name>`` runs this. The bento is served from its folder in the system's BentoML store
(``artifacts/<system>/bentoml``, a DVC output), read only; everything a running server writes lives in a runtime
folder of its own instance, outside every DVC output and outside git (``var/serve/<port>/``, git-ignored):

- BentoML's home for this run (``bentoml/``), with Prometheus' per-process metric files
  (``prometheus_multiproc_dir``, which BentoML empties when it starts: counters never mix two runs). Its
  ``models`` and ``bentos`` are links to the store's, which BentoML only reads;
- nothing else: Python writes no bytecode (``PYTHONDONTWRITEBYTECODE``), and the prediction log goes to
  ``--log-dir`` (default ``logs/predictions/<system>``, git-ignored, where ``make monitor`` collects it).

Two instances on two ports never share metric files. The serving spec's ``native_threads`` sizes every native
thread pool (OpenMP, BLAS, torch) through the environment, and the service sets it again at start-up.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

import yaml

from services.tabular.spec import ENV as SPEC_ENV
from services.tabular.spec import ServingSpec, load_spec

RUNTIME = Path("var/serve")


class ServeError(Exception):
    """The bento to serve cannot be found."""


def bento_dir(store: Path, name: str, version: str | None = None) -> Path:
    """The folder of ``name:version`` (default: the store's latest) in a BentoML store."""
    root = store / "bentos" / name
    if version is None:
        latest = root / "latest"
        if not latest.is_file():
            raise ServeError(f"no bento {name} in {store}: run `make pipeline SYSTEM=<system>` first")
        version = latest.read_text().strip()
    folder = root / version
    if not (folder / "bento.yaml").is_file():
        raise ServeError(f"{folder} is not a built bento")
    return folder


def link_store(home: Path, store: Path) -> None:
    """A BentoML home whose models and bentos are the store's (links), and whose own files are this run's."""
    home.mkdir(parents=True, exist_ok=True)
    for part in ("models", "bentos"):
        link, target = home / part, (store / part).resolve()
        if link.is_symlink():
            if link.resolve() == target:
                continue
            link.unlink()
        elif link.is_dir():
            link.rmdir()  # BentoML made it empty on an earlier start; an OSError here means it is not ours
        link.symlink_to(target, target_is_directory=True)


def environment(
    runtime: Path, log_dir: Path | None, served: ServingSpec, spec: Path | None, port: int
) -> dict[str, str]:
    env = dict(os.environ)
    native_threads = served.native_threads
    env.update(
        {served.env("SERVICE_INSTANCE"): f"{socket.gethostname()}-{port}"},  # names this instance's log files
        BENTOML_HOME=str(runtime.resolve() / "bentoml"),
        BENTOML_DO_NOT_TRACK="True",
        PYTHONDONTWRITEBYTECODE="1",
        OMP_NUM_THREADS=str(native_threads),
        OPENBLAS_NUM_THREADS=str(native_threads),
        MKL_NUM_THREADS=str(native_threads),
    )
    if log_dir is not None:
        env[served.env("PREDICTION_LOG_DIR")] = str(log_dir.resolve())
    if spec is not None:
        env[SPEC_ENV] = str(spec.resolve())
    return env


def first_system(params: Path = Path("params.yaml")) -> str:
    """The first system ``params.yaml`` lists (what ``make serve`` serves without SYSTEM=)."""
    if not params.is_file():
        raise ServeError(f"{params} not found: run `make params` first, or pass --system")
    systems = (yaml.safe_load(params.read_text()) or {}).get("systems") or []
    if not systems:
        raise ServeError(f"{params} lists no systems")
    return str(systems[0])


def command(folder: Path, host: str, port: int) -> list[str]:
    bentoml = Path(sys.executable).parent / "bentoml"
    return [str(bentoml), "serve", str(folder.resolve()), "--host", host, "--port", str(port)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--system", help="the system to serve (default: the first in params.yaml's systems)")
    parser.add_argument("--store", type=Path, help="the BentoML store (default artifacts/<system>/bentoml)")
    parser.add_argument("--version", help="bento version (default: the latest)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="default: serving.port of the packaged spec")
    parser.add_argument("--runtime", type=Path, help="runtime folder (default var/serve/<port>)")
    parser.add_argument("--log-dir", type=Path, help="the prediction log (default logs/predictions/<system>)")
    parser.add_argument("--spec", type=Path, help="a serving spec to use instead of the bento's (tests)")
    args = parser.parse_args(argv)
    try:
        system = args.system or first_system()
        from pipelines.core.paths import SystemPaths

        args.store = args.store or SystemPaths(system).bentoml
        args.log_dir = args.log_dir or SystemPaths(system).prediction_logs
        name = system.replace("_", "-")  # pipelines.package.bento_name
        folder = bento_dir(args.store, name, version=args.version)
    except (ServeError, ValueError) as err:
        print(f"ERROR [serve] {err}", file=sys.stderr)
        raise SystemExit(1) from None
    spec = load_spec(args.spec or folder / "src/services/tabular/serving.json")
    port = args.port or spec.port
    runtime = args.runtime or RUNTIME / str(port)
    link_store(runtime / "bentoml", args.store)
    env = environment(runtime, args.log_dir, spec, args.spec, port)
    labels = yaml.safe_load((folder / "bento.yaml").read_text()).get("labels", {})
    print(
        f"[serve] {name}:{folder.name} (champion {labels.get('champion')}) on http://{args.host}:{port}; "
        f"runtime state in {runtime}, prediction log in {args.log_dir}",
        flush=True,
    )
    os.execve(command(folder, args.host, port)[0], command(folder, args.host, port), env)


if __name__ == "__main__":
    main()
