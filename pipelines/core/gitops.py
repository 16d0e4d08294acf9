"""Git on a CI runner: who commits, and how a push authenticates when the checkout kept no credentials.

The workflows check out with ``persist-credentials: false`` (nothing in ``.git/config`` for a later step or an
uploaded artifact to leak); a step that must push passes ``GH_TOKEN`` in its environment, and the make target it
calls sets the remote here. Outside GitHub Actions (``GITHUB_ACTIONS`` unset) nothing changes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

BOT = ("github-actions", "github-actions@users.noreply.github.com")


def prepare_runner(repo: Path) -> None:
    """On a GitHub Actions runner: commit as the bot when no identity is set, and push over HTTPS with GH_TOKEN."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return
    for key, value in zip(("user.name", "user.email"), BOT, strict=True):
        if subprocess.run(["git", "config", key], cwd=repo, capture_output=True, check=False).returncode != 0:
            subprocess.run(["git", "config", key, value], cwd=repo, check=True)
    token, slug = os.environ.get("GH_TOKEN"), os.environ.get("GITHUB_REPOSITORY")
    if token and slug:
        url = f"https://x-access-token:{token}@github.com/{slug}.git"
        subprocess.run(["git", "remote", "set-url", "origin", url], cwd=repo, check=True)


def resolve_commit(repo: Path, rev: str) -> str | None:
    """The full sha of the commit ``rev`` names (a branch, tag, sha or ``HEAD~1``), or None when it names none (a
    ``rev`` that starts with ``-`` is a name, never an option of git)."""
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None
