"""Errors a stage reports to its user, and the wrapper that turns them into a clear exit."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

R = TypeVar("R")


class PipelineError(Exception):
    """A failure the user can act on: the message names the file, field or rule and what was wrong.

    ``written`` lists what the stage wrote on purpose before it stopped (a report of the failure); everything
    else it would write is left as it was.
    """

    exit_code = 1
    written: tuple[str, ...] = ()


class ConfigError(PipelineError):
    """params.yaml (composed from conf/) is missing a key or holds a bad value."""

    exit_code = 2


def stage_main(stage: str) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Run a stage's entry point; print a ``PipelineError`` as one readable block and exit non-zero."""

    def wrap(fn: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(fn)
        def run(*args: object, **kwargs: object) -> R:
            try:
                return fn(*args, **kwargs)
            except PipelineError as err:
                print(f"ERROR [{stage}] {err}", file=sys.stderr)
                if err.written:
                    wrote = ", ".join(err.written)
                    print(
                        f"[{stage}] wrote only the report ({wrote}); other outputs are unchanged.",
                        file=sys.stderr,
                    )
                else:
                    print(f"[{stage}] nothing was written; previous outputs are unchanged.", file=sys.stderr)
                raise SystemExit(err.exit_code) from None

        return run

    return wrap
