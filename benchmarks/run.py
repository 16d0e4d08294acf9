"""Run the benchmark suites and write ``benchmarks/results/<suite>.{md,json}``.

Usage: ``python -m benchmarks.run [SUITE ...] [--repeats N]`` (default: every suite, 5 repeats).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from pathlib import Path
from typing import Any

from benchmarks.measure import machine
from pipelines.core.io import write_json_atomic, write_text_atomic
from pipelines.core.render import render

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SUITES = ["pipeline", "training", "serving", "site", "monitoring"]


def extras(suite: str, module: Any, result: dict[str, Any]) -> dict[str, Any]:
    """Values a suite's template derives from its result."""
    if suite == "training":
        return {"batch_size": next(iter(result["latency"].values()))["batch"]["size"]}
    return {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suites", nargs="*", help=f"any of {SUITES} (default: all)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose from {SUITES}")
    # a timeout or kill sends SIGTERM: exit through the suites' ``finally`` so no server they started outlives them
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(128 + signal.SIGHUP))
    facts = machine()
    for suite in args.suites or SUITES:
        module = importlib.import_module(f"benchmarks.{suite}")
        print(f"[bench] {suite}: {args.repeats} repeats ...", flush=True)
        result = module.run(args.repeats)
        method = " ".join((module.__doc__ or "").split("\n\n", 1)[-1].split())
        write_json_atomic(RESULTS / f"{suite}.json", {"machine": facts, "method": method, "result": result})
        text = render(
            f"{suite}.md.j2",
            HERE / "templates",
            machine=facts,
            method=method,
            result=result,
            **extras(suite, module, result),
        )
        write_text_atomic(RESULTS / f"{suite}.md", text)
        print(text)


if __name__ == "__main__":
    main()
